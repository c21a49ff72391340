//! `ward bench fl`: speed of the default run, beside the Flower/numpy anchor.
//!
//! Every ratio printed comes from measurements taken in this invocation, never from
//! stored numbers: the machines are noisy and absolute times drift.

pub mod aggregate;
pub mod cnn;
pub mod dp;
pub mod readers;
pub mod secagg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::error::{Context, bail};
use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ward_core::ExperimentSpec;
use ward_fl::{EngineOptions, build_simulation};
use ward_models::{
    BatchStream, EngineKind, LocalFit, Optimizer, OptimizerConfig, make_engine, train_local,
};

use crate::Observer;
use crate::options::BenchFlArgs;

/// Positive integers from a comma-separated flag value (`1e5` notation accepted).
pub(crate) fn parse_counts(flag: &str, s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 1.0 && v.fract() == 0.0)
                .map(|v| v as usize)
                .ok_or_else(|| Error::User(format!("{flag}: {t:?} is not a positive integer")))
        })
        .collect()
}

/// Seconds for a table cell: milliseconds with 2 decimals below 10 ms, else seconds
/// with `decimals` decimals.
pub(crate) fn fmt_secs(s: f64, decimals: usize) -> String {
    if s < 0.01 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.decimals$} s")
    }
}

/// Median of the measurements (NaN for none): [`ward_core::stats::median`].
pub(crate) fn median(v: Vec<f64>) -> f64 {
    ward_core::stats::median(&v).unwrap_or(f64::NAN)
}

/// Times the 15 rounds alone (data loaded and sites built beforehand), with `engine`.
fn rounds_time(spec: &ExperimentSpec, engine: EngineKind) -> Result<(f64, f64)> {
    let data = crate::load_data(spec, Path::new("."))?;
    let mut sim = build_simulation(
        spec,
        &data,
        EngineOptions {
            engine,
            ..EngineOptions::default()
        },
    )?;
    let t = Instant::now();
    while !sim.federation.is_done() {
        sim.federation.run_round()?;
    }
    let secs = t.elapsed().as_secs_f64();
    let accs = sim.federation.evaluate()?;
    let accs: Vec<f64> = accs.iter().map(|(_, e)| e.accuracy).collect();
    let mean = ward_core::stats::mean(&accs).unwrap_or(f64::NAN);
    Ok((secs, mean))
}

/// Median round time over `n` runs, and the mean accuracy (identical across runs).
fn repeated_rounds(spec: &ExperimentSpec, engine: EngineKind, n: usize) -> Result<(f64, f64)> {
    let mut times = Vec::with_capacity(n);
    let mut acc = f64::NAN;
    for _ in 0..n {
        let (s, a) = rounds_time(spec, engine)?;
        times.push(s);
        acc = a;
    }
    Ok((median(times), acc))
}

/// Mean time of one local step (batch 4, 13 features) on Cleveland's training data.
fn step_time(engine: EngineKind, steps: usize) -> Result<f64> {
    let spec = ExperimentSpec::default_heart();
    let data =
        crate::load_data(&spec, Path::new("."))?.standardized(ward_data::Standardization::PerSite);
    let site = &data.sites[0];
    let arch = ward_models::DenseArch::from_spec(
        &spec.model,
        spec.train.loss,
        data.feature_names.len(),
        data.num_classes,
    )?;
    let mut e = make_engine(&arch.clone().into(), ward_models::DeviceChoice::Cpu, engine)?;
    let mut params = vec![0.0f32; arch.num_params()];
    let mut stream = BatchStream::new(site.train.y.len(), 4, 0);
    let mut opt = Optimizer::new(OptimizerConfig::from_spec(&spec.train));
    let t = Instant::now();
    train_local(
        e.as_mut(),
        &mut params,
        &site.train,
        &mut stream,
        &mut opt,
        &LocalFit {
            steps,
            ..LocalFit::default()
        },
    )?;
    Ok(t.elapsed().as_secs_f64() / steps as f64)
}

/// Wall time of a whole process.
fn process_time(cmd: &mut Command) -> Result<(f64, String)> {
    let t = Instant::now();
    let o = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok((secs, String::from_utf8_lossy(&o.stdout).into_owned()))
}

/// What a bench prints when it runs without its anchor: why, and where the anchor must
/// be for the next run to compare.
pub(crate) fn anchor_missing(no_anchor: bool, name: &str, marker: &str) -> String {
    if no_anchor {
        return "anchor: not run (--no-anchor): no comparison in this run".to_string();
    }
    let cwd = std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
    format!(
        "anchor: not found: no comparison in this run. Ward looks for shared/anchors/{name}/{marker} in {cwd}, the binary's directory and their parents; put the anchor there (it ships in the shared folder beside the repository) or pass --anchor <folder holding {marker}>"
    )
}

/// An anchor folder: `explicit`, or `shared/anchors/<name>` (holding `marker`) found
/// from the current directory or the binary's location upwards.
pub(crate) fn find_anchor(explicit: Option<&Path>, name: &str, marker: &str) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let rel = Path::new("shared/anchors").join(name);
    let mut starts = vec![std::env::current_dir().ok()?];
    if let Ok(exe) = std::env::current_exe() {
        starts.extend(exe.ancestors().map(Path::to_path_buf));
    }
    for s in starts {
        for a in s.ancestors() {
            let c = a.join(&rel);
            if c.join(marker).exists() {
                return Some(c);
            }
        }
    }
    None
}

/// The anchor's JSON line: `wall_s`, `rounds_s`, `mean_acc`.
fn anchor_run(py: &Path, script: &Path, lr: f64) -> Result<(f64, f64, f64, f64)> {
    let mut c = Command::new(py);
    c.arg(script)
        .args(["--seed", "0", "--lr", &lr.to_string()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FLWR_TELEMETRY_ENABLED", "0");
    let (proc_s, stdout) = process_time(&mut c)?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the anchor printed no JSON line")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let get = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    Ok((proc_s, get("wall_s"), get("rounds_s"), get("mean_acc")))
}

/// The table's rows: measurement, median seconds, notes.
type Rows = Vec<(String, f64, String)>;

/// The ratio table's rows: name, value.
type Ratios = Vec<(String, f64)>;

/// Ward's median times, beside which the anchor's are put.
#[derive(Clone, Copy)]
struct WardTimes {
    /// The whole `ward run` process.
    process: f64,
    /// The 15 rounds alone, native kernels.
    rounds: f64,
}

/// Step 1: the whole `ward run` process, default experiment, `n` times (outputs under
/// `tmp`): the median time and its row.
fn time_ward_process(exe: &Path, tmp: &Path, n: usize, rows: &mut Rows) -> Result<f64> {
    let mut proc_times = Vec::new();
    let mut acc = String::new();
    for i in 0..n {
        let dir = tmp.join(format!("run{i}"));
        let (s, stdout) = process_time(
            Command::new(exe)
                .args(["run", "--quiet", "--out"])
                .arg(&dir),
        )?;
        proc_times.push(s);
        if let Some(l) = stdout.lines().find(|l| l.contains("mean")) {
            acc = l
                .split_whitespace()
                .find(|w| w.contains('.'))
                .unwrap_or("")
                .into();
        }
    }
    let ward_proc = median(proc_times);
    rows.push((
        "ward run (whole process)".into(),
        ward_proc,
        format!("mean acc {acc}"),
    ));
    Ok(ward_proc)
}

/// Step 2: the rounds alone, native kernels and Burn, then one local step of each: their
/// rows, and the median round times (native, Burn).
fn time_ward_rounds(spec: &ExperimentSpec, n: usize, rows: &mut Rows) -> Result<(f64, f64)> {
    let (ward_rounds, native_acc) = repeated_rounds(spec, EngineKind::Native, n)?;
    rows.push((
        "ward rounds, native kernels".into(),
        ward_rounds,
        format!("15 rounds x 4 sites x 100 steps; mean acc {native_acc:.3}"),
    ));
    let burn_n = n.min(3);
    let (burn_rounds, burn_acc) = repeated_rounds(spec, EngineKind::Burn, burn_n)?;
    rows.push((
        "ward rounds, Burn autodiff (burn-flex)".into(),
        burn_rounds,
        format!("same run on Burn; mean acc {burn_acc:.3}"),
    ));
    let step_native = median(
        (0..n)
            .map(|_| step_time(EngineKind::Native, 100_000))
            .collect::<Result<_>>()?,
    );
    let step_burn = median(
        (0..burn_n)
            .map(|_| step_time(EngineKind::Burn, 2_000))
            .collect::<Result<_>>()?,
    );
    rows.push((
        "local step, native".into(),
        step_native,
        "batch 4, 13 features, SGD".into(),
    ));
    rows.push((
        "local step, Burn".into(),
        step_burn,
        "batch 4, 13 features, SGD".into(),
    ));
    Ok((ward_rounds, burn_rounds))
}

/// Runs the anchor's `setup.sh` (idempotent: creates or checks its venv at `venv`).
fn anchor_setup(dir: &Path, venv: &Path, obs: &mut dyn Observer) -> Result<()> {
    say(
        obs,
        format!(
            "anchor: {} (VENV={})",
            dir.join("setup.sh").display(),
            venv.display()
        ),
    );
    let st = Command::new("bash")
        .arg(dir.join("setup.sh"))
        .env("VENV", venv)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .context("running the anchor's setup.sh")?;
    if !st.success() {
        bail!("the anchor's setup.sh failed ({st})");
    }
    Ok(())
}

/// Runs the anchor's `script` `runs` times; pushes the rows `names` (whole process,
/// rounds) and returns their medians (process, rounds).
fn anchor_medians(
    py: &Path,
    script: &Path,
    runs: usize,
    names: [&str; 2],
    rows: &mut Rows,
) -> Result<(f64, f64)> {
    let results: Vec<_> = (0..runs)
        .map(|_| anchor_run(py, script, 0.001))
        .collect::<Result<_>>()?;
    let proc_s = median(results.iter().map(|r| r.0).collect());
    let rounds_s = median(results.iter().map(|r| r.2).collect());
    rows.push((
        names[0].into(),
        proc_s,
        format!("mean acc {:.3}", results[0].3),
    ));
    rows.push((names[1].into(), rounds_s, String::new()));
    Ok((proc_s, rounds_s))
}

/// Step 3: the anchor, in this invocation: the numpy loop `n` times, then (unless
/// `--no-flower`) Flower `min(n, 3)` times; their rows and their ratios to `ward`. Says
/// why when the anchor is not run.
fn time_anchor(
    args: &BenchFlArgs,
    n: usize,
    ward: WardTimes,
    rows: &mut Rows,
    ratios: &mut Ratios,
    obs: &mut dyn Observer,
) -> Result<()> {
    let anchor = if args.no_anchor {
        None
    } else {
        find_anchor(args.anchor.as_deref(), "flower_heart", "fedavg_numpy.py")
    };
    let Some(dir) = anchor else {
        say(
            obs,
            anchor_missing(args.no_anchor, "flower_heart", "fedavg_numpy.py"),
        );
        return Ok(());
    };
    let py = args.venv.join("bin/python");
    if !args.no_setup || !py.exists() {
        anchor_setup(&dir, &args.venv, obs)?;
    }
    let (np_proc, np_rounds) = anchor_medians(
        &py,
        &dir.join("fedavg_numpy.py"),
        n,
        ["numpy loop (whole process)", "numpy loop rounds"],
        rows,
    )?;
    ratios.push((
        "numpy process / ward process".into(),
        np_proc / ward.process,
    ));
    ratios.push((
        "numpy rounds / ward rounds (target >= 1)".into(),
        np_rounds / ward.rounds,
    ));
    if !args.no_flower {
        let (fl_proc, fl_rounds) = anchor_medians(
            &py,
            &dir.join("fedavg_flower.py"),
            n.min(3),
            ["Flower simulation (whole process)", "Flower rounds"],
            rows,
        )?;
        ratios.push((
            "Flower process / ward process (target >= 30)".into(),
            fl_proc / ward.process,
        ));
        ratios.push((
            "Flower rounds / ward rounds".into(),
            fl_rounds / ward.rounds,
        ));
    }
    Ok(())
}

/// Prints the title, the table of times and the table of ratios.
fn print_tables(n: usize, rows: Rows, ratios: Ratios, obs: &mut dyn Observer) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["measurement", "median time", "notes"]);
    for (name, s, note) in rows {
        let shown = if s < 1e-3 {
            format!("{:.3} µs", s * 1e6)
        } else {
            format!("{:.4} s", s)
        };
        t.add_row(vec![name, shown, note]);
    }
    say(
        obs,
        format!(
            "ward bench fl: default experiment (fed-heart-disease, FedAvg, SGD lr 0.001, batch 4, 100 local steps, 15 rounds), {n} repeats{}",
            if cfg!(debug_assertions) {
                " — DEBUG BUILD"
            } else {
                ", release build"
            }
        ),
    );
    say(obs, t);
    let mut r = Table::new();
    r.load_preset(UTF8_FULL_CONDENSED);
    r.set_header(vec!["ratio (same invocation)", "value"]);
    for (name, v) in ratios {
        r.add_row(vec![name, format!("{v:.1}x")]);
    }
    say(obs, r);
}

/// Runs the benchmark and prints the table of times and ratios.
pub fn fl(args: BenchFlArgs, obs: &mut dyn Observer) -> Result<()> {
    if cfg!(debug_assertions) {
        tracing::warn!(
            "this is a debug build: times are not meaningful; use `cargo run --release -- bench fl`"
        );
    }
    let n = args.repeats.max(1);
    let spec = ExperimentSpec::default_heart();
    let exe = std::env::current_exe()?;
    let tmp = tempfile_dir()?;
    let mut rows = Rows::new();
    let process = time_ward_process(&exe, &tmp, n, &mut rows)?;
    let (rounds, burn_rounds) = time_ward_rounds(&spec, n, &mut rows)?;
    let mut ratios: Ratios = vec![("Burn rounds / native rounds".into(), burn_rounds / rounds)];
    time_anchor(
        &args,
        n,
        WardTimes { process, rounds },
        &mut rows,
        &mut ratios,
        obs,
    )?;
    let _ = fs_err::remove_dir_all(&tmp);
    print_tables(n, rows, ratios, obs);
    Ok(())
}

/// A fresh scratch folder for this process's `ward run` outputs.
fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("ward-bench-{}", std::process::id()));
    fs_err::create_dir_all(&d)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing anchor says where Ward looked and where to put it (issue 12: "every
    /// bench says where its anchor goes when it is missing"); `--no-anchor` says so.
    #[test]
    fn a_missing_anchor_says_where_it_goes() {
        let m = anchor_missing(false, "flower-sim", "run.sh");
        assert!(
            m.contains("shared/anchors/flower-sim/run.sh")
                && m.contains("--anchor <folder holding run.sh>"),
            "{m}"
        );
        let m = anchor_missing(true, "flower-sim", "run.sh");
        assert!(m.contains("--no-anchor"), "{m}");
        // An explicit folder is taken as given; none is found under a name that no
        // shared folder holds.
        let p = Path::new("/nowhere/anchor");
        assert_eq!(find_anchor(Some(p), "x", "run.sh").as_deref(), Some(p));
        assert_eq!(find_anchor(None, "no-such-anchor-name", "run.sh"), None);
    }
}
