//! `ward robust-grid`: attacks × defences × compromised sites, resumable cell by cell.

mod stats;

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
    /// The f the defence was configured with (0 for rules that take none).
    #[serde(default)]
    defence_f: usize,
    /// The training seed (the run seed).
    seed: u64,
    /// The seed that drew the compromised sites (0 for the clean cell).
    #[serde(default)]
    draw: u64,
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
    /// (round, compromised site) pairs in the run (selecting defences only).
    #[serde(default)]
    attacker_rounds: Option<usize>,
    /// (round, honest site) pairs in the run (selecting defences only).
    #[serde(default)]
    honest_rounds: Option<usize>,
    /// Why a cell is refused, skipped or failed.
    reason: String,
    /// The compromised sites.
    compromised: Vec<String>,
}

/// What identifies a cell: attack, defence, f, defence f, training seed, draw.
type CellKey = (String, String, usize, usize, u64, u64);

impl Cell {
    fn key(&self) -> CellKey {
        (
            self.attack.clone(),
            self.defence.clone(),
            self.f,
            self.defence_f,
            self.seed,
            self.draw,
        )
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

/// The `[robust]` section of a defence (its `f` is the cell's defence f; FLTrust's
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

/// The attacks' own settings in a grid.
#[derive(Debug, Clone, Copy)]
struct AttackSettings {
    alie_z: f64,
    gaussian_scale: f64,
}

/// The `[attack]` section of an attack by the named `sites`; a backdoor or model
/// replacement takes its trigger, target and rate from the base experiment's `[attack]`.
fn attack_spec(
    kind: AttackKind,
    sites: Vec<String>,
    base: Option<&AttackSpec>,
    settings: AttackSettings,
) -> Result<AttackSpec, ConfigError> {
    use ward_core::config::{
        AlieOptions, AttackMethod as M, GaussianOptions, NoiseOptions, RateOptions, TargetOptions,
    };
    let backdoor = match base.map(|b| &b.method) {
        Some(M::Backdoor(b) | M::ModelReplacement(b)) => Some(b.clone()),
        _ => None,
    };
    let method = match (kind, backdoor) {
        (AttackKind::Gaussian, _) => M::Gaussian(GaussianOptions {
            scale: settings.gaussian_scale,
        }),
        (AttackKind::Alie, _) => M::Alie(AlieOptions { z: settings.alie_z }),
        (AttackKind::FeatureNoise, _) => M::FeatureNoise(NoiseOptions { std: 1.0 }),
        (AttackKind::AllToOne, _) => M::AllToOne(TargetOptions { target: 0 }),
        (AttackKind::NoisyLabels, _) => M::NoisyLabels(RateOptions { rate: 0.5 }),
        (AttackKind::Backdoor, Some(b)) => M::Backdoor(b),
        (AttackKind::ModelReplacement, Some(b)) => M::ModelReplacement(b),
        (k, _) => M::defaults(k)?,
    };
    Ok(AttackSpec {
        method,
        sites,
        f: None,
        from_round: 1,
    })
}

/// The `f` compromised sites of attacker draw `draw`: drawn uniformly (ChaCha8 of the
/// draw), independently of the training seed, so the two vary separately.
fn draw_sites(names: &[String], f: usize, draw: u64) -> Vec<String> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(draw);
    rng.set_stream(0xD2A3);
    let mut picked: Vec<usize> = rand::seq::index::sample(&mut rng, names.len(), f).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| names[i].clone()).collect()
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
fn grid_key(base: &ExperimentSpec, args: &RobustGridArgs) -> Result<String> {
    let text = toml::to_string(base)
        .map_err(|e| Error::Internal(format!("encoding the experiment: {e}")))?;
    let what = format!(
        "{text}\ndefence-f = {}\nalie-z = {}\ngaussian-scale = {}\ntau = {}\nroot-samples = {}\ndevice = {}\nengine = {}\n",
        args.defence_f
            .map_or("per cell".to_string(), |f| f.to_string()),
        args.alie_z,
        args.gaussian_scale,
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

/// A grid cell to run: attack (none for the clean cell), defence, compromised sites,
/// the defence's f, training seed, attacker draw.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Planned {
    attack: Option<AttackKind>,
    defence: AggregatorKind,
    f: usize,
    defence_f: usize,
    seed: u64,
    draw: u64,
}

/// The cells in run order: per defence and training seed, the clean cell at each f the
/// defence is configured with, then every attack at every positive f and attacker draw.
/// A rule that takes `f` is configured with the cell's own f (or `fixed_f`); the clean
/// cell it is compared with has the same defence f.
fn grid_plan(
    defences: &[AggregatorKind],
    seeds: &[u64],
    draws: &[u64],
    attacks: &[AttackKind],
    fs: &[usize],
    fixed_f: Option<usize>,
) -> Vec<Planned> {
    let positive: Vec<usize> = fs.iter().copied().filter(|&f| f > 0).collect();
    let defence_f = |d: AggregatorKind, f: usize| {
        if d.takes_f() { fixed_f.unwrap_or(f) } else { 0 }
    };
    let mut plan = Vec::new();
    for &d in defences {
        for &seed in seeds {
            let mut clean_fs: Vec<usize> = if attacks.is_empty() || positive.is_empty() {
                vec![defence_f(d, fixed_f.unwrap_or(0))]
            } else {
                positive.iter().map(|&f| defence_f(d, f)).collect()
            };
            clean_fs.dedup();
            for df in clean_fs {
                plan.push(Planned {
                    attack: None,
                    defence: d,
                    f: 0,
                    defence_f: df,
                    seed,
                    draw: 0,
                });
            }
            for &a in attacks {
                for &f in &positive {
                    for &draw in draws {
                        plan.push(Planned {
                            attack: Some(a),
                            defence: d,
                            f,
                            defence_f: defence_f(d, f),
                            seed,
                            draw,
                        });
                    }
                }
            }
        }
    }
    plan
}

/// Why a cell is not run: ALIE with z = 0 (it would send the honest mean), Fang's
/// trimmed-mean attack against the Krum family, or a backdoor without a trigger in the
/// base experiment.
fn skip_reason(
    attack: Option<AttackKind>,
    defence: AggregatorKind,
    settings: AttackSettings,
    base: &ExperimentSpec,
) -> Option<String> {
    if attack == Some(AttackKind::Alie) && settings.alie_z == 0.0 {
        return Some("ALIE with z = 0 sends the honest mean".into());
    }
    if attack == Some(AttackKind::FangTrim)
        && matches!(
            defence,
            AggregatorKind::Krum | AggregatorKind::MultiKrum | AggregatorKind::Bulyan
        )
    {
        return Some(format!(
            "fang-trim is Fang et al.'s attack on trimmed mean and median, not on {defence} (Krum family)"
        ));
    }
    if attack.is_some_and(AttackKind::is_backdoor)
        && base.attack.as_ref().is_none_or(|b| !b.kind().is_backdoor())
    {
        return Some("a backdoor needs a trigger: give [attack] kind = \"backdoor\" with trigger, target and rate in the experiment".into());
    }
    None
}

/// The clean cell an attacked cell is compared with: defence, defence f, training seed.
type CleanKey = (String, usize, u64);

/// Fills a run cell's accuracy, drop against the clean cell of its defence (same defence
/// f) and training seed, backdoor success and (for rules that select) true and false
/// exclusions.
fn record_outcome(
    cell: &mut Cell,
    o: &crate::Outcome,
    attacked: bool,
    d: AggregatorKind,
    clean: &mut BTreeMap<CleanKey, f64>,
) {
    let key = (cell.defence.clone(), cell.defence_f, cell.seed);
    let acc = o.summary.mean_accuracy;
    cell.clean_acc = Some(acc);
    if !attacked {
        clean.insert(key.clone(), acc);
    }
    cell.acc_drop = clean.get(&key).map(|c| c - acc);
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
        let count = |comp: bool| {
            o.records
                .iter()
                .filter(|r| r.compromised == Some(comp))
                .count()
        };
        cell.attacker_rounds = Some(count(true));
        cell.honest_rounds = Some(count(false));
    }
}

/// A grid cell waiting to run: its place in the plan, its record so far, and (unless it
/// is skipped) the attack and defence it runs with.
type Pending = (usize, Cell, Option<(Option<AttackSpec>, RobustSpec)>);

impl Cell {
    /// A cell's record before it runs.
    fn blank(dataset: &str, p: &Planned, n_sites: usize) -> Self {
        Self {
            dataset: dataset.into(),
            attack: p.attack.map_or("none", AttackKind::as_str).to_string(),
            defence: p.defence.as_str().into(),
            fraction: p.f as f64 / n_sites as f64,
            f: p.f,
            defence_f: p.defence_f,
            seed: p.seed,
            draw: p.draw,
            status: String::new(),
            clean_acc: None,
            acc_drop: None,
            asr: None,
            tp: None,
            fp: None,
            attacker_rounds: None,
            honest_rounds: None,
            reason: String::new(),
            compromised: Vec::new(),
        }
    }
}

impl Cell {
    /// `attack vs defence (f .., defence f .., seed .., draw ..)`, as messages name a cell.
    fn label(&self) -> String {
        format!(
            "{} vs {} (f {}, defence f {}, seed {}, draw {})",
            self.attack, self.defence, self.f, self.defence_f, self.seed, self.draw
        )
    }
}

/// Prints why a cell did not run (refused, skipped, failed).
fn say_why(obs: &mut dyn Observer, cell: &Cell) {
    if cell.status != "ok" {
        say(
            obs,
            format!("{} {}: {}", cell.label(), cell.status, cell.reason),
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

/// The grid's axes, read from the command line.
struct Axes {
    attacks: Vec<AttackKind>,
    defences: Vec<AggregatorKind>,
    seeds: Vec<u64>,
    draws: Vec<u64>,
    fs: Vec<usize>,
}

/// Parses and checks the grid's axes.
fn axes(args: &RobustGridArgs, n_sites: usize) -> Result<Axes> {
    let attacks = parse_list(&args.attacks, "attacks", attack_kind)?;
    let defences = parse_list(&args.defences, "defences", aggregator)?;
    let seeds = parse_list(&args.seeds, "seeds", |s| s.parse::<u64>().ok())?;
    let draws = parse_list(&args.draws, "draws", |s| s.parse::<u64>().ok())?;
    if draws.is_empty() || seeds.is_empty() {
        return Err(Error::User(
            "--seeds and --draws each need at least one value".into(),
        ));
    }
    let fs = compromised_counts(args, n_sites)?;
    if let Some(&f) = fs.iter().find(|&&f| f >= n_sites) {
        return Err(Error::User(format!(
            "--f/--fractions: {f} compromised of {n_sites} sites leaves no honest site"
        )));
    }
    Ok(Axes {
        attacks,
        defences,
        seeds,
        draws,
        fs,
    })
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
    let Axes {
        attacks,
        defences,
        seeds,
        draws,
        fs,
    } = axes(&args, n_sites)?;
    let settings = AttackSettings {
        alie_z: args.alie_z,
        gaussian_scale: args.gaussian_scale,
    };
    let site_names: Vec<String> = data.sites.iter().map(|s| s.name.clone()).collect();
    let key = grid_key(&base, &args)?;
    let log = args.out.join("grid.jsonl");
    let mut cells = resume_cells(&args.out, &key)?;
    let done: BTreeSet<_> = cells.iter().map(Cell::key).collect();
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut clean: BTreeMap<CleanKey, f64> = cells
        .iter()
        .filter(|c| c.attack == "none" && c.status == "ok")
        .filter_map(|c| Some(((c.defence.clone(), c.defence_f, c.seed), c.clean_acc?)))
        .collect();
    let plan = grid_plan(&defences, &seeds, &draws, &attacks, &fs, args.defence_f);
    let total = plan.len();
    let jobs = crate::parallel::jobs_for(args.jobs, opts, &base, &data);
    let mut next = 0;
    while next < total {
        // The next chunk: up to `jobs` cells still to run (cells done before are
        // skipped). A chunk's cells run side by side and are logged in plan order, so
        // the clean cell of a (defence, seed) is recorded before its attacked cells.
        let mut chunk: Vec<Pending> = Vec::new();
        while next < total && chunk.len() < jobs {
            let p = plan[next];
            let mut cell = Cell::blank(&dataset, &p, n_sites);
            obs.step(
                next,
                total,
                &format!(
                    "{} vs {} f={} seed={} draw={}",
                    cell.attack, cell.defence, p.f, p.seed, p.draw
                ),
            );
            if !done.contains(&cell.key()) {
                let run = if let Some(reason) = skip_reason(p.attack, p.defence, settings, &base) {
                    cell.status = "skipped".into();
                    cell.reason = reason;
                    None
                } else {
                    let sites = draw_sites(&site_names, p.f, p.draw);
                    Some((
                        p.attack
                            .map(|a| attack_spec(a, sites, base.attack.as_ref(), settings))
                            .transpose()?,
                        defence_spec(p.defence, p.defence_f, args.tau, args.root_samples)?,
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
                    let p = plan[i];
                    record_outcome(&mut cell, &o, p.attack.is_some(), p.defence, &mut clean);
                }
            }
            tracing::info!("cell {}/{total}: {} {}", i + 1, cell.label(), cell.status);
            say_why(obs, &cell);
            append_cell(&mut file, &cell)?;
            cells.push(cell);
        }
    }
    obs.step(total, total, "done");
    let tests: Vec<&[u32]> = data.sites.iter().map(|s| s.test.y.as_slice()).collect();
    let floor = stats::constant_floor(&tests);
    write_outputs(&args.out, &dataset, &cells, floor)?;
    say_totals(obs, &cells, &args.out);
    Ok(())
}

/// Prints how many cells ran, were refused, skipped or failed.
fn say_totals(obs: &mut dyn Observer, cells: &[Cell], out: &Path) {
    let count = |s: &str| cells.iter().filter(|c| c.status == s).count();
    say(
        obs,
        format!(
            "{} cells ({} ok, {} refused, {} skipped, {} failed) → {}",
            cells.len(),
            count("ok"),
            count("refused"),
            count("skipped"),
            count("failed"),
            out.display()
        ),
    );
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

fn write_outputs(
    dir: &Path,
    dataset: &str,
    cells: &[Cell],
    floor: Option<stats::Floor>,
) -> Result<()> {
    let (md, rows) = stats::summarise(dataset, cells, floor);
    ward_core::fsutil::write_atomic(&dir.join("summary.md"), md.as_bytes())?;
    ward_report::write_csv_atomic(&dir.join("summary.csv"), &stats::CSV_HEAD, rows)?;
    let head = [
        "dataset",
        "attack",
        "defence",
        "fraction",
        "f",
        "defence_f",
        "seed",
        "draw",
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
            c.defence_f.to_string(),
            c.seed.to_string(),
            c.draw.to_string(),
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
    // Heatmaps at the largest f: defences × attacks, mean over seeds and draws; the
    // clean column is each defence's clean cell with the defence f of those cells.
    let f_max = cells.iter().map(|c| c.f).max().unwrap_or(0);
    let clean_f = |d: &str| {
        cells
            .iter()
            .filter(|c| c.defence == d && c.attack != "none" && c.f == f_max)
            .map(|c| c.defence_f)
            .max()
            .unwrap_or(0)
    };
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
                            .filter(|c| {
                                if a == "none" {
                                    c.defence_f == clean_f(d)
                                } else {
                                    c.f == f_max
                                }
                            })
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
            title: format!("{dataset}: {metric} (f = {f_max}, mean over seeds and draws)"),
            rows: defences.clone(),
            cols: attacks.clone(),
            values,
            missing_label: "n/a".into(),
        }
        .write_svg(&dir.join(format!("heatmap_{dataset}_{metric}.svg")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-cell f: Krum is configured with each cell's f and gets a clean cell at each;
    /// the median takes no f and has one clean cell; every attack runs at every draw.
    #[test]
    fn plan_configures_each_cell_with_its_own_f() {
        let plan = grid_plan(
            &[AggregatorKind::Krum, AggregatorKind::Median],
            &[7],
            &[1, 2],
            &[AttackKind::SignFlip],
            &[0, 1, 2],
            None,
        );
        let krum: Vec<_> = plan
            .iter()
            .filter(|p| p.defence == AggregatorKind::Krum)
            .map(|p| (p.attack.is_some(), p.f, p.defence_f, p.draw))
            .collect();
        assert_eq!(
            krum,
            vec![
                (false, 0, 1, 0),
                (false, 0, 2, 0),
                (true, 1, 1, 1),
                (true, 1, 1, 2),
                (true, 2, 2, 1),
                (true, 2, 2, 2),
            ]
        );
        let median: Vec<_> = plan
            .iter()
            .filter(|p| p.defence == AggregatorKind::Median)
            .map(|p| (p.attack.is_some(), p.f, p.defence_f))
            .collect();
        assert_eq!(
            median,
            vec![
                (false, 0, 0),
                (true, 1, 0),
                (true, 1, 0),
                (true, 2, 0),
                (true, 2, 0)
            ]
        );
        // A fixed defence f configures every cell alike.
        let fixed = grid_plan(
            &[AggregatorKind::Krum],
            &[7],
            &[1],
            &[AttackKind::SignFlip],
            &[1, 2],
            Some(3),
        );
        assert!(fixed.iter().all(|p| p.defence_f == 3));
        assert_eq!(fixed.iter().filter(|p| p.attack.is_none()).count(), 1);
    }

    /// The compromised sites depend on the draw only, are distinct, and differ between
    /// draws (for these draws: checked, not assumed).
    #[test]
    fn attacker_draws_pick_distinct_sites_from_their_own_seed() {
        let names: Vec<String> = (0..12).map(|i| format!("site-{i}")).collect();
        let a = draw_sites(&names, 3, 1);
        assert_eq!(a, draw_sites(&names, 3, 1));
        assert_eq!(a.len(), 3);
        let mut uniq = a.clone();
        uniq.dedup();
        assert_eq!(uniq.len(), 3);
        let others: Vec<Vec<String>> = (2..6).map(|d| draw_sites(&names, 3, d)).collect();
        assert!(others.iter().any(|o| o != &a), "{a:?} {others:?}");
    }
}
