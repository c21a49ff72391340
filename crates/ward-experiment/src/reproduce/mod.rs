//! `ward reproduce flamby-heart`: FLamby's Fed-Heart-Disease table, then Ward's own rows.

pub mod dp;
pub mod fairness;
pub mod loso;
pub mod scanner_shift;
pub mod uncertainty;

use std::path::PathBuf;

use crate::Result;
use crate::say;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use ward_core::ExperimentSpec;
use ward_core::config::{DataSpec, DatasetKind, OptimizerKind, StandardizeKind, StrategyKind};
use ward_data::{FederatedDataset, SiteData};
use ward_fl::EngineOptions;

use crate::options::ReproduceArgs;
use crate::{Observer, engine_options};

/// FLamby's published means (du Terrail et al., NeurIPS 2022 Datasets and Benchmarks,
/// Fed-Heart-Disease; as listed in `shared/data/README.md`).
const SITES: [&str; 4] = ["Cleveland", "Hungary", "Switzerland", "VA Long Beach"];

/// One row of the table: a method with its full settings.
#[derive(Debug, Clone)]
struct Method {
    label: String,
    spec: ExperimentSpec,
    flamby: Option<f64>,
    note: String,
}

/// One finished row.
#[derive(Debug, Clone, Serialize)]
struct Row {
    method: String,
    mean: f64,
    std: f64,
    flamby: Option<f64>,
    ward_own: bool,
    note: String,
    per_seed: Vec<f64>,
    config: ExperimentSpec,
}

pub(crate) fn base(name: &str) -> ExperimentSpec {
    let mut s = ExperimentSpec::default_heart();
    s.name = name.into();
    s.data = DataSpec::builtin(DatasetKind::FedHeartDisease);
    s.federation.eval_every = 0;
    s
}

/// SGD, 100 local steps, 15 rounds, batch 4 (FLamby's federated settings).
pub(crate) fn federated(
    name: &str,
    strategy: StrategyKind,
    lr: f64,
    server_lr: Option<f64>,
) -> ExperimentSpec {
    let mut s = base(name);
    s.federation.strategy = strategy;
    s.train.optimizer = OptimizerKind::Sgd;
    s.train.lr = lr;
    s.train.local_steps = Some(100);
    s.train.local_epochs = None;
    s.federation.rounds = 15;
    s.federation.server_lr = server_lr;
    s
}

/// Adam lr 0.001, batch 4, 50 epochs (FLamby's pooled and local settings).
fn centralised(name: &str, strategy: StrategyKind, site: Option<&str>) -> ExperimentSpec {
    let mut s = base(name);
    s.federation.strategy = strategy;
    s.federation.local_site = site.map(str::to_string);
    s.train.optimizer = OptimizerKind::Adam;
    s.train.lr = 0.001;
    s.train.local_steps = None;
    s.train.local_epochs = Some(1);
    s.federation.rounds = 50;
    s
}

fn flamby_methods() -> Vec<Method> {
    let mut m = vec![Method {
        label: "pooled".into(),
        spec: centralised("pooled", StrategyKind::Pooled, None),
        flamby: Some(0.735),
        note: "Adam lr 0.001, batch 4, 50 epochs on all training data".into(),
    }];
    for (i, (site, f)) in SITES.iter().zip([0.722, 0.629, 0.567, 0.637]).enumerate() {
        m.push(Method {
            label: format!("local {i}"),
            spec: centralised(&format!("local-{i}"), StrategyKind::Local, Some(site)),
            flamby: Some(f),
            note: format!(
                "Adam lr 0.001, batch 4, 50 epochs on {site}; mean over all four test sets"
            ),
        });
    }
    let fed = |label: &str, k, lr, slr, f: f64, note: &str| Method {
        label: label.into(),
        spec: federated(label, k, lr, slr),
        flamby: Some(f),
        note: format!("{note}; SGD, batch 4, 100 local steps, 15 rounds"),
    };
    m.push(fed(
        "fedavg",
        StrategyKind::Fedavg,
        0.001,
        None,
        0.685,
        "lr 0.001",
    ));
    let mut prox = fed(
        "fedprox",
        StrategyKind::Fedprox,
        0.001,
        None,
        0.685,
        "lr 0.001, mu 0.01",
    );
    prox.spec.federation.mu = Some(0.01);
    m.push(prox);
    m.push(fed(
        "scaffold",
        StrategyKind::Scaffold,
        0.001,
        Some(1.0),
        0.684,
        "lr 0.001, server lr 1.0",
    ));
    m.push(fed(
        "cyclic",
        StrategyKind::Cyclic,
        0.01,
        None,
        0.718,
        "lr 0.01",
    ));
    m.push(fed(
        "fedadam",
        StrategyKind::Fedadam,
        0.01,
        Some(0.01),
        0.726,
        "lr 0.01, server lr 0.01, beta1 0.9, beta2 0.999, tau 1e-8",
    ));
    m.push(fed(
        "fedyogi",
        StrategyKind::Fedyogi,
        0.003162,
        Some(0.01),
        0.731,
        "lr 0.003162, server lr 0.01, beta1 0.9, beta2 0.999, tau 1e-8",
    ));
    m.push(fed(
        "fedadagrad",
        StrategyKind::Fedadagrad,
        0.003162,
        Some(0.316228),
        0.731,
        "lr 0.003162, server lr 0.316228, beta1 0.9, tau 1e-8",
    ));
    m
}

/// Mean and sample standard deviation (ddof 1; 0 for a single value).
pub(crate) fn mean_std(v: &[f64]) -> (f64, f64) {
    use ward_core::stats;
    (
        stats::mean(v).unwrap_or(f64::NAN),
        stats::std(v).unwrap_or(0.0),
    )
}

/// One line of `table.csv`: the method, its mean and std over seeds, the published
/// reference (empty where there is none) and the per-seed values.
pub(crate) struct CsvRow<'a> {
    pub(crate) method: &'a str,
    pub(crate) mean: f64,
    pub(crate) std: f64,
    pub(crate) flamby: Option<f64>,
    pub(crate) per_seed: &'a [f64],
}

/// Writes `table.csv` atomically in the columns every `ward reproduce` table shares:
/// `method,mean,std,flamby,seed0..seed{N-1}`.
pub(crate) fn write_table_csv(
    path: &std::path::Path,
    seeds: u64,
    rows: &[CsvRow<'_>],
) -> Result<()> {
    let mut head: Vec<String> = ["method", "mean", "std", "flamby"]
        .map(String::from)
        .to_vec();
    head.extend((0..seeds).map(|s| format!("seed{s}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let lines = rows.iter().map(|r| {
        let mut cells = vec![
            r.method.to_string(),
            format!("{:.6}", r.mean),
            format!("{:.6}", r.std),
            r.flamby.map_or(String::new(), |f| format!("{f:.3}")),
        ];
        cells.extend(r.per_seed.iter().map(|v| format!("{v:.6}")));
        cells
    });
    ward_report::write_csv_atomic(path, &head, lines)?;
    Ok(())
}

fn run_method(
    m: &Method,
    data: &FederatedDataset,
    seeds: u64,
    opts: EngineOptions,
    jobs: usize,
    ward_own: bool,
) -> Result<Row> {
    let seed_list: Vec<u64> = (0..seeds).collect();
    let per_seed = crate::parallel::run_ordered(
        &seed_list,
        jobs,
        |&seed| -> Result<f64> {
            let mut spec = m.spec.clone();
            spec.seed = seed;
            let spec = spec.check()?;
            Ok(crate::run_quietly(&spec, data, opts)?.summary.mean_accuracy)
        },
        |_| {},
    )
    .into_iter()
    .collect::<Result<Vec<f64>>>()?;
    let (mean, std) = mean_std(&per_seed);
    Ok(Row {
        method: m.label.clone(),
        mean,
        std,
        flamby: m.flamby,
        ward_own,
        note: m.note.clone(),
        per_seed,
        config: m.spec.clone(),
    })
}

/// `k` stratified folds inside each site's TRAINING split (the test splits are never
/// touched): fold `f` of the result trains on the other folds and scores on fold `f`.
fn cv_folds(data: &FederatedDataset, k: usize, seed: u64) -> Vec<FederatedDataset> {
    (0..k)
        .map(|f| {
            let sites = data
                .sites
                .iter()
                .enumerate()
                .map(|(si, s)| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(si as u64);
                    let mut fold_of = vec![0usize; s.train.y.len()];
                    for class in 0..data.num_classes as u32 {
                        let mut rows: Vec<usize> = (0..s.train.y.len())
                            .filter(|&i| s.train.y[i] == class)
                            .collect();
                        rows.shuffle(&mut rng);
                        for (j, r) in rows.into_iter().enumerate() {
                            fold_of[r] = j % k;
                        }
                    }
                    let tr: Vec<usize> = (0..fold_of.len()).filter(|&i| fold_of[i] != f).collect();
                    let va: Vec<usize> = (0..fold_of.len()).filter(|&i| fold_of[i] == f).collect();
                    SiteData {
                        name: s.name.clone(),
                        train: s.train.select(&tr),
                        test: s.train.select(&va),
                    }
                })
                .collect();
            FederatedDataset {
                name: format!("{}-cv{f}", data.name),
                feature_names: data.feature_names.clone(),
                num_classes: data.num_classes,
                sites,
                warnings: Vec::new(),
                image: data.image,
                // Cross-validation folds score training rows: no held-out set.
                held_out: None,
            }
        })
        .collect()
}

/// Mean validation accuracy of `spec` over the folds and `seeds` seeds.
fn cv_score(
    spec: &ExperimentSpec,
    folds: &[FederatedDataset],
    seeds: u64,
    opts: EngineOptions,
) -> Result<f64> {
    let mut total = 0.0;
    for fold in folds {
        for seed in 0..seeds {
            let mut s = spec.clone();
            s.seed = 1000 + seed;
            let s = s.check()?;
            total += crate::run_quietly(&s, fold, opts)?.summary.mean_accuracy;
        }
    }
    Ok(total / (folds.len() as f64 * seeds as f64))
}

/// Ward's own rows: for each federated family, the settings with the best 3-fold
/// cross-validated accuracy inside the training splits.
fn ward_methods(
    data: &FederatedDataset,
    opts: EngineOptions,
    jobs: usize,
) -> Result<Vec<(Method, f64)>> {
    let folds = cv_folds(data, 3, 2024);
    let lrs = [0.001, 0.003, 0.01, 0.03, 0.1];
    let mut families: Vec<(&str, Vec<ExperimentSpec>)> = Vec::new();
    families.push((
        "fedavg",
        lrs.iter()
            .map(|&lr| federated("ward-fedavg", StrategyKind::Fedavg, lr, None))
            .collect(),
    ));
    families.push((
        "fedprox",
        lrs.iter()
            .flat_map(|&lr| {
                [0.01, 0.1].map(|mu| {
                    let mut s = federated("ward-fedprox", StrategyKind::Fedprox, lr, None);
                    s.federation.mu = Some(mu);
                    s
                })
            })
            .collect(),
    ));
    families.push((
        "scaffold",
        lrs.iter()
            .map(|&lr| federated("ward-scaffold", StrategyKind::Scaffold, lr, Some(1.0)))
            .collect(),
    ));
    for (name, kind) in [
        ("fedadam", StrategyKind::Fedadam),
        ("fedyogi", StrategyKind::Fedyogi),
    ] {
        families.push((
            name,
            [0.003, 0.01, 0.03]
                .iter()
                .flat_map(|&lr| {
                    [0.003, 0.01, 0.03]
                        .map(|slr| federated(&format!("ward-{name}"), kind, lr, Some(slr)))
                })
                .collect(),
        ));
    }
    // Every candidate with both feature standardisations: per site (FLamby) and global
    // (pooled training statistics, computed federatedly from per-site sums).
    let families: Vec<(&str, Vec<ExperimentSpec>)> = families
        .into_iter()
        .map(|(name, cands)| {
            let both = cands
                .into_iter()
                .flat_map(|c| {
                    let mut g = c.clone();
                    g.data.standardize = StandardizeKind::Global;
                    [c, g]
                })
                .collect();
            (name, both)
        })
        .collect();
    // Every candidate's score, side by side; then the best of each family, in order.
    let all: Vec<&ExperimentSpec> = families.iter().flat_map(|(_, c)| c).collect();
    let mut scores =
        crate::parallel::run_ordered(&all, jobs, |c| cv_score(c, &folds, 2, opts), |_| {})
            .into_iter();
    let mut chosen = Vec::new();
    for (name, candidates) in families {
        let mut best: Option<(f64, ExperimentSpec)> = None;
        for c in candidates {
            let score = scores
                .next()
                .ok_or_else(|| crate::Error::Internal("a candidate without a score".into()))??;
            tracing::info!(family = name, lr = c.train.lr, server_lr = ?c.federation.server_lr, mu = ?c.federation.mu, score, "cv");
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, c));
            }
        }
        let (score, spec) = best.expect("every family has candidates");
        let mut settings = format!(
            "lr {}, {} standardisation",
            spec.train.lr,
            match spec.data.standardize {
                StandardizeKind::PerSite => "per-site",
                StandardizeKind::Global => "global",
            }
        );
        if let Some(s) = spec.federation.server_lr {
            settings.push_str(&format!(", server lr {s}"));
        }
        if let Some(mu) = spec.federation.mu {
            settings.push_str(&format!(", mu {mu}"));
        }
        chosen.push((
            Method {
                label: format!("ward {name} (cv)"),
                spec,
                flamby: None,
                note: format!(
                    "Ward's own: {settings}, chosen by 3-fold CV inside the training splits (CV accuracy {score:.3}); SGD, batch 4, 100 local steps, 15 rounds"
                ),
            },
            score,
        ));
    }
    Ok(chosen)
}

/// Runs the reproduction and writes `table.csv` and `table.json`.
pub fn flamby_heart(args: ReproduceArgs, obs: &mut dyn Observer) -> Result<()> {
    let opts = engine_options(&args.engine)?;
    let seeds = args.seeds.max(1);
    let data = crate::load_data(&base("flamby-heart"), &PathBuf::from("."))?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| crate::default_run_dir("reproduce-flamby-heart"));
    fs_err::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    let methods = flamby_methods();
    let jobs = crate::parallel::jobs_for(args.jobs, opts, &methods[0].spec, &data);
    for (k, m) in methods.iter().enumerate() {
        tracing::info!(method = m.label, "running");
        obs.step(k, methods.len() + 1, &m.label);
        rows.push(run_method(m, &data, seeds, opts, jobs, false)?);
    }
    if !args.no_search {
        obs.step(
            methods.len(),
            methods.len() + 1,
            "cross-validated search for Ward's rows",
        );
        for (m, _) in ward_methods(&data, opts, jobs)? {
            rows.push(run_method(&m, &data, seeds, opts, jobs, true)?);
        }
    }
    obs.step(methods.len() + 1, methods.len() + 1, "done");
    let csv_rows: Vec<CsvRow<'_>> = rows
        .iter()
        .map(|r| CsvRow {
            method: &r.method,
            mean: r.mean,
            std: r.std,
            flamby: r.flamby,
            per_seed: &r.per_seed,
        })
        .collect();
    write_table_csv(&dir.join("table.csv"), seeds, &csv_rows)?;
    ward_report::write_json_atomic(&dir.join("table.json"), &rows)?;

    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "method",
        "mean",
        "std",
        "FLamby",
        "Δ vs FLamby",
        "settings",
    ]);
    for r in &rows {
        t.add_row(vec![
            r.method.clone(),
            format!("{:.3}", r.mean),
            format!("{:.3}", r.std),
            r.flamby.map_or("-".into(), |f| format!("{f:.3}")),
            r.flamby
                .map_or("-".into(), |f| format!("{:+.3}", r.mean - f)),
            r.note.clone(),
        ]);
    }
    say(
        obs,
        format!(
            "Fed-Heart-Disease, mean test accuracy over the four sites, {seeds} seeds (split fixed, seed 43)"
        ),
    );
    say(obs, t);
    say(
        obs,
        format!(
            "written: {}, {}",
            dir.join("table.csv").display(),
            dir.join("table.json").display()
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std_by_hand() {
        // [1, 2, 3, 4]: mean 2.5; sum of squares 5; ddof 1 → sqrt(5/3) = 1.2909944.
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.290_994_4).abs() < 1e-6);
    }

    #[test]
    fn flamby_rows_have_flamby_settings_and_validate() {
        let ms = flamby_methods();
        assert_eq!(ms.len(), 12);
        for m in &ms {
            m.spec.validate().unwrap();
        }
        let adam = ms.iter().find(|m| m.label == "fedadam").unwrap();
        assert_eq!(adam.spec.train.lr, 0.01);
        assert_eq!(adam.spec.federation.server_lr, Some(0.01));
        assert_eq!(adam.spec.train.local_steps, Some(100));
        assert_eq!(adam.spec.federation.rounds, 15);
    }
}
