//! `ward reproduce loso`: generalisation to an unseen hospital, leave one site out.
//!
//! For every strategy, seed and site `h`: the experiment is built on the dataset with
//! `h` removed ([`FederatedDataset::without_site`]) and run through the same engine as
//! `ward run` ([`crate::prepare`]); the final global model is then scored on `h`'s test
//! split, as it is and after adapting to `h`:
//!
//! - `k=N`: fine-tuned on `min(N, rows)` labelled cases drawn (seeded, stratified by
//!   class) from `h`'s *training* split with Ward's local training
//!   ([`ward_models::train_local`]: fresh Adam, `--ft-steps` steps at `--ft-lr`, batch
//!   `min(train.batch-size, N)`, no augmentation); `k=0` is the model as trained.
//! - `adabn` (BatchNorm models): every BatchNorm layer's running statistics recomputed
//!   on `h`'s unlabelled training images ([`ward_models::adapt::adabn`]).
//! - `tent` (BatchNorm models): TENT online on `h`'s unlabelled test images in their
//!   stored order ([`ward_models::adapt::tent`]: batch statistics, one Adam step per
//!   batch on the BatchNorm affine parameters).
//!
//! FedBN has no BatchNorm layers for a site it never saw: the held-out site gets the
//! global model as the federation stores it, whose BatchNorm layers are the
//! example-weighted average of the training sites' own (what `model.safetensors` holds).
//!
//! Beside each score: the floor (the best constant prediction on `h`'s test split) and
//! the in-federation score (the same strategy trained with every site, `h` included,
//! scored on `h`'s test split by the model `h` uses: under FedBN its own layers).
//! Means over seeds carry 95 % Student-t intervals over seeds
//! ([`ward_core::stats::t_interval`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use ward_core::config::{OptimizerKind, StandardizeKind, StrategyKind};
use ward_core::{ExperimentSpec, Params};
use ward_data::{FederatedDataset, SiteData, Split, Standardization};
use ward_fl::EngineOptions;
use ward_models::{
    BatchStream, GradientEngine, LocalFit, ModelArch, Optimizer, OptimizerConfig, make_engine,
};

use crate::options::LosoArgs;
use crate::{Error, Observer, Result, engine_options, say};

/// The synthetic scanner-shift preset (`scanner-shift`).
const SCANNER_SHIFT: &str = include_str!("../../../../examples/scanner-shift-fedbn.toml");

/// ChaCha stream (of the run seed) that draws the fine-tuning cases; the site's index
/// is added.
const DRAW_STREAM: u64 = 0x1050_0000;

/// How the held-out site's model is adapted before it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Adaptation {
    /// Fine-tuned on `k` labelled training cases (0: not at all).
    FineTune(usize),
    /// AdaBN: BatchNorm statistics of the site's unlabelled training images.
    AdaBn,
    /// TENT on the site's unlabelled test images.
    Tent,
}

impl Adaptation {
    /// `k=5`, `adabn`, `tent`.
    pub fn label(self) -> String {
        match self {
            Self::FineTune(k) => format!("k={k}"),
            Self::AdaBn => "adabn".into(),
            Self::Tent => "tent".into(),
        }
    }
}

/// Accuracy and balanced accuracy (mean recall over the classes present) of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Share of rows predicted right.
    pub accuracy: f64,
    /// Mean over the classes present in the labels of the share of that class's rows
    /// predicted right.
    pub balanced_accuracy: f64,
}

/// Scores logits (`z.len() / y.len()` per row: one logit is a sigmoid output, more a
/// softmax) against class labels.
pub fn score(z: &[f32], y: &[u32], classes: usize) -> Score {
    let k = z.len() / y.len().max(1);
    let mut hit = vec![0usize; classes.max(2)];
    let mut count = vec![0usize; classes.max(2)];
    for (r, &label) in y.iter().enumerate() {
        let row = &z[r * k..(r + 1) * k];
        let pred = if k == 1 {
            u32::from(row[0] > 0.0)
        } else {
            let mut best = 0;
            for (c, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = c;
                }
            }
            best as u32
        };
        count[label as usize] += 1;
        hit[label as usize] += usize::from(pred == label);
    }
    let present: Vec<usize> = (0..count.len()).filter(|&c| count[c] > 0).collect();
    Score {
        accuracy: hit.iter().sum::<usize>() as f64 / y.len().max(1) as f64,
        balanced_accuracy: present
            .iter()
            .map(|&c| hit[c] as f64 / count[c] as f64)
            .sum::<f64>()
            / present.len().max(1) as f64,
    }
}

/// The best constant predictor on `y`: its accuracy (the largest class's share) and
/// balanced accuracy (1 / classes present).
pub fn floor(y: &[u32]) -> Score {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for &c in y {
        *counts.entry(c).or_default() += 1;
    }
    Score {
        accuracy: counts.values().max().copied().unwrap_or(0) as f64 / y.len().max(1) as f64,
        balanced_accuracy: 1.0 / counts.len().max(1) as f64,
    }
}

/// `min(k, rows)` row indices of `y` (a site's training labels), drawn with `rng`,
/// stratified: each class gets its share `k * n_c / n` rounded by largest remainder, and
/// at least one row while `k` allows. Returned ascending, without repeats.
pub fn draw_stratified(y: &[u32], k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let k = k.min(y.len());
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &c) in y.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    for rows in by_class.values_mut() {
        rows.shuffle(rng);
    }
    let n = y.len() as f64;
    let classes: Vec<&Vec<usize>> = by_class.values().collect();
    let mut take: Vec<usize> = classes
        .iter()
        .map(|r| (k as f64 * r.len() as f64 / n).floor() as usize)
        .collect();
    // At least one per class while k allows (largest classes keep theirs first).
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(classes[c].len()));
    for &c in &order {
        if take[c] == 0 && take.iter().sum::<usize>() < k {
            take[c] = 1;
        }
    }
    // Then the largest remainders.
    let mut rem: Vec<(f64, usize)> = (0..classes.len())
        .map(|c| (k as f64 * classes[c].len() as f64 / n - take[c] as f64, c))
        .collect();
    rem.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut i = 0;
    while take.iter().sum::<usize>() < k {
        let c = rem[i % rem.len()].1;
        if take[c] < classes[c].len() {
            take[c] += 1;
        }
        i += 1;
    }
    let mut out: Vec<usize> = classes
        .iter()
        .zip(&take)
        .flat_map(|(rows, &t)| rows[..t].iter().copied())
        .collect();
    out.sort_unstable();
    out
}

/// The labelled fine-tuning cases of a (held-out, standardised) site: `min(k, rows)`
/// rows of its training split, drawn by [`draw_stratified`] from the run seed's stream
/// for site `index`. Never a test row.
pub fn fine_tune_rows(site: &SiteData, k: usize, seed: u64, index: usize) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(DRAW_STREAM + index as u64);
    site.train
        .select(&draw_stratified(&site.train.y, k, &mut rng))
}

/// Settings of the adaptations at the held-out site.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptSettings {
    /// Labelled cases asked for (0: no fine-tuning).
    pub k: Vec<usize>,
    /// Fine-tuning steps.
    pub ft_steps: usize,
    /// Fine-tuning Adam learning rate.
    pub ft_lr: f64,
    /// TENT's Adam learning rate.
    pub tent_lr: f64,
    /// TENT's batch.
    pub tent_batch: usize,
}

fn adam(spec: &ExperimentSpec, lr: f64) -> OptimizerConfig {
    let mut c = OptimizerConfig::from_spec(&spec.train);
    c.kind = OptimizerKind::Adam;
    c.lr = lr as f32;
    c.momentum = 0.0;
    c.weight_decay = 0.0;
    c
}

/// Fine-tunes a copy of `global` on `rows` (Ward's local training) and returns it.
fn fine_tune(
    engine: &mut dyn GradientEngine,
    global: &Params,
    rows: &Split,
    spec: &ExperimentSpec,
    a: &AdaptSettings,
    seed: u64,
) -> Result<Params> {
    let mut params = global.clone();
    if rows.y.is_empty() || a.ft_steps == 0 {
        return Ok(params);
    }
    let batch = spec.train.batch_size.min(rows.y.len()).max(1);
    let mut stream = BatchStream::new(rows.y.len(), batch, seed);
    let mut opt = Optimizer::new(adam(spec, a.ft_lr));
    ward_models::train_local(
        engine,
        params.values_mut(),
        rows,
        &mut stream,
        &mut opt,
        &LocalFit {
            steps: a.ft_steps,
            prox: None,
            correction: None,
            // The batch order's seed, on another stream: with model.dropout, fine-tuning
            // drops units as training did.
            dropout_seed: Some(seed ^ 0xD80F),
        },
    )?;
    Ok(params)
}

/// One score per adaptation of one held-out run.
#[derive(Debug, Clone, Serialize)]
pub struct Adapted {
    /// The adaptation.
    pub adaptation: Adaptation,
    /// Labelled rows it used.
    pub labelled_rows: usize,
    /// Its score on the held-out test split.
    pub score: Score,
}

/// Scores `global` at the held-out `site` (standardised as a new site) as trained and
/// after every adaptation.
pub fn adapt_and_score(
    arch: &ModelArch,
    global: &Params,
    site: &SiteData,
    index: usize,
    spec: &ExperimentSpec,
    a: &AdaptSettings,
    opts: EngineOptions,
) -> Result<Vec<Adapted>> {
    let classes = arch_classes(arch, site);
    let mut engine = make_engine(arch, opts.device, opts.engine)?;
    let rows = site.test.y.len();
    let eval = |engine: &mut Box<dyn GradientEngine>, p: &Params| -> Result<Score> {
        let z = engine.logits(p.values(), &site.test.x.data, rows)?;
        Ok(score(&z, &site.test.y, classes))
    };
    let mut out = Vec::new();
    for &k in &a.k {
        let cases = fine_tune_rows(site, k, spec.seed, index);
        let params = fine_tune(engine.as_mut(), global, &cases, spec, a, spec.seed ^ 0xF1E7)?;
        out.push(Adapted {
            adaptation: Adaptation::FineTune(k),
            labelled_rows: cases.y.len(),
            score: eval(&mut engine, &params)?,
        });
    }
    if arch.has_batch_norm() {
        let mut p = global.clone();
        ward_models::adapt::adabn(
            engine.as_mut(),
            arch,
            p.values_mut(),
            &site.train.x.data,
            site.train.y.len(),
        )?;
        out.push(Adapted {
            adaptation: Adaptation::AdaBn,
            labelled_rows: 0,
            score: eval(&mut engine, &p)?,
        });
        let mut p = global.clone();
        let pass = ward_models::adapt::tent(
            engine.as_mut(),
            arch,
            p.values_mut(),
            &site.test.x.data,
            rows,
            a.tent_batch,
            adam(spec, a.tent_lr),
        )?;
        out.push(Adapted {
            adaptation: Adaptation::Tent,
            labelled_rows: 0,
            score: score(&pass.logits, &site.test.y, classes),
        });
    }
    Ok(out)
}

fn arch_classes(arch: &ModelArch, site: &SiteData) -> usize {
    let top = site
        .train
        .y
        .iter()
        .chain(&site.test.y)
        .max()
        .map_or(2, |&m| m as usize + 1);
    match arch {
        ModelArch::Conv(c) => c.outputs.max(top),
        ModelArch::Dense(_) => top.max(2),
    }
}

/// How a run of `spec` standardises its sites (and so a new one).
fn standardization(spec: &ExperimentSpec) -> Standardization {
    if spec.federation.strategy == StrategyKind::Pooled
        || spec.data.standardize == StandardizeKind::Global
    {
        Standardization::Pooled
    } else {
        Standardization::PerSite
    }
}

/// A training run without the held-out site: the model, its architecture, the held-out
/// site standardised as a new site of that federation, the training data the run's
/// sites held, and the mean training loss of the last two rounds.
pub struct HeldOutRun {
    /// The model architecture.
    pub arch: ModelArch,
    /// The final global model.
    pub global: Params,
    /// The held-out site, standardised as a new site.
    pub site: SiteData,
    /// The data the run's sites held (standardised).
    pub trained_on: FederatedDataset,
    /// Mean training loss over the sites that trained in the last round, and in the
    /// round before (NaN where there is none).
    pub last_losses: (f64, f64),
}

/// Trains `spec` on `data` without site `h` through the experiment engine.
pub fn train_without(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    h: usize,
    opts: EngineOptions,
) -> Result<HeldOutRun> {
    let name = &data.sites[h].name;
    let (rest, site) = data
        .without_site(name)
        .ok_or_else(|| Error::Internal(format!("no site {name}")))?;
    let checked = spec.clone().check()?;
    let prepared = crate::prepare(&checked, &rest, opts)?;
    let arch = prepared.simulation().arch.clone();
    let outcome = prepared.run(&mut crate::Quiet)?;
    let site = rest.standardize_new_site(&site, standardization(spec));
    let rounds = outcome.summary.rounds;
    let mean_loss = |round: usize| {
        let v: Vec<f64> = outcome
            .records
            .iter()
            .filter(|r| r.round == round)
            .filter_map(|r| r.train_loss)
            .collect();
        ward_core::stats::mean(&v).unwrap_or(f64::NAN)
    };
    Ok(HeldOutRun {
        arch,
        global: outcome.trained.global,
        site,
        trained_on: outcome.trained.data,
        last_losses: (mean_loss(rounds), mean_loss(rounds.saturating_sub(1))),
    })
}

/// What one unit of work gives back.
enum UnitResult {
    /// The strategy with every site: each site's score by the model it uses.
    InFed(Vec<Score>),
    /// A held-out run's adapted scores and last two rounds' training losses.
    HeldOut(Vec<Adapted>, (f64, f64)),
}

/// One unit: (seed, strategy index, held-out site or None for the in-federation run).
type Unit = (u64, usize, Option<usize>);

fn in_federation(
    spec: &ExperimentSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
) -> Result<Vec<Score>> {
    let checked = spec.clone().check()?;
    let prepared = crate::prepare(&checked, data, opts)?;
    let arch = prepared.simulation().arch.clone();
    let outcome = prepared.run(&mut crate::Quiet)?;
    let own: BTreeMap<String, Params> = outcome.trained.site_models.into_iter().collect();
    let mut engine = make_engine(&arch, opts.device, opts.engine)?;
    outcome
        .trained
        .data
        .sites
        .iter()
        .map(|s| {
            let p = own.get(&s.name).unwrap_or(&outcome.trained.global);
            let z = engine.logits(p.values(), &s.test.x.data, s.test.y.len())?;
            Ok(score(&z, &s.test.y, arch_classes(&arch, s)))
        })
        .collect()
}

fn run_unit(
    unit: &Unit,
    specs: &[ExperimentSpec],
    data: &FederatedDataset,
    a: &AdaptSettings,
    opts: EngineOptions,
) -> Result<UnitResult> {
    let (seed, s, h) = *unit;
    let mut spec = specs[s].clone();
    spec.seed = seed;
    match h {
        None => Ok(UnitResult::InFed(in_federation(&spec, data, opts)?)),
        Some(h) => {
            let run = train_without(&spec, data, h, opts)?;
            let scores = adapt_and_score(&run.arch, &run.global, &run.site, h, &spec, a, opts)?;
            Ok(UnitResult::HeldOut(scores, run.last_losses))
        }
    }
}

/// The experiment that `what` names: its spec, where its relative paths resolve, and
/// whether FLamby's per-strategy settings apply (`fed-heart-disease`).
fn resolve(what: &str, sets: &[String]) -> Result<(ExperimentSpec, PathBuf, bool)> {
    let user = |e: ward_core::config::LoadError| Error::User(e.to_string());
    match what {
        "fed-heart-disease" => {
            let l = crate::default_experiment(sets)?;
            Ok((l.spec.into_inner(), l.base_dir, true))
        }
        "scanner-shift" => {
            let l = ward_core::config::load_str(
                "<scanner-shift preset>",
                SCANNER_SHIFT,
                sets,
                PathBuf::from("."),
            )
            .map_err(user)?;
            Ok((l.spec.into_inner(), l.base_dir, false))
        }
        path => {
            let p = std::path::Path::new(path);
            if !p.exists() {
                return Err(Error::User(format!(
                    "{what:?} is neither a built-in experiment (fed-heart-disease, scanner-shift) nor an existing experiment file"
                )));
            }
            let l = crate::load(p, sets)?;
            Ok((l.spec.into_inner(), l.base_dir, false))
        }
    }
}

/// FLamby's Fed-Heart-Disease settings of a federated strategy: (lr, server lr, mu);
/// SGD, batch 4, 100 local steps, 15 rounds (as `ward reproduce flamby-heart`).
fn flamby_settings(kind: StrategyKind) -> (f64, Option<f64>, Option<f64>) {
    match kind {
        StrategyKind::Fedprox => (0.001, None, Some(0.01)),
        StrategyKind::Scaffold => (0.001, Some(1.0), None),
        StrategyKind::Cyclic => (0.01, None, None),
        StrategyKind::Fedadam => (0.01, Some(0.01), None),
        StrategyKind::Fedyogi => (0.003_162, Some(0.01), None),
        StrategyKind::Fedadagrad => (0.003_162, Some(0.316_228), None),
        _ => (0.001, None, None),
    }
}

/// The base experiment with strategy `kind`, run without one of `sites` sites.
fn strategy_spec(
    base: &ExperimentSpec,
    kind: StrategyKind,
    flamby: bool,
    sites: usize,
) -> ExperimentSpec {
    let mut s = base.clone();
    let f = &mut s.federation;
    f.strategy = kind;
    f.local_site = None;
    f.fine_tune_steps = 0;
    f.eval_every = 0;
    f.sites_per_round = match kind {
        StrategyKind::Cyclic | StrategyKind::Pooled => None,
        _ => f
            .sites_per_round
            .map(|k| k.clamp(1, sites.saturating_sub(1).max(1))),
    };
    if flamby && kind == StrategyKind::Pooled {
        // FLamby's pooled training: Adam lr 0.001, 50 epochs.
        s.train.optimizer = OptimizerKind::Adam;
        s.train.lr = 0.001;
        s.train.local_steps = None;
        s.train.local_epochs = Some(1);
        s.federation.rounds = 50;
    } else if flamby {
        let (lr, server_lr, mu) = flamby_settings(kind);
        s.train.optimizer = OptimizerKind::Sgd;
        s.train.lr = lr;
        s.train.local_steps = Some(100);
        s.train.local_epochs = None;
        s.federation.rounds = 15;
        s.federation.server_lr = server_lr;
        s.federation.mu = mu;
    }
    let f = &mut s.federation;
    if kind == StrategyKind::Fedprox {
        f.mu = f.mu.or(Some(0.01));
    } else {
        f.mu = None;
    }
    if kind == StrategyKind::Scaffold {
        f.server_lr = f.server_lr.or(Some(1.0));
    } else if kind.is_fedopt() {
        f.server_lr = f.server_lr.or(Some(0.01));
    } else {
        f.server_lr = None;
    }
    s.name = format!("{}-loso-{}", base.name, kind.as_str());
    s
}

/// The strategies named in `--strategies`, or the default set.
fn strategies(names: &[String], batch_norm: bool) -> Result<Vec<StrategyKind>> {
    use StrategyKind as K;
    let all = [
        K::Fedavg,
        K::Fedprox,
        K::Scaffold,
        K::Fedadam,
        K::Fedyogi,
        K::Fedadagrad,
        K::Cyclic,
        K::Fedbn,
        K::Pooled,
    ];
    if names.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|&k| k != K::Fedbn || batch_norm)
            .collect());
    }
    names
        .iter()
        .map(|n| {
            all.into_iter()
                .find(|k| k.as_str() == n.trim())
                .ok_or_else(|| {
                    Error::User(format!(
                        "--strategies: {n:?} is not one of {:?}",
                        all.map(StrategyKind::as_str)
                    ))
                })
        })
        .collect()
}

/// A mean over seeds with its 95 % Student-t interval (absent for one seed).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    /// Mean over seeds.
    pub mean: f64,
    /// Lower end of the 95 % interval.
    pub low: Option<f64>,
    /// Upper end.
    pub high: Option<f64>,
}

impl Interval {
    fn of(v: &[f64]) -> Self {
        match ward_core::stats::t_interval(v, 0.95) {
            Some((mean, low, high)) => Self {
                mean,
                low: Some(low),
                high: Some(high),
            },
            None => Self {
                mean: ward_core::stats::mean(v).unwrap_or(f64::NAN),
                low: None,
                high: None,
            },
        }
    }

    fn show(&self) -> String {
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!("{:.3} [{l:.3}, {h:.3}]", self.mean),
            _ => format!("{:.3}", self.mean),
        }
    }

    fn cells(&self) -> [String; 3] {
        let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        [format!("{:.6}", self.mean), f(self.low), f(self.high)]
    }
}

/// One line of the table: a held-out site, a strategy and an adaptation.
#[derive(Debug, Clone, Serialize)]
struct Row {
    held_out: String,
    strategy: String,
    adaptation: String,
    /// Labelled cases the fine-tuning used: min(k, train_rows).
    labelled_rows: usize,
    /// The held-out site's training rows (the cap on k; AdaBN's unlabelled images).
    train_rows: usize,
    test_rows: usize,
    accuracy: Interval,
    balanced_accuracy: Interval,
    floor: Score,
    in_federation_accuracy: Interval,
    in_federation_balanced_accuracy: Interval,
    per_seed_accuracy: Vec<f64>,
    per_seed_balanced_accuracy: Vec<f64>,
}

/// The last two rounds' mean training loss of one held-out run.
#[derive(Debug, Clone, Serialize)]
struct RunLoss {
    seed: u64,
    strategy: String,
    held_out: String,
    last_round: f64,
    previous_round: f64,
}

/// Per-seed scores gathered from the units, in the table's order.
struct Gathered {
    /// (site, strategy, adaptation index) → per-seed scores and the labelled rows.
    cells: BTreeMap<(usize, usize, usize), (Vec<Score>, usize)>,
    /// (site, strategy) → per-seed in-federation scores.
    in_fed: BTreeMap<(usize, usize), Vec<Score>>,
    losses: Vec<RunLoss>,
}

fn gather(
    units: &[Unit],
    results: Vec<Result<UnitResult>>,
    adaptations: &[Adaptation],
    names: &[String],
    kinds: &[StrategyKind],
) -> Result<Gathered> {
    let mut g = Gathered {
        cells: BTreeMap::new(),
        in_fed: BTreeMap::new(),
        losses: Vec::new(),
    };
    for (&(seed, s, h), r) in units.iter().zip(results) {
        match (r?, h) {
            (UnitResult::InFed(scores), None) => {
                for (i, sc) in scores.into_iter().enumerate() {
                    g.in_fed.entry((i, s)).or_default().push(sc);
                }
            }
            (UnitResult::HeldOut(scores, (last, prev)), Some(h)) => {
                for a in scores {
                    let j = adaptations
                        .iter()
                        .position(|&x| x == a.adaptation)
                        .ok_or_else(|| Error::Internal("an unknown adaptation".into()))?;
                    let e = g.cells.entry((h, s, j)).or_insert((Vec::new(), 0));
                    e.0.push(a.score);
                    e.1 = a.labelled_rows;
                }
                g.losses.push(RunLoss {
                    seed,
                    strategy: kinds[s].as_str().into(),
                    held_out: names[h].clone(),
                    last_round: last,
                    previous_round: prev,
                });
            }
            _ => return Err(Error::Internal("a unit answered out of kind".into())),
        }
    }
    Ok(g)
}

fn rows_of(
    g: &Gathered,
    data: &FederatedDataset,
    adaptations: &[Adaptation],
    kinds: &[StrategyKind],
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (h, site) in data.sites.iter().enumerate() {
        for (s, kind) in kinds.iter().enumerate() {
            let fed = g.in_fed.get(&(h, s)).map_or(&[][..], Vec::as_slice);
            let fed_acc: Vec<f64> = fed.iter().map(|x| x.accuracy).collect();
            let fed_bal: Vec<f64> = fed.iter().map(|x| x.balanced_accuracy).collect();
            for (j, a) in adaptations.iter().enumerate() {
                let Some((scores, labelled)) = g.cells.get(&(h, s, j)) else {
                    continue;
                };
                let acc: Vec<f64> = scores.iter().map(|x| x.accuracy).collect();
                let bal: Vec<f64> = scores.iter().map(|x| x.balanced_accuracy).collect();
                rows.push(Row {
                    held_out: site.name.clone(),
                    strategy: kind.as_str().into(),
                    adaptation: a.label(),
                    labelled_rows: *labelled,
                    train_rows: site.train.y.len(),
                    test_rows: site.test.y.len(),
                    accuracy: Interval::of(&acc),
                    balanced_accuracy: Interval::of(&bal),
                    floor: floor(&site.test.y),
                    in_federation_accuracy: Interval::of(&fed_acc),
                    in_federation_balanced_accuracy: Interval::of(&fed_bal),
                    per_seed_accuracy: acc,
                    per_seed_balanced_accuracy: bal,
                });
            }
        }
    }
    rows
}

fn write_csv(path: &std::path::Path, rows: &[Row], seeds: u64) -> Result<()> {
    let mut head: Vec<String> = [
        "held_out",
        "strategy",
        "adaptation",
        "labelled_rows",
        "train_rows",
        "test_rows",
        "accuracy",
        "accuracy_low",
        "accuracy_high",
        "balanced_accuracy",
        "balanced_accuracy_low",
        "balanced_accuracy_high",
        "floor_accuracy",
        "floor_balanced_accuracy",
        "in_federation_accuracy",
        "in_federation_accuracy_low",
        "in_federation_accuracy_high",
        "in_federation_balanced_accuracy",
    ]
    .map(String::from)
    .to_vec();
    head.extend((0..seeds).map(|s| format!("seed{s}_accuracy")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let lines = rows.iter().map(|r| {
        let mut c = vec![
            r.held_out.clone(),
            r.strategy.clone(),
            r.adaptation.clone(),
            r.labelled_rows.to_string(),
            r.train_rows.to_string(),
            r.test_rows.to_string(),
        ];
        c.extend(r.accuracy.cells());
        c.extend(r.balanced_accuracy.cells());
        c.push(format!("{:.6}", r.floor.accuracy));
        c.push(format!("{:.6}", r.floor.balanced_accuracy));
        c.extend(r.in_federation_accuracy.cells());
        c.push(format!("{:.6}", r.in_federation_balanced_accuracy.mean));
        c.extend(r.per_seed_accuracy.iter().map(|v| format!("{v:.6}")));
        c
    });
    ward_report::write_csv_atomic(path, &head, lines)?;
    Ok(())
}

/// The full table: one line per (held-out site, strategy, adaptation).
fn print_rows(rows: &[Row], images: bool, obs: &mut dyn Observer) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut head = vec![
        "held-out site",
        "strategy",
        "adaptation",
        "labelled rows",
        "accuracy [95% CI]",
    ];
    if images {
        head.push("balanced acc. [95% CI]");
    }
    head.extend(["floor", "in-federation acc. [95% CI]"]);
    t.set_header(head);
    for r in rows {
        let labelled = if r.adaptation.starts_with("k=") {
            let k: usize = r.adaptation[2..].parse().unwrap_or(0);
            if k > r.train_rows {
                format!("{} (cap: {} train rows)", r.labelled_rows, r.train_rows)
            } else {
                r.labelled_rows.to_string()
            }
        } else if r.adaptation == "adabn" {
            format!("0 ({} unlabelled train)", r.train_rows)
        } else {
            format!("0 ({} unlabelled test)", r.test_rows)
        };
        let mut cells = vec![
            r.held_out.clone(),
            r.strategy.clone(),
            r.adaptation.clone(),
            labelled,
            r.accuracy.show(),
        ];
        if images {
            cells.push(r.balanced_accuracy.show());
        }
        let floor = if images {
            format!(
                "{:.3} (bal. {:.3})",
                r.floor.accuracy, r.floor.balanced_accuracy
            )
        } else {
            format!("{:.3}", r.floor.accuracy)
        };
        cells.extend([floor, r.in_federation_accuracy.show()]);
        t.add_row(cells);
    }
    say(obs, t);
}

/// Strategy x adaptation: the mean over held-out sites of the mean accuracy.
fn print_summary(rows: &[Row], adaptations: &[Adaptation], obs: &mut dyn Observer) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut head = vec!["strategy".to_string()];
    head.extend(adaptations.iter().map(|a| a.label()));
    head.extend(["in-federation".into(), "floor".into()]);
    t.set_header(head);
    let mut order: Vec<&str> = Vec::new();
    for r in rows {
        if !order.contains(&r.strategy.as_str()) {
            order.push(&r.strategy);
        }
    }
    // Mean of `f` over the rows of strategy `s` and adaptation `a`.
    let mean = |s: &str, a: &str, f: &dyn Fn(&Row) -> f64| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.strategy == s && r.adaptation == a)
            .map(f)
            .collect();
        format!("{:.3}", ward_core::stats::mean(&v).unwrap_or(f64::NAN))
    };
    for s in order {
        let first = adaptations[0].label();
        let mut cells = vec![s.to_string()];
        cells.extend(
            adaptations
                .iter()
                .map(|a| mean(s, &a.label(), &|r| r.accuracy.mean)),
        );
        cells.push(mean(s, &first, &|r| r.in_federation_accuracy.mean));
        cells.push(mean(s, &first, &|r| r.floor.accuracy));
        t.add_row(cells);
    }
    say(obs, "mean over held-out sites of the mean accuracy:");
    say(obs, t);
}

/// What `loso.json` holds.
#[derive(Serialize)]
struct Report<'a> {
    experiment: String,
    dataset: String,
    sites: Vec<String>,
    seeds: u64,
    strategies: Vec<&'static str>,
    adaptations: Vec<String>,
    settings: &'a AdaptSettings,
    notes: Vec<String>,
    wall_time_s: f64,
    rows: &'a [Row],
    runs: &'a [RunLoss],
    configs: &'a [ExperimentSpec],
}

/// One line per strategy: how much the training loss still moved in the last round.
fn loss_lines(losses: &[RunLoss], kinds: &[StrategyKind]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| {
            let rel: Vec<f64> = losses
                .iter()
                .filter(|l| l.strategy == k.as_str())
                .map(|l| (l.last_round - l.previous_round) / l.previous_round.abs().max(1e-12))
                .filter(|v| v.is_finite())
                .collect();
            let (lo, hi) = rel
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            match ward_core::stats::mean(&rel) {
                Some(m) => format!(
                    "{}: training loss, last round vs the one before: mean change {:+.1}% (from {:+.1}% to {:+.1}%) over {} runs",
                    k.as_str(),
                    100.0 * m,
                    100.0 * lo,
                    100.0 * hi,
                    rel.len()
                ),
                None => format!("{}: no two rounds of training loss to compare", k.as_str()),
            }
        })
        .collect()
}

fn notes(a: &AdaptSettings, batch_norm: bool, kinds: &[StrategyKind]) -> Vec<String> {
    let mut n = vec![format!(
        "k=N: fine-tuned from the trained model on min(N, train rows) labelled cases of the held-out site's training split (seeded, stratified by class), Adam lr {} for {} steps, batch min(train.batch-size, N), no augmentation; scored on its test split. k=0: the model as trained.",
        a.ft_lr, a.ft_steps
    )];
    if batch_norm {
        n.push("adabn: BatchNorm running statistics recomputed on the held-out site's unlabelled training images (one pass, all images as one batch; Li et al. 2016).".into());
        n.push(format!(
            "tent: online TENT (Wang et al. 2021) on the held-out site's unlabelled test images in stored order, batch {}, BatchNorm with batch statistics, one Adam step (lr {}) per batch on the BatchNorm affine parameters only; each batch predicted before its own update.",
            a.tent_batch, a.tent_lr
        ));
    }
    if kinds.contains(&StrategyKind::Fedbn) {
        n.push("fedbn at the held-out site: the global model as stored, whose BatchNorm layers are the example-weighted average of the training sites' own layers; in-federation fedbn: each site's own BatchNorm layers.".into());
    }
    n.push("floor: the best constant prediction on the held-out test split (accuracy: the largest class's share; balanced accuracy: 1 / classes present). in-federation: the same strategy and seed trained with every site, scored on that site's test split.".into());
    n.push("intervals: 95% Student-t over seeds (training seed; the data split is fixed).".into());
    n
}

/// Runs leave-one-site-out and writes `loso.csv` and `loso.json`.
pub fn loso(args: LosoArgs, obs: &mut dyn Observer) -> Result<()> {
    let start = Instant::now();
    let opts = engine_options(&args.engine)?;
    let seeds = args.seeds.max(1);
    let (base, base_dir, flamby) = resolve(&args.experiment, &args.sets)?;
    if base.attack.is_some() {
        return Err(Error::User(
            "reproduce loso: the experiment has an [attack]; leave-one-site-out runs clean federations".into(),
        ));
    }
    let data = crate::load_data(&base, &base_dir)?;
    if data.sites.len() < 2 {
        return Err(Error::User(format!(
            "reproduce loso needs at least two sites (one held out), {} has {}",
            data.name,
            data.sites.len()
        )));
    }
    if matches!(
        data.image,
        Some((_, ward_data::ImageTask::MultiLabel { .. }))
    ) {
        return Err(Error::User(
            "reproduce loso scores single-label tasks only".into(),
        ));
    }
    let batch_norm = ward_fl::model_arch(&base, &data)
        .map_err(|e| Error::User(e.to_string()))?
        .has_batch_norm();
    let kinds = strategies(&args.strategies, batch_norm)?;
    let n = data.sites.len();
    let specs: Vec<ExperimentSpec> = kinds
        .iter()
        .map(|&k| strategy_spec(&base, k, flamby, n))
        .collect();
    for s in &specs {
        s.validate()?;
    }
    let settings = AdaptSettings {
        k: if args.k.is_empty() {
            vec![0]
        } else {
            args.k.clone()
        },
        ft_steps: args.ft_steps,
        ft_lr: args.ft_lr,
        tent_lr: args.tent_lr,
        tent_batch: args.tent_batch.unwrap_or(base.train.batch_size).max(1),
    };
    let mut adaptations: Vec<Adaptation> = settings
        .k
        .iter()
        .map(|&k| Adaptation::FineTune(k))
        .collect();
    if batch_norm {
        adaptations.extend([Adaptation::AdaBn, Adaptation::Tent]);
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| crate::default_run_dir("reproduce-loso"));
    fs_err::create_dir_all(&dir)?;
    let units: Vec<Unit> = (0..seeds)
        .flat_map(|seed| {
            (0..kinds.len()).flat_map(move |s| {
                std::iter::once((seed, s, None)).chain((0..n).map(move |h| (seed, s, Some(h))))
            })
        })
        .collect();
    let jobs = crate::parallel::jobs_for(args.jobs, opts, &specs[0], &data);
    let total = units.len();
    obs.step(0, total, &format!("{total} runs, {jobs} at a time"));
    let results = crate::parallel::run_ordered(
        &units,
        jobs,
        |u| run_unit(u, &specs, &data, &settings, opts),
        |done| obs.step(done, total, &format!("{done} of {total} runs")),
    );
    let names: Vec<String> = data.sites.iter().map(|s| s.name.clone()).collect();
    let g = gather(&units, results, &adaptations, &names, &kinds)?;
    let rows = rows_of(&g, &data, &adaptations, &kinds);
    write_csv(&dir.join("loso.csv"), &rows, seeds)?;
    let report = Report {
        experiment: args.experiment.clone(),
        dataset: data.name.clone(),
        sites: names,
        seeds,
        strategies: kinds.iter().map(|k| k.as_str()).collect(),
        adaptations: adaptations.iter().map(|a| a.label()).collect(),
        settings: &settings,
        notes: notes(&settings, batch_norm, &kinds),
        wall_time_s: start.elapsed().as_secs_f64(),
        rows: &rows,
        runs: &g.losses,
        configs: &specs,
    };
    ward_report::write_json_atomic(&dir.join("loso.json"), &report)?;
    say(
        obs,
        format!(
            "Leave one site out: {} ({n} sites), {seeds} seeds; accuracy on the held-out site's test split, mean over seeds [95% t-interval]",
            args.experiment
        ),
    );
    print_rows(&rows, data.image.is_some(), obs);
    print_summary(&rows, &adaptations, obs);
    for l in report.notes.iter().chain(&loss_lines(&g.losses, &kinds)) {
        say(obs, l);
    }
    say(
        obs,
        format!(
            "written: {}, {} ({:.1} s)",
            dir.join("loso.csv").display(),
            dir.join("loso.json").display(),
            report.wall_time_s
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ward_core::config::ModelKind;
    use ward_data::Matrix;

    use super::*;
    use crate::options::EngineArgs;

    fn split(x: Vec<f32>, cols: usize, y: Vec<u32>) -> Split {
        Split {
            x: Matrix::new(y.len(), cols, x).unwrap(),
            y,
        }
    }

    /// Three sites of two features; only site "C" has label 2.
    fn three_sites() -> FederatedDataset {
        let site = |name: &str, base: f32, labels: &[u32]| {
            let n = labels.len();
            let x: Vec<f32> = (0..2 * n).map(|i| base + i as f32).collect();
            SiteData {
                name: name.into(),
                train: split(x.clone(), 2, labels.to_vec()),
                test: split(x[..4].to_vec(), 2, labels[..2].to_vec()),
            }
        };
        FederatedDataset {
            name: "three".into(),
            feature_names: vec!["a".into(), "b".into()],
            num_classes: 3,
            sites: vec![
                site("A", 0.0, &[0, 1, 0, 1, 0, 1]),
                site("B", 50.0, &[1, 0, 1, 0, 1, 0, 1, 0]),
                site("C", 100.0, &[2, 2, 2, 0, 1]),
            ],
            warnings: Vec::new(),
            image: None,
            held_out: None,
        }
    }

    fn quick_spec(kind: StrategyKind) -> ExperimentSpec {
        let mut s = strategy_spec(&ExperimentSpec::default_heart(), kind, false, 3);
        s.model.kind = ModelKind::Logistic;
        s.federation.rounds = 2;
        s.train.local_steps = Some(3);
        s.train.local_epochs = None;
        s
    }

    #[test]
    fn the_held_out_site_never_contributes_a_training_row() {
        let data = three_sites();
        for kind in [StrategyKind::Fedavg, StrategyKind::Pooled] {
            let run = train_without(&quick_spec(kind), &data, 2, EngineOptions::default()).unwrap();
            let trained = &run.trained_on;
            assert_eq!(
                trained
                    .sites
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
                ["A", "B"],
                "{kind:?}"
            );
            let rows: usize = trained.sites.iter().map(|s| s.train.y.len()).sum();
            assert_eq!(rows, 6 + 8, "{kind:?}");
            // Label 2 exists only at C: no training split may hold it.
            assert!(
                trained.sites.iter().all(|s| !s.train.y.contains(&2)),
                "{kind:?}"
            );
            assert_eq!(run.site.name, "C");
            assert_eq!(run.site.train.y, vec![2, 2, 2, 0, 1]);
        }
        // Holding out A instead: C's rows train, A's do not.
        let run = train_without(
            &quick_spec(StrategyKind::Fedavg),
            &data,
            0,
            EngineOptions::default(),
        )
        .unwrap();
        let names: Vec<&str> = run
            .trained_on
            .sites
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["B", "C"]);
    }

    #[test]
    fn stratified_draws_take_exactly_min_k_rows_by_class_share() {
        let y: Vec<u32> = [0u32; 8].into_iter().chain([1u32; 4]).collect();
        for (k, want) in [
            (0, (0, 0)),
            (1, (1, 0)),
            (2, (1, 1)),
            (6, (4, 2)),
            (50, (8, 4)),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let rows = draw_stratified(&y, k, &mut rng);
            assert_eq!(rows.len(), k.min(12), "k {k}");
            let set: BTreeSet<usize> = rows.iter().copied().collect();
            assert_eq!(set.len(), rows.len(), "repeats at k {k}");
            let ones = rows.iter().filter(|&&r| y[r] == 1).count();
            assert_eq!((rows.len() - ones, ones), want, "k {k}");
        }
    }

    /// An engine that records every row it trains on (and learns nothing).
    struct Recording {
        seen: BTreeSet<u32>,
    }

    impl GradientEngine for Recording {
        fn name(&self) -> String {
            "recording".into()
        }
        fn loss_and_grad(
            &mut self,
            _params: &[f32],
            x: &[f32],
            _y: &[u32],
            grad: &mut [f32],
        ) -> std::result::Result<f32, ward_models::ModelError> {
            for row in x.chunks(2) {
                self.seen.insert(row[0].to_bits());
            }
            grad.fill(0.0);
            Ok(0.0)
        }
        fn logits(
            &mut self,
            _params: &[f32],
            _x: &[f32],
            rows: usize,
        ) -> std::result::Result<Vec<f32>, ward_models::ModelError> {
            Ok(vec![0.0; rows])
        }
    }

    #[test]
    fn fine_tuning_sees_exactly_the_drawn_training_rows_and_never_a_test_row() {
        // Training rows carry 1000 + i in their first feature, test rows -1 - i.
        let n = 30;
        let site = SiteData {
            name: "new".into(),
            train: split(
                (0..n).flat_map(|i| [1000.0 + i as f32, 0.0]).collect(),
                2,
                (0..n).map(|i| (i % 3 == 0) as u32).collect(),
            ),
            test: split(
                (0..10).flat_map(|i| [-1.0 - i as f32, 0.0]).collect(),
                2,
                (0..10).map(|i| (i % 2) as u32).collect(),
            ),
        };
        let spec = quick_spec(StrategyKind::Fedavg);
        let a = AdaptSettings {
            k: vec![],
            ft_steps: 200,
            ft_lr: 0.01,
            tent_lr: 0.001,
            tent_batch: 4,
        };
        let global = Params::from_flat(vec![0.0; 3]);
        for k in [5, 20, 50] {
            let cases = fine_tune_rows(&site, k, 3, 1);
            assert_eq!(cases.y.len(), k.min(n));
            let mut e = Recording {
                seen: BTreeSet::new(),
            };
            fine_tune(&mut e, &global, &cases, &spec, &a, 0).unwrap();
            let drawn: BTreeSet<u32> = cases.x.iter_rows().map(|r| r[0].to_bits()).collect();
            assert_eq!(e.seen, drawn, "k {k}");
            assert_eq!(e.seen.len(), k.min(n));
            assert!(e.seen.iter().all(|&b| f32::from_bits(b) >= 1000.0));
        }
    }

    #[test]
    fn score_and_floor_by_hand() {
        // Softmax logits: predictions 0, 1, 1, 0 against labels 0, 1, 0, 0.
        let z = [2.0, 1.0, 0.0, 3.0, -1.0, 1.0, 5.0, 0.0];
        let s = score(&z, &[0, 1, 0, 0], 2);
        assert_eq!(s.accuracy, 0.75);
        // Recall: class 0 2/3, class 1 1/1.
        assert!((s.balanced_accuracy - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        // One logit: sigmoid, positive above 0.
        let s = score(&[0.3, -0.2], &[1, 1], 2);
        assert_eq!(s.accuracy, 0.5);
        assert_eq!(s.balanced_accuracy, 0.5);
        let f = floor(&[0, 0, 0, 1]);
        assert_eq!((f.accuracy, f.balanced_accuracy), (0.75, 0.5));
    }

    fn args(experiment: &str, sets: &[&str], strategies: &[&str], out: PathBuf) -> LosoArgs {
        LosoArgs {
            experiment: experiment.into(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            out: Some(out),
            seeds: 2,
            strategies: strategies.iter().map(|s| s.to_string()).collect(),
            k: vec![0, 5],
            ft_steps: 5,
            ft_lr: 0.01,
            tent_lr: 0.001,
            tent_batch: Some(8),
            jobs: Some(1),
            engine: EngineArgs {
                device: "cpu".into(),
                engine: "auto".into(),
            },
        }
    }

    /// The (site, strategy, adaptation) keys of loso.csv, checking the row count.
    fn csv_keys(path: &std::path::Path) -> Vec<(String, String, String)> {
        let text = fs_err::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(&head[..3], ["held_out", "strategy", "adaptation"]);
        lines
            .map(|l| {
                let c: Vec<&str> = l.split(',').collect();
                assert_eq!(c.len(), head.len(), "{l}");
                (c[0].to_string(), c[1].to_string(), c[2].to_string())
            })
            .collect()
    }

    #[test]
    fn heart_end_to_end_writes_one_row_per_site_strategy_and_adaptation() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(
            "fed-heart-disease",
            &[],
            &["fedavg", "pooled"],
            dir.path().to_path_buf(),
        );
        loso(a, &mut crate::Quiet).unwrap();
        let keys = csv_keys(&dir.path().join("loso.csv"));
        assert_eq!(keys.len(), 4 * 2 * 2);
        let unique: BTreeSet<_> = keys.iter().cloned().collect();
        assert_eq!(unique.len(), keys.len());
        assert!(unique.contains(&("Switzerland".into(), "pooled".into(), "k=5".into())));
        let json: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(dir.path().join("loso.json")).unwrap())
                .unwrap();
        assert_eq!(json["rows"].as_array().unwrap().len(), 16);
        assert_eq!(json["runs"].as_array().unwrap().len(), 2 * 2 * 4);
    }

    #[test]
    fn batch_norm_end_to_end_adds_adabn_and_tent_rows() {
        let dir = tempfile::tempdir().unwrap();
        let sets = [
            "data.synth.sites=3",
            "data.synth.per-site=40",
            "data.synth.size=16",
            "model.channels=[2]",
            "model.hidden=[4]",
            "federation.rounds=1",
        ];
        let a = args(
            "scanner-shift",
            &sets,
            &["fedavg", "fedbn"],
            dir.path().to_path_buf(),
        );
        loso(a, &mut crate::Quiet).unwrap();
        let keys = csv_keys(&dir.path().join("loso.csv"));
        assert_eq!(keys.len(), 3 * 2 * 4);
        let adaptations: BTreeSet<&str> = keys.iter().map(|k| k.2.as_str()).collect();
        assert_eq!(adaptations, BTreeSet::from(["adabn", "k=0", "k=5", "tent"]));
    }
}

#[cfg(test)]
mod adapt_tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use ward_core::config::OptimizerKind;
    use ward_data::ImageShape;

    use ward_models::adapt::{adabn, tent};
    use ward_models::{
        BurnConv, ConvArch, ConvFamily, DeviceChoice, GradientEngine, ModelArch, Norm,
        OptimizerConfig,
    };

    /// One conv block of 2 channels on 1x4x4 images, 2 classes.
    fn tiny() -> ConvArch {
        ConvArch {
            family: ConvFamily::SmallCnn {
                channels: vec![2],
                hidden: 3,
            },
            norm: Norm::Batch,
            input: ImageShape::d2(1, 4, 4),
            outputs: 2,
            multi_label: false,
            dropout: 0.0,
        }
    }

    fn images(rows: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * 16)
            .map(|_| rng.random_range(0.0f32..1.0) * 3.0 + 1.0)
            .collect()
    }

    fn range_of(arch: &ConvArch, name: &str) -> std::ops::Range<usize> {
        arch.layout()
            .ranges()
            .find(|(t, _)| t.name == name)
            .map(|(_, r)| r)
            .unwrap()
    }

    #[test]
    fn adabn_sets_running_stats_to_the_images_statistics_and_nothing_else() {
        let conv = tiny();
        let arch = ModelArch::from(conv.clone());
        let mut params = arch.init(&mut ChaCha8Rng::seed_from_u64(1)).into_values();
        // conv1: channel c is (centre tap w_c) * pixel + b_c, so BN's input for channel c
        // is an affine map of the pixels and its statistics follow by hand.
        let (w, b) = ([2.0f32, -0.5], [0.25f32, 1.0]);
        let cw = range_of(&conv, "conv1.weight");
        params[cw.clone()].fill(0.0);
        params[cw.start + 4] = w[0];
        params[cw.start + 9 + 4] = w[1];
        let cb = range_of(&conv, "conv1.bias");
        params[cb.clone()].copy_from_slice(&b);
        let before = params.clone();
        let rows = 5;
        let x = images(rows, 7);
        let n = x.len() as f64;
        let m = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = x.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / (n - 1.0);
        let mut engine = BurnConv::new(conv.clone(), DeviceChoice::Cpu).unwrap();
        adabn(&mut engine, &arch, &mut params, &x, rows).unwrap();
        let rm = range_of(&conv, "bn1.running_mean");
        let rv = range_of(&conv, "bn1.running_var");
        for c in 0..2 {
            let want_m = f64::from(w[c]) * m + f64::from(b[c]);
            let want_v = f64::from(w[c]).powi(2) * var;
            assert!((f64::from(params[rm.start + c]) - want_m).abs() < 1e-4);
            assert!((f64::from(params[rv.start + c]) - want_v).abs() < 1e-4);
        }
        for (i, (a, z)) in params.iter().zip(&before).enumerate() {
            if !rm.contains(&i) && !rv.contains(&i) {
                assert_eq!(a, z, "value {i} outside the running statistics changed");
            }
        }
    }

    #[test]
    fn adabn_refuses_a_model_without_batch_norm() {
        let mut conv = tiny();
        conv.norm = Norm::None;
        let arch = ModelArch::from(conv.clone());
        let mut params = arch.init(&mut ChaCha8Rng::seed_from_u64(1)).into_values();
        let mut engine = BurnConv::new(conv, DeviceChoice::Cpu).unwrap();
        assert!(adabn(&mut engine, &arch, &mut params, &images(2, 0), 2).is_err());
    }

    #[test]
    fn tent_lowers_the_batch_entropy_and_moves_only_batch_norm_affine_values() {
        let conv = tiny();
        let arch = ModelArch::from(conv.clone());
        let mut params = arch.init(&mut ChaCha8Rng::seed_from_u64(3)).into_values();
        let before = params.clone();
        let rows = 16;
        let x = images(rows, 11);
        let mut engine = BurnConv::new(conv.clone(), DeviceChoice::Cpu).unwrap();
        let opt = OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        // The same batch 60 times: its entropy must fall.
        let xs: Vec<f32> = (0..60).flat_map(|_| x.iter().copied()).collect();
        let pass = tent(&mut engine, &arch, &mut params, &xs, rows * 60, rows, opt).unwrap();
        assert_eq!(pass.entropies.len(), 60);
        assert_eq!(pass.logits.len(), rows * 60 * 2);
        let mut grad = vec![0.0; params.len()];
        let (after, _) = engine
            .entropy_and_grad(&params, &x, rows, &mut grad)
            .unwrap();
        assert!(
            after < pass.entropies[0] * 0.8,
            "entropy {} -> {after}",
            pass.entropies[0]
        );
        let affine = arch.affine_ranges();
        assert_eq!(
            affine,
            vec![
                range_of(&conv, "bn1.weight").start..range_of(&conv, "bn1.weight").end,
                range_of(&conv, "bn1.bias").start..range_of(&conv, "bn1.bias").end
            ]
            .into_iter()
            .map(|r| (r.start, r.end))
            .collect::<Vec<_>>()
        );
        let inside = |i: usize| affine.iter().any(|&(a, b)| (a..b).contains(&i));
        let mut moved = 0;
        for (i, (a, z)) in params.iter().zip(&before).enumerate() {
            if inside(i) {
                moved += usize::from(a != z);
            } else {
                assert_eq!(
                    a, z,
                    "value {i} outside the BatchNorm affine parameters changed"
                );
            }
        }
        assert!(moved > 0);
    }
}
