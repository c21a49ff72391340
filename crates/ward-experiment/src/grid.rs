//! `ward robust-grid`: attacks × defences × compromised sites, resumable cell by cell.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use crate::say;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use ward_core::ConfigError;
use ward_core::ExperimentSpec;
use ward_core::config::{
    AggregationRule, AggregatorKind, AttackKind, AttackSpec, CenteredClippingOptions,
    ClippedMeanOptions, FltrustOptions, RobustSpec,
};
use ward_report::Heatmap;

use crate::options::RobustGridArgs;
use crate::{Observer, engine_options};

/// One cell of the grid (one line of `grid.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cell {
    dataset: String,
    attack: String,
    defence: String,
    fraction: f64,
    f: usize,
    seed: u64,
    /// `ok`, `refused` (the defence's assumption fails), `skipped` (the cell is
    /// meaningless, e.g. ALIE with z = 0) or `failed`.
    status: String,
    clean_acc: Option<f64>,
    /// Accuracy of the same defence without attack (same seed) minus this cell's.
    acc_drop: Option<f64>,
    /// Backdoor success rate (backdoor attacks only).
    asr: Option<f64>,
    /// (round, compromised site) pairs the defence excluded (selecting defences only).
    tp: Option<usize>,
    /// (round, honest site) pairs the defence excluded (selecting defences only).
    fp: Option<usize>,
    /// Why a cell is refused, skipped or failed.
    reason: String,
    /// The compromised sites.
    compromised: Vec<String>,
}

impl Cell {
    fn key(&self) -> (String, String, usize, u64) {
        (self.attack.clone(), self.defence.clone(), self.f, self.seed)
    }
}

fn parse_list<T>(s: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| f(x).ok_or_else(|| Error::User(format!("--{what}: {x:?} is not valid"))))
        .collect()
}

fn aggregator(name: &str) -> Option<AggregatorKind> {
    toml::Value::String(name.into()).try_into().ok()
}

fn attack_kind(name: &str) -> Option<AttackKind> {
    toml::Value::String(name.into()).try_into().ok()
}

/// The `[robust]` section of a defence (its `f` is the grid's defence f; FLTrust's
/// root sample is `root_samples` rows; the random rules draw from the cell's seed).
fn defence_spec(
    kind: AggregatorKind,
    f: usize,
    tau: Option<f64>,
    root_samples: usize,
) -> Result<RobustSpec, ConfigError> {
    let rule = match kind {
        AggregatorKind::CenteredClipping => {
            AggregationRule::CenteredClipping(CenteredClippingOptions {
                tau,
                iterations: None,
            })
        }
        AggregatorKind::ClippedMean => AggregationRule::ClippedMean(ClippedMeanOptions {
            tau: tau.unwrap_or(1.0),
            iterations: None,
        }),
        AggregatorKind::Fltrust => AggregationRule::Fltrust(FltrustOptions {
            root_samples: Some(root_samples),
        }),
        k => AggregationRule::defaults(k)?,
    };
    Ok(RobustSpec {
        rule,
        f: kind.takes_f().then_some(f),
        ..RobustSpec::default()
    })
}

/// The `[attack]` section of an attack with `f` compromised sites; a backdoor takes its
/// trigger, target and rate from the base experiment's `[attack]`.
fn attack_spec(
    kind: AttackKind,
    f: usize,
    base: Option<&AttackSpec>,
) -> Result<AttackSpec, ConfigError> {
    use ward_core::config::{AttackMethod as M, NoiseOptions, RateOptions, TargetOptions};
    let method = match (kind, base.map(|b| &b.method)) {
        (AttackKind::Gaussian, _) => M::Gaussian(NoiseOptions { std: 1.0 }),
        (AttackKind::FeatureNoise, _) => M::FeatureNoise(NoiseOptions { std: 1.0 }),
        (AttackKind::AllToOne, _) => M::AllToOne(TargetOptions { target: 0 }),
        (AttackKind::NoisyLabels, _) => M::NoisyLabels(RateOptions { rate: 0.5 }),
        (AttackKind::Backdoor, Some(M::Backdoor(b))) => M::Backdoor(b.clone()),
        (k, _) => M::defaults(k)?,
    };
    Ok(AttackSpec::new(method, f))
}

/// Runs one cell.
fn run_cell(
    base: &ExperimentSpec,
    data: &ward_data::FederatedDataset,
    attack: Option<AttackSpec>,
    defence: RobustSpec,
    seed: u64,
    opts: ward_fl::EngineOptions,
) -> (String, Option<crate::Outcome>, String) {
    let mut spec = base.clone();
    spec.seed = seed;
    spec.robust = defence;
    spec.attack = attack;
    let spec = match spec.check() {
        Ok(s) => s,
        Err(e) => return ("refused".into(), None, e.to_string()),
    };
    match crate::run_quietly(&spec, data, opts) {
        Ok(o) => ("ok".into(), Some(o), String::new()),
        Err(e) => {
            let msg = format!("{e:#}");
            let status = if msg.contains("needs at least") || msg.contains("needs n >=") {
                "refused"
            } else {
                "failed"
            };
            (status.into(), None, msg)
        }
    }
}

/// What defines a grid's cells: the resolved experiment and the defence settings. A
/// rerun into the same `--out` resumes only when this is unchanged.
fn grid_key(base: &ExperimentSpec, defence_f: usize, args: &RobustGridArgs) -> Result<String> {
    let text = toml::to_string(base)
        .map_err(|e| Error::Internal(format!("encoding the experiment: {e}")))?;
    let what = format!(
        "{text}\ndefence-f = {defence_f}\ntau = {}\nroot-samples = {}\ndevice = {}\nengine = {}\n",
        args.tau.map_or("median".to_string(), |t| t.to_string()),
        args.root_samples,
        args.engine.device,
        args.engine.engine
    );
    Ok(crate::run_dir::sha256_hex(what.as_bytes()))
}

/// The cells an earlier invocation wrote into `out` for the same grid (none for a new
/// directory). A directory holding a grid of another experiment, or a log that does
/// not parse, is refused.
fn resume_cells(out: &Path, key: &str) -> Result<Vec<Cell>> {
    if out.exists() && !out.is_dir() {
        return Err(Error::User(format!(
            "--out {}: is a file, not a directory",
            out.display()
        )));
    }
    fs_err::create_dir_all(out).map_err(|e| Error::User(format!("--out: {e}")))?;
    let log = out.join("grid.jsonl");
    let key_file = out.join("grid.key");
    let old_key = fs_err::read_to_string(&key_file).ok();
    if log.exists() && old_key.as_deref().map(str::trim) != Some(key) {
        return Err(Error::User(format!(
            "--out {}: holds a grid made with another experiment or other defence settings (grid.key differs); use another --out, or delete the directory to start over",
            out.display()
        )));
    }
    ward_fl::checkpoint::write_atomic(&key_file, format!("{key}\n").as_bytes())?;
    let Ok(text) = fs_err::read_to_string(&log) else {
        return Ok(Vec::new());
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::User(format!(
                    "{}:{}: not a grid cell ({e}); the log is damaged: delete the line or the directory",
                    log.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// The compromised-site counts: `--fractions` of the sites (rounded) or `--f`, sorted,
/// without repeats.
fn compromised_counts(args: &RobustGridArgs, n_sites: usize) -> Result<Vec<usize>> {
    let mut fs: Vec<usize> = match &args.fractions {
        Some(fr) => parse_list(fr, "fractions", |s| s.parse::<f64>().ok())?
            .into_iter()
            .map(|x| (x * n_sites as f64).round() as usize)
            .collect(),
        None => parse_list(&args.f, "f", |s| s.parse::<usize>().ok())?,
    };
    fs.sort_unstable();
    fs.dedup();
    Ok(fs)
}

/// A grid cell to run: attack (none for the clean cell), defence, compromised sites, seed.
type Planned = (Option<AttackKind>, AggregatorKind, usize, u64);

/// The cells in run order: per defence and seed, the clean cell, then every attack at
/// every positive f.
fn grid_plan(
    defences: &[AggregatorKind],
    seeds: &[u64],
    attacks: &[AttackKind],
    fs: &[usize],
) -> Vec<Planned> {
    let mut plan = Vec::new();
    for &d in defences {
        for &seed in seeds {
            plan.push((None, d, 0, seed));
            for &a in attacks {
                for &f in fs.iter().filter(|&&f| f > 0) {
                    plan.push((Some(a), d, f, seed));
                }
            }
        }
    }
    plan
}

/// Why a cell is not run: ALIE whose z is 0 (it would send the honest mean), or a
/// backdoor without a trigger in the base experiment.
fn skip_reason(
    attack: Option<AttackKind>,
    f: usize,
    n_sites: usize,
    base: &ExperimentSpec,
) -> Option<String> {
    if attack == Some(AttackKind::Alie)
        && let Ok(z) = ward_robust::attacks::model::alie_z(n_sites, f)
        && z.abs() < 1e-12
    {
        return Some(format!(
            "ALIE's z from the paper is 0 for n = {n_sites}, f = {f}: the attack sends the honest mean"
        ));
    }
    if attack == Some(AttackKind::Backdoor)
        && base
            .attack
            .as_ref()
            .is_none_or(|b| b.kind() != AttackKind::Backdoor)
    {
        return Some("backdoor needs a trigger: give [attack] kind = \"backdoor\" with trigger, target and rate in the experiment".into());
    }
    None
}

/// Fills a run cell's accuracy, drop against the clean cell of its defence and seed,
/// backdoor success and (for rules that select) true and false exclusions.
fn record_outcome(
    cell: &mut Cell,
    o: &crate::Outcome,
    attacked: bool,
    d: AggregatorKind,
    clean: &mut BTreeMap<(String, u64), f64>,
) {
    let seed = cell.seed;
    let acc = o.summary.mean_accuracy;
    cell.clean_acc = Some(acc);
    if !attacked {
        clean.insert((cell.defence.clone(), seed), acc);
    }
    cell.acc_drop = clean.get(&(cell.defence.clone(), seed)).map(|c| c - acc);
    cell.asr = o.summary.backdoor_success_mean;
    cell.compromised = o.summary.compromised_sites.clone();
    // FLTrust excludes by a zero trust score (its weight), the others by
    // not selecting.
    let by_weight = d == AggregatorKind::Fltrust;
    let selects = o
        .records
        .iter()
        .any(|r| r.selected.is_some() || (by_weight && r.aggregation_weight.is_some()));
    if selects && attacked {
        let excluded = |comp: bool| {
            o.records
                .iter()
                .filter(|r| {
                    (r.selected == Some(false) || (by_weight && r.aggregation_weight == Some(0.0)))
                        && r.compromised == Some(comp)
                })
                .count()
        };
        cell.tp = Some(excluded(true));
        cell.fp = Some(excluded(false));
    }
}

/// A grid cell waiting to run: its place in the plan, its record so far, and (unless it
/// is skipped) the attack and defence it runs with.
type Pending = (usize, Cell, Option<(Option<AttackSpec>, RobustSpec)>);

impl Cell {
    /// A cell's record before it runs.
    fn blank(
        dataset: &str,
        attack: String,
        d: AggregatorKind,
        f: usize,
        n_sites: usize,
        seed: u64,
    ) -> Self {
        Self {
            dataset: dataset.into(),
            attack,
            defence: d.as_str().into(),
            fraction: f as f64 / n_sites as f64,
            f,
            seed,
            status: String::new(),
            clean_acc: None,
            acc_drop: None,
            asr: None,
            tp: None,
            fp: None,
            reason: String::new(),
            compromised: Vec::new(),
        }
    }
}

/// Prints why a cell did not run (refused, skipped, failed).
fn say_why(obs: &mut dyn Observer, cell: &Cell) {
    if cell.status != "ok" {
        say(
            obs,
            format!(
                "{} vs {} (f {}, seed {}) {}: {}",
                cell.attack, cell.defence, cell.f, cell.seed, cell.status, cell.reason
            ),
        );
    }
}

/// Appends `cell` to `grid.jsonl` and syncs it, so a killed grid resumes after it.
fn append_cell(file: &mut fs_err::File, cell: &Cell) -> Result<()> {
    let mut line = serde_json::to_string(cell)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// Runs the grid and writes grid.csv, grid.json and the heatmaps.
pub fn robust_grid(args: RobustGridArgs, obs: &mut dyn Observer) -> Result<()> {
    let opts = engine_options(&args.engine)?;
    let loaded = match &args.experiment {
        Some(p) => crate::load(p, &args.sets)?,
        None => crate::default_experiment(&args.sets)?,
    };
    let base = loaded.spec;
    let data = crate::load_data(&base, &loaded.base_dir)?;
    let n_sites = data.sites.len();
    let dataset = data.name.clone();
    let attacks = parse_list(&args.attacks, "attacks", attack_kind)?;
    let defences = parse_list(&args.defences, "defences", aggregator)?;
    let seeds = parse_list(&args.seeds, "seeds", |s| s.parse::<u64>().ok())?;
    let fs = compromised_counts(&args, n_sites)?;
    let defence_f = args
        .defence_f
        .unwrap_or_else(|| fs.iter().copied().max().unwrap_or(1).max(1));
    let key = grid_key(&base, defence_f, &args)?;
    let log = args.out.join("grid.jsonl");
    let mut cells = resume_cells(&args.out, &key)?;
    let done: BTreeSet<_> = cells.iter().map(Cell::key).collect();
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut clean: BTreeMap<(String, u64), f64> = cells
        .iter()
        .filter(|c| c.attack == "none" && c.status == "ok")
        .filter_map(|c| Some(((c.defence.clone(), c.seed), c.clean_acc?)))
        .collect();
    let plan = grid_plan(&defences, &seeds, &attacks, &fs);
    let total = plan.len();
    let jobs = crate::parallel::jobs_for(args.jobs, opts, &base, &data);
    let mut next = 0;
    while next < total {
        // The next chunk: up to `jobs` cells still to run (cells done before are
        // skipped). A chunk's cells run side by side and are logged in plan order, so
        // the clean cell of a (defence, seed) is recorded before its attacked cells.
        let mut chunk: Vec<Pending> = Vec::new();
        while next < total && chunk.len() < jobs {
            let (attack, d, f, seed) = plan[next];
            let attack_name = attack.map_or("none", AttackKind::as_str).to_string();
            obs.step(
                next,
                total,
                &format!("{attack_name} vs {} f={f} seed={seed}", d.as_str()),
            );
            let key = (attack_name.clone(), d.as_str().to_string(), f, seed);
            if !done.contains(&key) {
                let mut cell = Cell::blank(&dataset, attack_name, d, f, n_sites, seed);
                let run = if let Some(reason) = skip_reason(attack, f, n_sites, &base) {
                    cell.status = "skipped".into();
                    cell.reason = reason;
                    None
                } else {
                    Some((
                        attack
                            .map(|a| attack_spec(a, f, base.attack.as_ref()))
                            .transpose()?,
                        defence_spec(d, defence_f, args.tau, args.root_samples)?,
                    ))
                };
                chunk.push((next, cell, run));
            }
            next += 1;
        }
        let results = crate::parallel::run_ordered(
            &chunk,
            jobs,
            |(_, cell, run)| {
                run.as_ref().map(|(attack, defence)| {
                    run_cell(
                        &base,
                        &data,
                        attack.clone(),
                        defence.clone(),
                        cell.seed,
                        opts,
                    )
                })
            },
            |_| {},
        );
        for ((i, mut cell, _), result) in chunk.into_iter().zip(results) {
            if let Some((status, outcome, reason)) = result {
                cell.status = status;
                cell.reason = reason;
                if let Some(o) = outcome {
                    let (attack, d, _, _) = plan[i];
                    record_outcome(&mut cell, &o, attack.is_some(), d, &mut clean);
                }
            }
            tracing::info!(
                "cell {}/{total}: {} {} f={} seed={} {}",
                i + 1,
                cell.attack,
                cell.defence,
                cell.f,
                cell.seed,
                cell.status
            );
            say_why(obs, &cell);
            append_cell(&mut file, &cell)?;
            cells.push(cell);
        }
    }
    obs.step(total, total, "done");
    write_outputs(&args.out, &dataset, &cells)?;
    say(
        obs,
        format!(
            "{} cells ({} ok, {} refused, {} skipped, {} failed) → {}",
            cells.len(),
            cells.iter().filter(|c| c.status == "ok").count(),
            cells.iter().filter(|c| c.status == "refused").count(),
            cells.iter().filter(|c| c.status == "skipped").count(),
            cells.iter().filter(|c| c.status == "failed").count(),
            args.out.display()
        ),
    );
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

fn write_outputs(dir: &Path, dataset: &str, cells: &[Cell]) -> Result<()> {
    let head = [
        "dataset",
        "attack",
        "defence",
        "fraction",
        "f",
        "seed",
        "status",
        "clean_acc",
        "acc_drop",
        "asr",
        "tp",
        "fp",
    ];
    let lines = cells.iter().map(|c| {
        [
            c.dataset.clone(),
            c.attack.clone(),
            c.defence.clone(),
            format!("{:.4}", c.fraction),
            c.f.to_string(),
            c.seed.to_string(),
            c.status.clone(),
            opt(c.clean_acc),
            opt(c.acc_drop),
            opt(c.asr),
            c.tp.map_or(String::new(), |v| v.to_string()),
            c.fp.map_or(String::new(), |v| v.to_string()),
        ]
    });
    ward_report::write_csv_atomic(&dir.join("grid.csv"), &head, lines)?;
    ward_report::write_json_atomic(&dir.join("grid.json"), &cells)?;
    // Heatmaps at the largest f: defences × attacks, mean over seeds.
    let f_max = cells.iter().map(|c| c.f).max().unwrap_or(0);
    let mut defences: Vec<String> = Vec::new();
    let mut attacks: Vec<String> = Vec::new();
    for c in cells {
        if !defences.contains(&c.defence) {
            defences.push(c.defence.clone());
        }
        if (c.f == f_max || c.attack == "none") && !attacks.contains(&c.attack) {
            attacks.push(c.attack.clone());
        }
    }
    type Metric = fn(&Cell) -> Option<f64>;
    let metrics: [(&str, Metric); 3] = [
        ("clean_acc", |c| c.clean_acc),
        ("acc_drop", |c| c.acc_drop),
        ("asr", |c| c.asr),
    ];
    for (metric, get) in metrics {
        let values: Vec<Vec<Option<f64>>> = defences
            .iter()
            .map(|d| {
                attacks
                    .iter()
                    .map(|a| {
                        let vs: Vec<f64> = cells
                            .iter()
                            .filter(|c| &c.defence == d && &c.attack == a)
                            .filter(|c| c.f == f_max || a == "none")
                            .filter_map(get)
                            .collect();
                        (!vs.is_empty()).then(|| vs.iter().sum::<f64>() / vs.len() as f64)
                    })
                    .collect()
            })
            .collect();
        if values.iter().flatten().all(Option::is_none) {
            continue;
        }
        Heatmap {
            title: format!("{dataset}: {metric} (f = {f_max}, mean over seeds)"),
            rows: defences.clone(),
            cols: attacks.clone(),
            values,
            missing_label: "n/a".into(),
        }
        .write_svg(&dir.join(format!("heatmap_{dataset}_{metric}.svg")))?;
    }
    Ok(())
}
