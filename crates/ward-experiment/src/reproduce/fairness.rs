//! `ward reproduce fairness`: the accuracy–fairness trade-off of q-FFL (Li et al. 2020)
//! against FedAvg, across sites and across groups of patients.
//!
//! Rows: FedAvg (example-weighted, the reference) and q-FFL at each `--q`, each over
//! seeds 0..N. Per (row, seed): every site's test accuracy, the mean over sites, the
//! worst site, the spread (best − worst) and the std across sites; the group rates and
//! gaps (TPR, FPR, equalized odds, demographic parity) by `--group-column`, pooled over
//! every site's test rows and per site where each group has at least
//! [`MIN_PER_CLASS`] positives and negatives; and the last round's change of the mean
//! training loss. Each is summarised as a mean with a 95% Student-t interval over
//! seeds, beside the floor (the best constant predictor per site).
//!
//! A row's group is the raw value of the group column (before standardisation) of that
//! test row: `sex=0`, `sex=1` (fed-heart-disease: 1 is male).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use ward_core::ExperimentSpec;
use ward_core::config::StrategyKind;
use ward_data::FederatedDataset;
use ward_fl::EngineOptions;
use ward_trust::fairness::{
    GroupReport, MeanInterval, SiteSummary, constant_floor, group_report, site_summary, t_interval,
};

use crate::options::ReproduceFairnessArgs;
use crate::{Error, Observer, Result, engine_options, say};

/// Confidence level of the intervals over seeds.
pub const LEVEL: f64 = 0.95;

/// A site's group gaps are computed only where every group there has at least this many
/// positives and this many negatives (fewer make a rate of a handful of rows).
pub const MIN_PER_CLASS: usize = 5;

/// One row of the table: FedAvg or q-FFL at one q.
#[derive(Debug, Clone)]
struct Method {
    label: String,
    q: Option<f64>,
    spec: ExperimentSpec,
}

/// One run: a method at one seed.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// `fedavg` or `qffl q=<q>`.
    pub method: String,
    /// q (q-FFL rows).
    pub q: Option<f64>,
    /// The run seed.
    pub seed: u64,
    /// Accuracy across sites.
    pub sites: SiteSummary,
    /// Test accuracy per site.
    pub per_site: BTreeMap<String, f64>,
    /// Group rates and gaps over every site's test rows together.
    pub pooled: GroupReport,
    /// Group rates and gaps per site (`None` where a group has fewer than
    /// [`MIN_PER_CLASS`] positives or negatives).
    pub per_site_groups: BTreeMap<String, Option<GroupReport>>,
    /// Mean training loss over the sites, per round.
    pub train_loss: Vec<f64>,
}

impl Cell {
    /// The last round's change of the mean training loss (`None` with one round).
    pub fn last_loss_change(&self) -> Option<f64> {
        let n = self.train_loss.len();
        (n >= 2).then(|| self.train_loss[n - 1] - self.train_loss[n - 2])
    }
}

/// A row's summary over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct RowSummary {
    /// The method.
    pub method: String,
    /// q (q-FFL rows).
    pub q: Option<f64>,
    /// Mean accuracy over sites.
    pub mean_accuracy: Option<MeanInterval>,
    /// Worst site's accuracy.
    pub worst_site_accuracy: Option<MeanInterval>,
    /// Best − worst site.
    pub spread: Option<MeanInterval>,
    /// Std across sites.
    pub std_across_sites: Option<MeanInterval>,
    /// Each site's accuracy.
    pub per_site: BTreeMap<String, Option<MeanInterval>>,
    /// Pooled TPR gap between groups (equal opportunity difference).
    pub tpr_gap: Option<MeanInterval>,
    /// Pooled FPR gap.
    pub fpr_gap: Option<MeanInterval>,
    /// Pooled equalized-odds difference.
    pub equalized_odds_gap: Option<MeanInterval>,
    /// Pooled demographic-parity difference.
    pub demographic_parity_gap: Option<MeanInterval>,
    /// Per site equalized-odds difference (over the seeds where it is defined).
    pub per_site_equalized_odds_gap: BTreeMap<String, Option<MeanInterval>>,
    /// The last round's change of the mean training loss.
    pub last_loss_change: Option<MeanInterval>,
}

/// The best constant predictor per site (its majority class share of the test rows).
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    /// Per site.
    pub per_site: BTreeMap<String, f64>,
    /// Mean over sites.
    pub mean: f64,
    /// The worst site's.
    pub worst: f64,
}

/// What `fairness.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct FairnessReport {
    /// The experiment (dataset or file).
    pub experiment: String,
    /// The group column.
    pub group_column: String,
    /// Rows per group over every site's test rows.
    pub group_sizes: BTreeMap<String, usize>,
    /// Seeds 0..N.
    pub seeds: u64,
    /// Interval level.
    pub level: f64,
    /// The floor.
    pub floor: Floor,
    /// One summary per method.
    pub rows: Vec<RowSummary>,
    /// Every run.
    pub cells: Vec<Cell>,
    /// The base experiment (the FedAvg row's; q-FFL rows change only the strategy).
    pub config: ExperimentSpec,
    /// Cells run at once.
    pub jobs: usize,
    /// Wall time of the whole command, seconds.
    pub wall_time_s: f64,
}

/// Each site's test rows' group: `<column>=<raw value>`, read from `raw` (the data as
/// loaded, before standardisation), in the order of the sites' test rows.
///
/// # Errors
/// [`Error::User`] when the data has no such column (the message lists the columns).
pub fn test_groups(raw: &FederatedDataset, column: &str) -> Result<Vec<Vec<String>>> {
    let j = raw
        .feature_names
        .iter()
        .position(|c| c == column)
        .ok_or_else(|| {
            Error::user(format!(
                "--group-column {column:?}: {} has no such feature column; its columns are {:?}",
                raw.name, raw.feature_names
            ))
        })?;
    Ok(raw
        .sites
        .iter()
        .map(|s| {
            (0..s.test.y.len())
                .map(|r| format!("{column}={}", s.test.x.row(r)[j]))
                .collect()
        })
        .collect())
}

/// The predicted class of each row from `k` logits per row, as
/// [`ward_models::score_logits`] scores it (one logit: `z > 0`; else the first largest).
fn predictions(z: &[f32], rows: usize) -> Vec<u32> {
    let k = z.len() / rows.max(1);
    if k == 1 {
        return z.iter().map(|&s| u32::from(s > 0.0)).collect();
    }
    z.chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0 as u32
        })
        .collect()
}

fn trust(e: ward_trust::TrustError) -> Error {
    Error::Internal(e.to_string())
}

/// Whether every group in `groups` has at least [`MIN_PER_CLASS`] positives and
/// negatives among `y`.
fn enough_per_group(y: &[u32], groups: &[String]) -> bool {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (&t, g) in y.iter().zip(groups) {
        let c = counts.entry(g).or_default();
        if t == 1 { c.0 += 1 } else { c.1 += 1 }
    }
    counts.len() >= 2
        && counts
            .values()
            .all(|&(p, n)| p >= MIN_PER_CLASS && n >= MIN_PER_CLASS)
}

/// Runs `m` at `seed` and scores the final global model per site and per group.
fn run_cell(
    m: &Method,
    seed: u64,
    raw: &FederatedDataset,
    groups: &[Vec<String>],
    opts: EngineOptions,
) -> Result<Cell> {
    let mut spec = m.spec.clone();
    spec.seed = seed;
    let spec = spec.check()?;
    let out = crate::run_quietly(&spec, raw, opts)?;
    let data = &out.trained.data;
    let arch = ward_fl::model_arch(&spec, data)?;
    let mut engine = ward_models::make_engine(&arch, opts.device, opts.engine)?;
    let (mut ys, mut ps, mut gs) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_site = BTreeMap::new();
    let mut per_site_groups = BTreeMap::new();
    for (site, g) in data.sites.iter().zip(groups) {
        let rows = site.test.y.len();
        if rows == 0 {
            continue;
        }
        if g.len() != rows {
            return Err(Error::Internal(format!(
                "site {}: {} group labels for {rows} test rows",
                site.name,
                g.len()
            )));
        }
        let z = engine.logits(out.trained.global.values(), &site.test.x.data, rows)?;
        let p = predictions(&z, rows);
        let right = p.iter().zip(&site.test.y).filter(|(a, b)| a == b).count();
        let acc = right as f64 / rows as f64;
        // The predictions are the ones the run scored: same accuracy, bit for bit.
        if out.summary.per_site.get(&site.name) != Some(&acc) {
            return Err(Error::Internal(format!(
                "site {}: accuracy {acc} from the predictions, {:?} in the summary",
                site.name,
                out.summary.per_site.get(&site.name)
            )));
        }
        per_site.insert(site.name.clone(), acc);
        let own = if enough_per_group(&site.test.y, g) {
            Some(group_report(&site.test.y, &p, g).map_err(trust)?)
        } else {
            None
        };
        per_site_groups.insert(site.name.clone(), own);
        ys.extend_from_slice(&site.test.y);
        ps.extend(p);
        gs.extend(g.iter().cloned());
    }
    let pairs: Vec<(&str, f64)> = data
        .sites
        .iter()
        .filter_map(|s| per_site.get(&s.name).map(|&a| (s.name.as_str(), a)))
        .collect();
    Ok(Cell {
        method: m.label.clone(),
        q: m.q,
        seed,
        sites: site_summary(&pairs).map_err(trust)?,
        per_site,
        pooled: group_report(&ys, &ps, &gs).map_err(trust)?,
        per_site_groups,
        train_loss: mean_train_loss(&out.records),
    })
}

/// The mean over sites of the recorded training loss, per round, in round order.
fn mean_train_loss(records: &[ward_fl::SiteRecord]) -> Vec<f64> {
    let mut by_round: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    for r in records {
        if let Some(l) = r.train_loss {
            let e = by_round.entry(r.round).or_default();
            e.0 += l;
            e.1 += 1;
        }
    }
    by_round.values().map(|(s, n)| s / *n as f64).collect()
}

fn interval(values: impl Iterator<Item = Option<f64>>) -> Option<MeanInterval> {
    let v: Vec<f64> = values.flatten().collect();
    t_interval(&v, LEVEL)
}

fn summarise(label: &str, q: Option<f64>, cells: &[&Cell]) -> RowSummary {
    let sites: Vec<String> = cells
        .first()
        .map(|c| c.per_site.keys().cloned().collect())
        .unwrap_or_default();
    let per = |f: &dyn Fn(&Cell) -> Option<f64>| interval(cells.iter().map(|c| f(c)));
    RowSummary {
        method: label.to_string(),
        q,
        mean_accuracy: per(&|c: &Cell| Some(c.sites.mean)),
        worst_site_accuracy: per(&|c: &Cell| Some(c.sites.worst)),
        spread: per(&|c: &Cell| Some(c.sites.spread)),
        std_across_sites: per(&|c: &Cell| Some(c.sites.std)),
        per_site: sites
            .iter()
            .map(|s| (s.clone(), per(&|c: &Cell| c.per_site.get(s).copied())))
            .collect(),
        tpr_gap: per(&|c: &Cell| c.pooled.tpr_difference),
        fpr_gap: per(&|c: &Cell| c.pooled.fpr_difference),
        equalized_odds_gap: per(&|c: &Cell| c.pooled.equalized_odds_difference),
        demographic_parity_gap: per(&|c: &Cell| Some(c.pooled.demographic_parity_difference)),
        per_site_equalized_odds_gap: sites
            .iter()
            .map(|s| {
                let eo = per(&|c: &Cell| {
                    c.per_site_groups
                        .get(s)
                        .and_then(|g| g.as_ref())
                        .and_then(|g| g.equalized_odds_difference)
                });
                (s.clone(), eo)
            })
            .collect(),
        last_loss_change: per(&Cell::last_loss_change),
    }
}

/// The base experiment and its name: fed-heart-disease with FLamby's federated
/// settings, or an experiment file; `--rounds` and `--lr` override either.
fn base_spec(args: &ReproduceFairnessArgs) -> Result<(ExperimentSpec, PathBuf)> {
    let (mut spec, dir) = if args.experiment == "fed-heart-disease" {
        let s = super::federated("fairness", StrategyKind::Fedavg, 0.001, None);
        (s, PathBuf::from("."))
    } else {
        let p = Path::new(&args.experiment);
        if !p.exists() {
            return Err(Error::user(format!(
                "{:?} is neither fed-heart-disease nor an existing experiment file",
                args.experiment
            )));
        }
        let l = crate::load(p, &[])?;
        (l.spec.into_inner(), l.base_dir)
    };
    if let Some(r) = args.rounds {
        spec.federation.rounds = r;
    }
    if let Some(lr) = args.lr {
        spec.train.lr = lr;
    }
    spec.federation.eval_every = 0;
    Ok((spec, dir))
}

fn methods(base: &ExperimentSpec, qs: &[f64]) -> Vec<Method> {
    let with = |strategy: StrategyKind, q: Option<f64>| {
        let mut s = base.clone();
        s.federation.strategy = strategy;
        s.federation.q = q;
        s.federation.mu = None;
        s.federation.server_lr = None;
        s.federation.local_site = None;
        s
    };
    let mut m = vec![Method {
        label: "fedavg".into(),
        q: None,
        spec: with(StrategyKind::Fedavg, None),
    }];
    for &q in qs {
        m.push(Method {
            label: format!("qffl q={q}"),
            q: Some(q),
            spec: with(StrategyKind::Qffl, Some(q)),
        });
    }
    m
}

fn floor(raw: &FederatedDataset) -> Floor {
    let per_site: BTreeMap<String, f64> = raw
        .sites
        .iter()
        .filter_map(|s| constant_floor(&s.test.y).map(|f| (s.name.clone(), f)))
        .collect();
    let mean = per_site.values().sum::<f64>() / per_site.len().max(1) as f64;
    let worst = per_site.values().copied().fold(f64::INFINITY, f64::min);
    Floor {
        per_site,
        mean,
        worst,
    }
}

/// Runs the table and writes `fairness.csv` and `fairness.json` in `--out`.
pub fn fairness(args: ReproduceFairnessArgs, obs: &mut dyn Observer) -> Result<FairnessReport> {
    let start = Instant::now();
    let opts = engine_options(&args.engine)?;
    let seeds = args.seeds.max(1);
    if let Some(q) = args.q.iter().find(|q| !(q.is_finite() && **q >= 0.0)) {
        return Err(Error::user(format!(
            "--q {q}: each q must be a finite number >= 0"
        )));
    }
    let (base, base_dir) = base_spec(&args)?;
    let raw = crate::load_data(&base, &base_dir)?;
    if raw.num_classes != 2 || raw.image.is_some() {
        return Err(Error::user(format!(
            "ward reproduce fairness needs a binary table; {} has {} classes{}",
            raw.name,
            raw.num_classes,
            if raw.image.is_some() {
                " and holds images"
            } else {
                ""
            }
        )));
    }
    let groups = test_groups(&raw, &args.group_column)?;
    let methods = methods(&base, &args.q);
    for m in &methods {
        m.spec.validate()?;
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| crate::default_run_dir("reproduce-fairness"));
    fs_err::create_dir_all(&dir)?;
    let jobs = crate::parallel::jobs_for(args.jobs, opts, &base, &raw);
    let items: Vec<(usize, u64)> = (0..methods.len())
        .flat_map(|m| (0..seeds).map(move |s| (m, s)))
        .collect();
    let total = items.len();
    let cells = crate::parallel::run_ordered(
        &items,
        jobs,
        |&(m, seed)| run_cell(&methods[m], seed, &raw, &groups, opts),
        |done| obs.step(done, total, "runs"),
    )
    .into_iter()
    .collect::<Result<Vec<Cell>>>()?;
    let rows: Vec<RowSummary> = methods
        .iter()
        .map(|m| {
            let mine: Vec<&Cell> = cells.iter().filter(|c| c.method == m.label).collect();
            summarise(&m.label, m.q, &mine)
        })
        .collect();
    let mut group_sizes = BTreeMap::new();
    for g in groups.iter().flatten() {
        *group_sizes.entry(g.clone()).or_insert(0) += 1;
    }
    let report = FairnessReport {
        experiment: args.experiment.clone(),
        group_column: args.group_column.clone(),
        group_sizes,
        seeds,
        level: LEVEL,
        floor: floor(&raw),
        rows,
        cells,
        config: base,
        jobs,
        wall_time_s: start.elapsed().as_secs_f64(),
    };
    write_csv(&dir.join("fairness.csv"), &report)?;
    ward_report::write_json_atomic(&dir.join("fairness.json"), &report)?;
    print_table(&report, obs);
    say(
        obs,
        format!(
            "written: {}, {} ({:.1} s, {jobs} jobs)",
            dir.join("fairness.csv").display(),
            dir.join("fairness.json").display(),
            report.wall_time_s
        ),
    );
    Ok(report)
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.6}"))
}

/// `fairness.csv`: one line per (method, seed), then the floor.
fn write_csv(path: &Path, r: &FairnessReport) -> Result<()> {
    let sites: Vec<String> = r.floor.per_site.keys().cloned().collect();
    let mut head: Vec<String> = [
        "method",
        "q",
        "seed",
        "mean_accuracy",
        "worst_site",
        "worst_accuracy",
        "best_accuracy",
        "spread",
        "std_across_sites",
    ]
    .map(String::from)
    .to_vec();
    head.extend(sites.iter().map(|s| format!("accuracy {s}")));
    head.extend(
        [
            "tpr_gap",
            "fpr_gap",
            "equalized_odds_gap",
            "demographic_parity_gap",
        ]
        .map(String::from),
    );
    head.extend(sites.iter().map(|s| format!("equalized_odds_gap {s}")));
    head.push("last_loss_change".into());
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut lines: Vec<Vec<String>> = r
        .cells
        .iter()
        .map(|c| {
            let mut l = vec![
                c.method.clone(),
                c.q.map_or(String::new(), |q| q.to_string()),
                c.seed.to_string(),
                num(Some(c.sites.mean)),
                c.sites.worst_site.clone(),
                num(Some(c.sites.worst)),
                num(Some(c.sites.best)),
                num(Some(c.sites.spread)),
                num(Some(c.sites.std)),
            ];
            l.extend(sites.iter().map(|s| num(c.per_site.get(s).copied())));
            l.extend([
                num(c.pooled.tpr_difference),
                num(c.pooled.fpr_difference),
                num(c.pooled.equalized_odds_difference),
                num(Some(c.pooled.demographic_parity_difference)),
            ]);
            l.extend(sites.iter().map(|s| {
                num(c
                    .per_site_groups
                    .get(s)
                    .and_then(|g| g.as_ref())
                    .and_then(|g| g.equalized_odds_difference))
            }));
            l.push(num(c.last_loss_change()));
            l
        })
        .collect();
    let f = &r.floor;
    let mut l = vec!["floor (constant)".to_string(), String::new(), String::new()];
    l.extend([num(Some(f.mean)), String::new(), num(Some(f.worst))]);
    l.extend([String::new(), String::new(), String::new()]);
    l.extend(sites.iter().map(|s| num(f.per_site.get(s).copied())));
    l.extend(std::iter::repeat_n(String::new(), head.len() - l.len()));
    lines.push(l);
    ward_report::write_csv_atomic(path, &head, lines)?;
    Ok(())
}

fn ci(m: &Option<MeanInterval>) -> String {
    match m {
        None => "-".into(),
        Some(MeanInterval {
            mean,
            lo: Some(lo),
            hi: Some(hi),
            ..
        }) => format!("{mean:.3} [{lo:.3}, {hi:.3}]"),
        Some(m) => format!("{:.3}", m.mean),
    }
}

fn print_table(r: &FairnessReport, obs: &mut dyn Observer) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let g = &r.group_column;
    t.set_header(vec![
        "method".to_string(),
        "mean acc".into(),
        "worst-site acc".into(),
        "spread".into(),
        format!("EO gap ({g})"),
        format!("TPR gap ({g})"),
        format!("FPR gap ({g})"),
        "Δ loss, last round".into(),
    ]);
    for row in &r.rows {
        t.add_row(vec![
            row.method.clone(),
            ci(&row.mean_accuracy),
            ci(&row.worst_site_accuracy),
            ci(&row.spread),
            ci(&row.equalized_odds_gap),
            ci(&row.tpr_gap),
            ci(&row.fpr_gap),
            row.last_loss_change
                .as_ref()
                .map_or("-".into(), |m| format!("{:+.2e}", m.mean)),
        ]);
    }
    say(
        obs,
        format!(
            "{}: mean over {} seeds [{:.0}% t-interval]; groups by raw {g}: {:?}",
            r.experiment,
            r.seeds,
            r.level * 100.0,
            r.group_sizes
        ),
    );
    say(obs, t);
    say(
        obs,
        format!(
            "floor (best constant predictor per site): mean {:.3}, worst site {:.3}; per site {:?}",
            r.floor.mean, r.floor.worst, r.floor.per_site
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::EngineArgs;
    use ward_data::{Matrix, SiteData, Split};

    /// A group is the raw value of the column for each test row, read before
    /// standardisation (which would turn 0/1 into other numbers).
    #[test]
    fn groups_come_from_the_raw_column_of_each_test_row() {
        let split = |x: Vec<f32>, y: Vec<u32>| Split {
            x: Matrix {
                rows: y.len(),
                cols: 2,
                data: x,
            },
            y,
        };
        let raw = FederatedDataset {
            name: "toy".into(),
            feature_names: vec!["age".into(), "sex".into()],
            num_classes: 2,
            sites: vec![SiteData {
                name: "a".into(),
                train: split(vec![50.0, 0.0, 60.0, 1.0, 70.0, 1.0], vec![0, 1, 1]),
                test: split(vec![55.0, 1.0, 65.0, 0.0], vec![1, 0]),
            }],
            warnings: Vec::new(),
            image: None,
            held_out: None,
        };
        let g = test_groups(&raw, "sex").unwrap();
        assert_eq!(g, vec![vec!["sex=1".to_string(), "sex=0".into()]]);
        let std = raw.standardized(ward_data::Standardization::PerSite);
        assert!(
            std.sites[0].test.x.row(0)[1] != 1.0,
            "standardisation changed nothing"
        );
        let e = test_groups(&raw, "race").unwrap_err();
        assert!(e.to_string().contains("race"), "{e}");

        // On fed-heart-disease: two groups, each test row's label its raw sex value.
        let heart =
            crate::load_data(&super::super::base("fairness-test"), &PathBuf::from(".")).unwrap();
        let g = test_groups(&heart, "sex").unwrap();
        let j = heart.feature_names.iter().position(|c| c == "sex").unwrap();
        for (s, gs) in heart.sites.iter().zip(&g) {
            assert_eq!(gs.len(), s.test.y.len());
            for (r, label) in gs.iter().enumerate() {
                let v = s.test.x.row(r)[j];
                assert!(v == 0.0 || v == 1.0, "{v}");
                assert_eq!(label, &format!("sex={v}"));
            }
        }
    }

    /// A tiny run end to end: 2 seeds, 2 rounds, FedAvg and q = 0, 1: one CSV line per
    /// (method, seed) plus the floor, the gaps present, q = 0 differs from the
    /// example-weighted FedAvg, and every interval has its two ends.
    #[test]
    fn tiny_fairness_run_writes_a_row_per_method_and_seed() {
        let tmp = tempfile::tempdir().unwrap();
        let args = ReproduceFairnessArgs {
            experiment: "fed-heart-disease".into(),
            q: vec![0.0, 1.0],
            seeds: 2,
            group_column: "sex".into(),
            rounds: Some(2),
            lr: Some(0.01),
            out: Some(tmp.path().to_path_buf()),
            jobs: Some(1),
            engine: EngineArgs {
                device: "cpu".into(),
                engine: "auto".into(),
            },
        };
        let r = fairness(args, &mut crate::Quiet).unwrap();
        assert_eq!(r.cells.len(), 6);
        assert_eq!(r.rows.len(), 3);
        let csv = fs_err::read_to_string(tmp.path().join("fairness.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 6 + 1, "{csv}");
        assert!(lines[0].contains("equalized_odds_gap"), "{}", lines[0]);
        for (line, (m, s)) in lines[1..7].iter().zip([
            ("fedavg", 0),
            ("fedavg", 1),
            ("qffl q=0", 0),
            ("qffl q=0", 1),
            ("qffl q=1", 0),
            ("qffl q=1", 1),
        ]) {
            assert!(line.starts_with(&format!("{m},")), "{line}");
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells[2], s.to_string());
            assert_eq!(cells.len(), lines[0].split(',').count());
        }
        assert!(lines[7].starts_with("floor"));
        for c in &r.cells {
            assert!(c.pooled.equalized_odds_difference.is_some(), "{c:?}");
            assert_eq!(c.per_site.len(), 4);
            assert_eq!(c.train_loss.len(), 2);
        }
        // Round 2 trains from round 1's aggregate: uniform (q = 0) and example-weighted
        // (FedAvg) means differ, so does the loss.
        let loss = |m: &str| -> Vec<f64> {
            r.cells
                .iter()
                .filter(|c| c.method == m)
                .map(|c| c.train_loss[1])
                .collect()
        };
        assert_ne!(loss("fedavg"), loss("qffl q=0"));
        for row in &r.rows {
            let m = row.mean_accuracy.as_ref().unwrap();
            assert_eq!(m.n, 2);
            assert!(m.lo.unwrap() <= m.mean && m.mean <= m.hi.unwrap());
        }
        let json: serde_json::Value = serde_json::from_str(
            &fs_err::read_to_string(tmp.path().join("fairness.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["cells"].as_array().unwrap().len(), 6);
        assert_eq!(json["group_sizes"].as_object().unwrap().len(), 2);
    }
}
