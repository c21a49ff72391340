//! `ward bench aggregate`: time per aggregation of each robust rule, beside the anchor
//! `shared/anchors/aggregation` (numpy references and ByzFL) run in the same invocation.
//!
//! Settings follow the anchor: inputs `N(0, 1)` float32 (here from ChaCha8 streams, the
//! anchor uses numpy's generator: same distribution, not the same numbers), f = n/10,
//! Bulyan f = (n-3)/4, geometric median with 100 iterations at most and tolerance 1e-6,
//! centered clipping with tau = 100 and 3 iterations, Multi-Krum m = n - f, NNM then the
//! mean; the median of `--repeats` calls (one call when the first takes over 20 s);
//! n = 100 with d = 1e7 skipped. Ratios come only from this invocation's measurements.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::error::{Context, bail};
use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ward_core::{Metrics, Params, Update};
use ward_fl::{Aggregator, RoundContext};
use ward_robust::{
    Bulyan, ClippedMean, Composed, GeometricMedian, Krum, Mean, Median, MultiKrum, Nnm, TrimmedMean,
};

use crate::Observer;
use crate::bench::{find_anchor, fmt_secs, median, parse_counts};
use crate::options::BenchAggregateArgs;

/// The anchor's rule names, in its order.
const RULES: [&str; 9] = [
    "mean",
    "median",
    "trimmed_mean",
    "krum",
    "multi_krum",
    "geomed",
    "centered_clipping",
    "bulyan",
    "nnm_mean",
];

/// Rules whose cost is reading the input (a few passes), reported in GB/s.
const BANDWIDTH_BOUND: [&str; 3] = ["mean", "centered_clipping", "geomed"];

/// Ward's rule for an anchor rule name at `n` updates, with the anchor's settings.
fn ward_rule(name: &str, n: usize) -> Result<Box<dyn Aggregator>> {
    let f = n / 10;
    Ok(match name {
        "mean" => Box::new(Mean),
        "median" => Box::new(Median::new()),
        "trimmed_mean" => Box::new(TrimmedMean::new(f)),
        "krum" => Box::new(Krum::new(f)),
        "multi_krum" => Box::new(MultiKrum::new(f, None)?),
        "geomed" => Box::new(GeometricMedian::new(1e-8, 100, 1e-6)?),
        "centered_clipping" => Box::new(ClippedMean::new(100.0, 3)?),
        "bulyan" => Box::new(Bulyan::new(n.saturating_sub(3) / 4)),
        "nnm_mean" => Box::new(Composed::new(vec![Box::new(Nnm::new(f))], Box::new(Mean))),
        other => {
            return Err(Error::User(format!(
                "--rules: unknown rule {other:?}; expected some of {}",
                RULES.join(", ")
            )));
        }
    })
}

/// `n` updates of `d` standard normal `f32` values, one ChaCha8 stream per row
/// (Box-Muller), generated on all cores.
fn inputs(n: usize, d: usize) -> Vec<Update> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut rows: Vec<Vec<f32>> = vec![Vec::new(); n];
    std::thread::scope(|s| {
        for (t, chunk) in rows.chunks_mut(n.div_ceil(threads)).enumerate() {
            s.spawn(move || {
                for (k, row) in chunk.iter_mut().enumerate() {
                    let i = t * n.div_ceil(threads) + k;
                    let mut rng = ChaCha8Rng::seed_from_u64(((n as u64) << 40) ^ d as u64);
                    rng.set_stream(i as u64);
                    let mut v = Vec::with_capacity(d + 1);
                    while v.len() < d {
                        let u1: f64 = 1.0 - rng.random::<f64>();
                        let u2: f64 = rng.random::<f64>();
                        let r = (-2.0 * u1.ln()).sqrt();
                        let a = std::f64::consts::TAU * u2;
                        v.push((r * a.cos()) as f32);
                        v.push((r * a.sin()) as f32);
                    }
                    v.truncate(d);
                    *row = v;
                }
            });
        }
    });
    rows.into_iter()
        .enumerate()
        .map(|(i, v)| Update {
            site: i,
            params: Params::from_flat(v),
            num_examples: 1,
            metrics: Metrics::new(),
            control_delta: None,
        })
        .collect()
}

/// Seconds per call: the median of `repeats` calls, one call when the first takes over
/// 20 s.
fn time_rule(
    rule: &dyn Aggregator,
    u: &[Update],
    ctx: &RoundContext<'_>,
    repeats: usize,
) -> Result<f64> {
    let mut ts = Vec::new();
    for r in 0..repeats.max(1) {
        let t = Instant::now();
        let a = rule.aggregate(u, ctx)?;
        ts.push(t.elapsed().as_secs_f64());
        std::hint::black_box(a);
        if r == 0 && ts[0] > 20.0 {
            break;
        }
    }
    Ok(median(ts))
}

/// Read bandwidth of this machine: summing a 1 GiB `f32` buffer on every core.
fn read_bandwidth() -> f64 {
    let buf = vec![1f32; 1 << 28];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let total: f32 = std::thread::scope(|s| {
            let hs: Vec<_> = buf
                .chunks(buf.len().div_ceil(threads))
                .map(|c| {
                    s.spawn(move || {
                        let mut acc = [0f32; 16];
                        for x in c.chunks_exact(16) {
                            for l in 0..16 {
                                acc[l] += x[l];
                            }
                        }
                        acc.iter().sum::<f32>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(total);
        best = best.max(4.0 * buf.len() as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// One anchor measurement: (rule, impl, n, d) -> seconds.
type AnchorTimes = Vec<(String, String, usize, usize, f64)>;

/// Runs the anchor's `bench_rules.py` on a copy of its folder (its results stay out of
/// the shared folder) for the same n and d, and reads its `results/rules.json`.
fn run_anchor(
    dir: &Path,
    py: &Path,
    ns: &[usize],
    ds: &[usize],
    obs: &mut dyn Observer,
) -> Result<AnchorTimes> {
    let tmp = std::env::temp_dir().join(format!("ward-bench-aggregate-{}", std::process::id()));
    fs_err::create_dir_all(&tmp)?;
    for f in ["bench_rules.py", "rules_numpy.py", "idle.py"] {
        fs_err::copy(dir.join(f), tmp.join(f))?;
    }
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    say(
        obs,
        format!(
            "anchor: {} with {} (NS={} DS={}); this takes a while",
            dir.join("bench_rules.py").display(),
            py.display(),
            join(ns),
            join(ds)
        ),
    );
    let st = Command::new(py)
        .arg(tmp.join("bench_rules.py"))
        .current_dir(&tmp)
        .env("NS", join(ns))
        .env("DS", join(ds))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .context("starting the anchor")?;
    if !st.success() {
        bail!("the anchor's bench_rules.py failed ({st})");
    }
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(tmp.join("results/rules.json"))?)?;
    let _ = fs_err::remove_dir_all(&tmp);
    let mut times = Vec::new();
    for r in v["results"].as_array().into_iter().flatten() {
        if r["status"] != "ok" {
            continue;
        }
        let (Some(rule), Some(imp), Some(n), Some(d), Some(s)) = (
            r["rule"].as_str(),
            r["impl"].as_str(),
            r["n"].as_u64(),
            r["d"].as_u64(),
            r["median_s"].as_f64(),
        ) else {
            continue;
        };
        times.push((rule.to_string(), imp.to_string(), n as usize, d as usize, s));
    }
    Ok(times)
}

/// One Ward measurement: (rule, n, d) -> seconds.
type WardTimes = Vec<(String, usize, usize, f64)>;

/// The rules of `--rules` (comma-separated), each checked to be a known rule.
fn parse_rules(s: &str) -> Result<Vec<String>> {
    let rules: Vec<String> = s.split(',').map(|s| s.trim().to_string()).collect();
    for r in &rules {
        ward_rule(r, 10)?;
    }
    Ok(rules)
}

/// Ward's side: every rule on every (n, d) but n >= 100 with d >= 1e7, one progress line
/// each.
fn time_ward(
    ns: &[usize],
    ds: &[usize],
    rules: &[String],
    repeats: usize,
    obs: &mut dyn Observer,
) -> Result<WardTimes> {
    let mut ward_times = WardTimes::new();
    for &n in ns {
        for &d in ds {
            if n >= 100 && d >= 10_000_000 {
                say(
                    obs,
                    format!("n={n} d={d}: skipped (as the anchor: 4 GB of input)"),
                );
                continue;
            }
            let u = inputs(n, d);
            let global = Params::zeros(u[0].params.layout().clone());
            let ctx = RoundContext::new(1, &global);
            for r in rules {
                let rule = ward_rule(r, n)?;
                let s = time_rule(rule.as_ref(), &u, &ctx, repeats)?;
                say(obs, format!("{r:18} n={n:<4} d={d:<9} {}", fmt_secs(s, 4)));
                ward_times.push((r.clone(), n, d, s));
            }
        }
    }
    Ok(ward_times)
}

/// Finds the anchor and its venv and runs it for the same n and d; no times (and a line
/// saying why) when it is not found, has no venv, or fails.
fn anchor_times(
    a: &BenchAggregateArgs,
    ns: &[usize],
    ds: &[usize],
    obs: &mut dyn Observer,
) -> AnchorTimes {
    let py = a.venv.join("bin/python");
    let anchor = if a.no_anchor {
        None
    } else {
        find_anchor(a.anchor.as_deref(), "aggregation", "bench_rules.py")
    };
    match anchor {
        Some(dir) if py.exists() => match run_anchor(&dir, &py, ns, ds, obs) {
            Ok(t) => t,
            Err(e) => {
                // ward's own table still prints; the anchor's failure is reported.
                say(
                    obs,
                    format!("anchor failed, no comparison in this run: {e:#}"),
                );
                Vec::new()
            }
        },
        Some(_) => {
            say(
                obs,
                format!(
                    "anchor: no venv at {} (the anchor's setup.sh makes it; this command never runs it): no comparison in this run",
                    a.venv.display()
                ),
            );
            Vec::new()
        }
        None => {
            say(
                obs,
                super::anchor_missing(a.no_anchor, "aggregation", "bench_rules.py"),
            );
            Vec::new()
        }
    }
}

/// Prints the table of Ward's times beside the anchor's, then the note on GB/s with the
/// machine's read bandwidth `bw`.
fn print_table(
    ward_times: &WardTimes,
    anchor_times: &AnchorTimes,
    bw: f64,
    obs: &mut dyn Observer,
) {
    let lookup = |rule: &str, imp: &str, n: usize, d: usize| {
        anchor_times
            .iter()
            .find(|t| t.0 == rule && t.1 == imp && t.2 == n && t.3 == d)
            .map(|t| t.4)
    };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "rule",
        "n",
        "d",
        "ward",
        "GB/s",
        "numpy",
        "numpy/ward",
        "ByzFL",
        "ByzFL/ward",
    ]);
    for (r, n, d, s) in ward_times {
        let gbs = if BANDWIDTH_BOUND.contains(&r.as_str()) {
            format!("{:.1}", 4.0 * (*n * *d) as f64 / s / 1e9)
        } else {
            String::new()
        };
        let np = lookup(r, "numpy", *n, *d);
        let bz = lookup(r, "byzfl", *n, *d);
        let cell = |x: Option<f64>| x.map_or("-".to_string(), |s| fmt_secs(s, 4));
        let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.1}x", x / s));
        t.add_row(vec![
            r.clone(),
            n.to_string(),
            format!("{d:.0e}"),
            fmt_secs(*s, 4),
            gbs,
            cell(np),
            ratio(np),
            cell(bz),
            ratio(bz),
        ]);
    }
    say(obs, t);
    say(
        obs,
        format!(
            "GB/s = input bytes (4 n d) / time for the bandwidth-bound rules (one pass per mean; \
         centered clipping and the geometric median make 2 passes per iteration); machine read \
         bandwidth {bw:.1} GB/s"
        ),
    );
}

/// `ward bench aggregate`.
pub fn bench_aggregate(a: BenchAggregateArgs, obs: &mut dyn Observer) -> Result<()> {
    if cfg!(debug_assertions) {
        tracing::warn!(
            "this is a debug build: times are not meaningful; use `cargo run --release -- bench aggregate`"
        );
    }
    let ns = parse_counts("--n", &a.n)?;
    let ds = parse_counts("--d", &a.d)?;
    let rules = parse_rules(&a.rules)?;
    let bw = read_bandwidth();
    say(
        obs,
        format!(
            "ward bench aggregate ({} build, {} threads): read bandwidth of this machine {bw:.1} GB/s",
            if cfg!(debug_assertions) {
                "DEBUG"
            } else {
                "release"
            },
            rayon_threads()
        ),
    );
    let ward_times = time_ward(&ns, &ds, &rules, a.repeats, obs)?;
    let anchor_times = anchor_times(&a, &ns, &ds, obs);
    print_table(&ward_times, &anchor_times, bw, obs);
    Ok(())
}

/// The cores of this machine (`available_parallelism`, 1 when unknown), for the header.
fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}
