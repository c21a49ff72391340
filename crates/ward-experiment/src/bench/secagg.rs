//! `ward bench secagg`: one SecAgg+ round (`ward_privacy::secagg::run_round`) per case,
//! beside Flower's SecAgg+ (the anchor `shared/anchors/secagg`, `secagg_flower.py`) run
//! in the same invocation for the same cases.
//!
//! Settings follow the anchor: updates `N(0, 1)` float32 (here from ChaCha8 streams, the
//! anchor uses numpy's generator: same distribution, not the same numbers); the complete
//! graph with threshold round(n/2) (the anchor's `full`; a minority threshold, 2t <= n,
//! which Ward refuses outside this bench because a lying server could unmask a site)
//! and the sparse SecAgg+ graph with 2 neighbours and threshold 2 (its `example`:
//! Flower's num_shares = 3 counts the site itself); clip 8 and 2^22 levels with
//! stochastic rounding; round(0.2 n) sites leave after sharing keys, chosen in a seeded
//! order so that every neighbourhood keeps the threshold and (Ward only: it aborts a
//! split round, see `SecAggError::Disconnected`) the survivors stay connected; the
//! anchor's choice may split a sparse graph. Messages are `postcard`-encoded and decoded between the parties (the
//! anchor deep-copies its messages); bytes are the encoded messages. Sites run one after
//! another in one process, as in the anchor. Ratios come only from this invocation's
//! measurements.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context, bail};
use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use ward_privacy::secagg::{
    DropPoint, MaskPrg, Quantizer, RoundOptions, Rounding, SecAggParams, choose_dropouts, run_round,
};

use crate::Observer;
use crate::bench::{find_anchor, fmt_secs, median, parse_counts};
use crate::options::BenchSecaggArgs;

/// The two graphs of the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Graph {
    Complete,
    Sparse,
}

impl Graph {
    fn name(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Sparse => "sparse",
        }
    }

    /// The anchor's `--graph` value.
    fn anchor(self) -> &'static str {
        match self {
            Self::Complete => "full",
            Self::Sparse => "example",
        }
    }
}

/// One case of the table.
#[derive(Debug, Clone, Copy, Serialize)]
struct Case {
    graph: Graph,
    n: usize,
    d: usize,
    drop: f64,
}

/// Ward's measurement of one case.
#[derive(Debug, Clone, Serialize)]
struct WardResult {
    neighbours: u32,
    threshold: u32,
    dropped: usize,
    /// Dropouts asked for: `round(drop n)`; more than `dropped` when the graph cannot
    /// lose that many sites and finish safely.
    requested_drops: usize,
    round_s: f64,
    rounds_s: Vec<f64>,
    sites_mean_s: f64,
    server_s: f64,
    up_bytes_per_site: f64,
    down_bytes_per_site: f64,
    max_abs_err_sum: f64,
    err_bound_sum: f64,
}

/// The anchor's measurement of one case.
#[derive(Debug, Clone, Serialize)]
struct AnchorResult {
    status: String,
    round_s: Option<f64>,
    up_bytes_per_site: Option<f64>,
    down_secagg_bytes_per_site: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    case: Case,
    ward: WardResult,
    anchor: Option<AnchorResult>,
}

fn parse_fracs(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            t.parse::<f64>()
                .ok()
                .filter(|v| (0.0..1.0).contains(v))
                .ok_or_else(|| Error::User(format!("--drop: {t:?} is not a fraction in [0, 1)")))
        })
        .collect()
}

fn parse_graphs(s: &str) -> Result<Vec<Graph>> {
    s.split(',')
        .map(|t| match t.trim() {
            "complete" => Ok(Graph::Complete),
            "sparse" => Ok(Graph::Sparse),
            other => Err(Error::User(format!(
                "--graphs: unknown graph {other:?}; expected complete, sparse"
            ))),
        })
        .collect()
}

/// Site `site`'s update: `d` standard normal `f32` values from its own ChaCha8 stream
/// (Box-Muller).
fn input(site: u32, d: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ec_a990);
    rng.set_stream(u64::from(site));
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
    v
}

/// The protocol settings of a case.
fn params(c: &Case, a: &BenchSecaggArgs, prg: MaskPrg) -> Result<SecAggParams> {
    let n = u32::try_from(c.n).map_err(|_| Error::User(format!("--n: {} is too large", c.n)))?;
    let q = Quantizer::new(a.clip, a.bits, Rounding::Stochastic)
        .map_err(|e| Error::User(format!("--clip/--bits: {e}")))?;
    let base = SecAggParams::complete(n, c.d)
        .with_quantizer(q)
        .with_prg(prg)
        .with_round(1, 0);
    let p = match c.graph {
        // Flower's reconstruction_threshold = 0.5 of num_shares = n: round(n / 2). That
        // is a minority threshold (2t <= k + 1 = n), which Ward refuses by default; the
        // bench allows it to time the same protocol as the anchor.
        Graph::Complete => base
            .with_threshold(((f64::from(n) / 2.0).round_ties_even() as u32).max(2))
            .allowing_minority_threshold(true),
        Graph::Sparse => base
            .with_neighbours(a.neighbours)
            .with_threshold(a.threshold),
    };
    p.validate()
        .map_err(|e| Error::User(format!("{} graph, n = {n}: {e}", c.graph.name())))?;
    Ok(p)
}

/// Runs one case `repeats` times.
fn run_ward(c: &Case, p: &SecAggParams, repeats: usize, parallel: bool) -> Result<WardResult> {
    let count = (c.drop * c.n as f64).round() as usize;
    // A graph may not survive `count` dropouts: a ring (2 neighbours, threshold 2)
    // loses the secrets of two adjacent dropped sites and splits around two others. Then
    // the round runs with as many as it can take, and says so (the anchor is run with
    // the same number; Flower's own choice would split the ring and expose partial sums).
    let dropped = choose_dropouts(p, count, 0)?;
    let drops: BTreeMap<u32, DropPoint> = dropped
        .iter()
        .map(|&s| (s, DropPoint::AfterShares))
        .collect();
    let opts = RoundOptions { seed: 1, parallel };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let r = run_round(p, &drops, &opts, |s| input(s, c.d))?;
        times.push(r.wall_s);
        last = Some(r);
    }
    let Some(r) = last else {
        bail!("no round ran");
    };
    // The plain f64 sum of the survivors' updates, for the error.
    let mut exact = vec![0f64; c.d];
    for &s in &r.output.survivors {
        for (e, v) in exact.iter_mut().zip(input(s, c.d)) {
            *e += f64::from(v);
        }
    }
    let max_abs_err_sum = exact
        .iter()
        .zip(&r.output.sum)
        .map(|(e, &g)| (f64::from(g) - e).abs())
        .fold(0.0, f64::max);
    let survivors = r.output.survivors.len() as u32;
    Ok(WardResult {
        neighbours: p.neighbours,
        threshold: p.threshold,
        dropped: dropped.len(),
        requested_drops: count,
        round_s: median(times.clone()),
        rounds_s: times,
        sites_mean_s: r.sites_s() / c.n as f64,
        server_s: r.server_s(),
        up_bytes_per_site: r.up_bytes_per_survivor(),
        down_bytes_per_site: r.down_bytes_per_survivor(),
        max_abs_err_sum,
        err_bound_sum: p.quantizer.error_bound(survivors)
            + f64::from(survivors) * f64::from(p.quantizer.clip) * f64::from(f32::EPSILON),
    })
}

/// Runs the anchor's `secagg_flower.py` for one case, killing it after `cap + 60` s (as
/// the anchor's own `run_all.py`); a round over `cap` is reported as such.
fn run_anchor(dir: &Path, py: &Path, c: &Case, cap: f64) -> Result<AnchorResult> {
    let tmp = std::env::temp_dir().join(format!("ward-bench-secagg-{}", std::process::id()));
    fs_err::create_dir_all(&tmp)?;
    let outp = tmp.join(format!(
        "{}_n{}_d{}_drop{}.json",
        c.graph.anchor(),
        c.n,
        c.d,
        (c.drop * 100.0).round()
    ));
    let mut child = Command::new(py)
        .arg(dir.join("secagg_flower.py"))
        .args(["--n", &c.n.to_string(), "--d", &c.d.to_string()])
        .args(["--drop", &c.drop.to_string(), "--graph", c.graph.anchor()])
        .args(["--seed", "0", "--out"])
        .arg(&outp)
        .current_dir(&tmp)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FLWR_TELEMETRY_ENABLED", "0")
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the anchor")?;
    let deadline = Instant::now() + Duration::from_secs_f64(cap + 60.0);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let Some(status) = status else {
        return Ok(AnchorResult {
            status: format!("> {cap:.0} s (killed)"),
            round_s: None,
            up_bytes_per_site: None,
            down_secagg_bytes_per_site: None,
        });
    };
    if !status.success() {
        bail!("the anchor's secagg_flower.py failed ({status})");
    }
    let v: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&outp)?)?;
    let _ = fs_err::remove_file(&outp);
    let round_s = v["round_wall_s"].as_f64();
    let status = match round_s {
        _ if v["ok"] != serde_json::Value::Bool(true) => "protocol aborted".to_string(),
        Some(s) if s > cap => format!("> {cap:.0} s"),
        _ => "ok".to_string(),
    };
    Ok(AnchorResult {
        status,
        round_s,
        up_bytes_per_site: v["up_B_per_surviving_client"].as_f64(),
        down_secagg_bytes_per_site: v["down_secagg_B_per_client"].as_f64(),
    })
}

/// The cases of the table, in its order: graph, then d, then n, then dropout rate, from
/// the comma-separated `--graphs`, `--d`, `--n` and `--drop` (checked in the order
/// `--n`, `--d`, `--drop`, `--graphs`).
fn cases(a: &BenchSecaggArgs) -> Result<Vec<Case>> {
    let ns = parse_counts("--n", &a.n)?;
    let ds = parse_counts("--d", &a.d)?;
    let drops = parse_fracs(&a.drop)?;
    let graphs = parse_graphs(&a.graphs)?;
    let mut cases = Vec::new();
    for &graph in &graphs {
        for &d in &ds {
            for &n in &ns {
                for &drop in &drops {
                    cases.push(Case { graph, n, d, drop });
                }
            }
        }
    }
    Ok(cases)
}

/// `--threads` (0: every core) and a rayon pool of that many threads.
fn thread_pool(requested: usize) -> Result<(usize, rayon::ThreadPool)> {
    let threads = if requested == 0 {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        requested
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("building the thread pool")?;
    Ok((threads, pool))
}

/// A case's columns in the progress lines: graph, n, d and dropout rate.
fn case_label(c: &Case) -> String {
    format!(
        "{:8} n={:<4} d={:<8} drop={:>3}%",
        c.graph.name(),
        c.n,
        c.d,
        (c.drop * 100.0).round()
    )
}

/// Ward's side: every case in `pool`, one progress line each; the rows, anchor not yet
/// run.
fn run_ward_cases(
    cases: &[Case],
    a: &BenchSecaggArgs,
    prg: MaskPrg,
    threads: usize,
    pool: &rayon::ThreadPool,
    obs: &mut dyn Observer,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for c in cases {
        let p = params(c, a, prg)?;
        let w = pool.install(|| run_ward(c, &p, a.repeats, threads > 1))?;
        say(
            obs,
            format!(
                "{}  k={} t={}  round {}",
                case_label(c),
                w.neighbours,
                w.threshold,
                fmt_secs(w.round_s, 3)
            ),
        );
        rows.push(Row {
            case: *c,
            ward: w,
            anchor: None,
        });
    }
    Ok(rows)
}

/// An anchor result for a case the anchor did not measure, with the reason.
fn anchor_not_measured(status: String) -> AnchorResult {
    AnchorResult {
        status,
        round_s: None,
        up_bytes_per_site: None,
        down_secagg_bytes_per_site: None,
    }
}

/// Finds the anchor and its venv; runs it on every row's case, or says why it does not.
fn run_anchor_cases(rows: &mut [Row], a: &BenchSecaggArgs, obs: &mut dyn Observer) {
    let py = a.venv.join("bin/python");
    let anchor = if a.no_anchor {
        None
    } else {
        find_anchor(a.anchor.as_deref(), "secagg", "secagg_flower.py")
    };
    match anchor {
        Some(dir) if py.exists() => {
            say(
                obs,
                format!(
                    "anchor: {} with {} (cap {:.0} s a round); this takes a while",
                    dir.join("secagg_flower.py").display(),
                    py.display(),
                    a.anchor_cap
                ),
            );
            anchor_rows(rows, &dir, &py, a.anchor_cap, obs);
        }
        Some(_) => say(
            obs,
            format!(
                "anchor: no venv at {} (the anchor's setup.sh makes it; this command never runs it): no comparison in this run",
                a.venv.display()
            ),
        ),
        None => say(
            obs,
            super::anchor_missing(a.no_anchor, "secagg", "secagg_flower.py"),
        ),
    }
}

/// The anchor on every row's case, in order, one progress line each. A case over the cap
/// skips every larger case of the same graph; a failed run is recorded in its row.
fn anchor_rows(rows: &mut [Row], dir: &Path, py: &Path, cap: f64, obs: &mut dyn Observer) {
    let mut over: Vec<Case> = Vec::new();
    for row in rows {
        // The anchor drops as many sites as Ward could (see `run_ward`).
        let c = Case {
            drop: row.ward.dropped as f64 / row.case.n as f64,
            ..row.case
        };
        let skip = over
            .iter()
            .any(|o| o.graph == c.graph && c.n >= o.n && c.d >= o.d && c.drop >= o.drop);
        let r = if skip {
            anchor_not_measured("skipped (a smaller case > cap)".into())
        } else {
            run_anchor(dir, py, &c, cap)
                .unwrap_or_else(|e| anchor_not_measured(format!("failed: {e:#}")))
        };
        if r.status.starts_with('>') {
            over.push(c);
        }
        say(
            obs,
            format!(
                "anchor {}  {}{}",
                case_label(&c),
                r.status,
                r.round_s
                    .map_or(String::new(), |s| format!(" {}", fmt_secs(s, 3)))
            ),
        );
        row.anchor = Some(r);
    }
}

/// A row's cells in the table.
fn table_cells(r: &Row) -> Vec<String> {
    let (c, w) = (&r.case, &r.ward);
    let an = r.anchor.as_ref();
    let flower = an.map_or("-".to_string(), |x| match (x.status.as_str(), x.round_s) {
        ("ok", Some(s)) => fmt_secs(s, 3),
        (st, _) => st.to_string(),
    });
    let ratio = an
        .filter(|x| x.status == "ok")
        .and_then(|x| x.round_s)
        .map_or("-".to_string(), |s| format!("{:.1}x", s / w.round_s));
    let fup = an
        .and_then(|x| x.up_bytes_per_site)
        .map_or("-".to_string(), |b| format!("{:.3}", b / 1e6));
    vec![
        c.graph.name().to_string(),
        c.n.to_string(),
        format!("{:.0e}", c.d as f64),
        if w.dropped == w.requested_drops {
            format!("{}% ({})", (c.drop * 100.0).round(), w.dropped)
        } else {
            format!(
                "{}% ({} of {}: no more can drop safely)",
                (c.drop * 100.0).round(),
                w.dropped,
                w.requested_drops
            )
        },
        format!("{} / {}", w.neighbours, w.threshold),
        fmt_secs(w.round_s, 3),
        fmt_secs(w.sites_mean_s, 3),
        fmt_secs(w.server_s, 3),
        format!("{:.3}", w.up_bytes_per_site / 1e6),
        format!("{:.1}", w.down_bytes_per_site / 1e3),
        format!("{:.1e} / {:.1e}", w.max_abs_err_sum, w.err_bound_sum),
        flower,
        ratio,
        fup,
    ]
}

/// Prints the table of every case, then the legend of its columns.
fn print_table(rows: &[Row], obs: &mut dyn Observer) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "graph",
        "n",
        "d",
        "drop",
        "k / t",
        "ward round",
        "site mean",
        "server",
        "up MB/site",
        "down kB/site",
        "max err / bound",
        "Flower round",
        "Flower/ward",
        "Flower up MB",
    ]);
    for r in rows {
        t.add_row(table_cells(r));
    }
    say(obs, t);
    say(
        obs,
        "k / t: neighbours of each site (itself not counted) / Shamir threshold; site mean: \
         a site's compute over the round (all sites' sum / n); server: the server's compute; \
         up/down: postcard-encoded messages of a site that finishes the round (Flower: raw \
         payload, masked vector as int64); max err: largest |error| of the recovered sum \
         against the plain f64 sum, beside the quantisation bound",
    );
}

/// `ward bench secagg`.
pub fn bench_secagg(a: BenchSecaggArgs, obs: &mut dyn Observer) -> Result<()> {
    if cfg!(debug_assertions) {
        tracing::warn!(
            "this is a debug build: times are not meaningful; use `cargo run --release -- bench secagg`"
        );
    }
    let cases = cases(&a)?;
    let prg: MaskPrg = a
        .prg
        .parse()
        .map_err(|e: ward_privacy::secagg::SecAggError| Error::User(format!("--prg: {e}")))?;
    let (threads, pool) = thread_pool(a.threads)?;
    say(
        obs,
        format!(
            "ward bench secagg ({} build): {threads} thread(s), masks {prg}, clip {} with 2^{} levels (stochastic rounding); sites run one after another",
            if cfg!(debug_assertions) {
                "DEBUG"
            } else {
                "release"
            },
            a.clip,
            a.bits
        ),
    );
    let mut rows = run_ward_cases(&cases, &a, prg, threads, &pool, obs)?;
    run_anchor_cases(&mut rows, &a, obs);
    print_table(&rows, obs);
    if let Some(p) = &a.json {
        fs_err::write(p, serde_json::to_string_pretty(&rows)?)?;
        say(obs, format!("wrote {}", p.display()));
    }
    Ok(())
}
