//! `ward privacy audit <run dir>`: an empirical privacy audit of a trained run by
//! membership inference, beside the accountant's guarantee.
//!
//! Members are the training rows of every site whose data trained the model (for the
//! `local` baseline: the local site's); non-members are the same sites' test rows.
//! Each site is scored with the model it uses (see
//! [`FinishedRun::site_model`](crate::FinishedRun::site_model)). Attacks:
//! - `loss` (Yeom et al. 2018): score `-loss` of the run's model.
//! - `lira-online` / `lira-offline` (Carlini et al. 2022): `--shadows` shadow runs of
//!   the same experiment (the code path of `ward run`, nothing persisted), each with
//!   its own seed and trained on a random half of every audited site's rows (train
//!   and test together; each row in exactly half of the shadows, the rest of the
//!   site's rows as its test split); per row, Gaussians fitted to the shadows'
//!   logit-scaled confidence with (in) and without (out) it, global variance.
//!
//! For each attack, overall and per site: AUC, TPR at each `--fpr` (with the number
//! of false positives the non-members allow), and the epsilon lower bound the attack
//! proves at `delta` ([`ward_privacy::audit::epsilon_lower_bound`]: the threshold is
//! chosen on a random, stratified half of the scope's rows, seeded from `--seed`, and
//! the Clopper-Pearson bound is reported at that threshold on the other half; the
//! best-over-thresholds number on all rows is kept as `optimistic_same_data`, a
//! diagnostic). The bound treats the rows of the one audited run as independent
//! trials, which they are not in general (Steinke, Nasr & Jagielski 2023 give the
//! one-run analysis; it is not implemented). Beside it, the accountant's epsilon from
//! the run's `privacy.json` (or `summary.json`'s `privacy`) where the run had a privacy
//! mechanism. Writes `audit.json`, `audit.csv` (one row per attack and scope) and
//! `audit_examples.csv` (every row's scores).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::Context;
use crate::say;
use crate::{Error, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;
use ward_core::config::StrategyKind;
use ward_core::{ExperimentSpec, Params};
use ward_data::{FederatedDataset, Matrix, Split};
use ward_models::{GradientEngine, Loss, make_engine};
use ward_privacy::audit::{
    AttackSummary, ExampleScore, HELD_OUT_METHOD, LiraVariance, MIN_PER_CLASS, OutputKind,
    balanced_inclusion, example_scores, lira_scores, summarize_attack,
};
use ward_report::files;

use crate::FinishedRun;
use crate::options::PrivacyAuditArgs;
use crate::{Observer, engine_options};

/// The delta of the epsilon bound when neither `--delta` nor the run's accountant
/// gives one.
const DEFAULT_DELTA: f64 = 1e-5;

/// Rows scored per forward pass.
const CHUNK: usize = 256;

/// Epsilon from an accountant's report.
#[derive(Debug, Clone, Serialize)]
struct Accounted {
    rdp: Option<f64>,
    prv: Option<f64>,
    delta: Option<f64>,
}

impl Accounted {
    fn from_json(v: &Value, delta: Option<f64>) -> Option<Self> {
        let e = v.get("epsilon")?;
        let (rdp, prv) = match e {
            Value::Number(n) => (n.as_f64(), None),
            _ => (
                e.get("rdp").and_then(Value::as_f64),
                e.get("prv").and_then(Value::as_f64),
            ),
        };
        (rdp.is_some() || prv.is_some()).then(|| Self {
            rdp,
            prv,
            delta: v.get("delta").and_then(Value::as_f64).or(delta),
        })
    }

    /// The tighter stated value and its accountant.
    fn best(&self) -> (f64, &'static str) {
        match (self.rdp, self.prv) {
            (Some(r), Some(p)) if p <= r => (p, "prv"),
            (Some(r), _) => (r, "rdp"),
            (None, Some(p)) => (p, "prv"),
            (None, None) => (f64::NAN, "none"),
        }
    }
}

/// The run's privacy guarantee, as its accountant reported it.
#[derive(Debug, Clone, Serialize)]
struct Guarantee {
    /// The file it was read from.
    source: String,
    /// Record-level DP-SGD: the federation's epsilon (max over sites).
    record_level: Option<Accounted>,
    /// Record-level DP-SGD: each site's epsilon.
    per_site: BTreeMap<String, Accounted>,
    /// Site-level central DP (also bounds any one record of the site).
    site_level: Option<Accounted>,
}

impl Guarantee {
    /// Reads `privacy.json`, else `summary.json`'s `privacy`; without either, the
    /// mechanism (and its delta) from the run's `config.toml`, with the epsilon unknown;
    /// `None` for a run without a privacy mechanism.
    fn read(run: &std::path::Path, spec: &ExperimentSpec) -> Result<Option<Self>> {
        let found = Self::read_report(run)?;
        if found.is_some() {
            return Ok(found);
        }
        let unknown = |delta: f64| Accounted {
            rdp: None,
            prv: None,
            delta: Some(delta),
        };
        let g = Self {
            source: format!(
                "{}: [privacy] is on, but privacy.json (and summary.json's privacy) is missing, so the accountant's epsilon is unknown; the delta is the config's",
                files::CONFIG
            ),
            record_level: spec.privacy.dp_sgd.as_ref().map(|d| unknown(d.delta)),
            per_site: BTreeMap::new(),
            site_level: spec.privacy.central.as_ref().map(|c| unknown(c.delta)),
        };
        Ok((g.record_level.is_some() || g.site_level.is_some()).then_some(g))
    }

    /// Reads `privacy.json`, else `summary.json`'s `privacy`; `None` without either.
    fn read_report(run: &std::path::Path) -> Result<Option<Self>> {
        let pj = run.join("privacy.json");
        let (v, source) = if pj.exists() {
            let text = fs_err::read_to_string(&pj)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::User(format!("{}: {e}", pj.display())))?;
            (v, "privacy.json".to_string())
        } else {
            let sj = run.join(files::SUMMARY);
            if !sj.exists() {
                return Ok(None);
            }
            let text = fs_err::read_to_string(&sj)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::User(format!("{}: {e}", sj.display())))?;
            match v.get("privacy") {
                Some(p) if !p.is_null() => (p.clone(), format!("{} privacy", files::SUMMARY)),
                _ => return Ok(None),
            }
        };
        Ok(Self::from_value(&v, source))
    }

    /// The guarantee in a privacy report (`privacy.json`'s layout); `None` without a
    /// mechanism.
    fn from_value(v: &Value, source: String) -> Option<Self> {
        let rl = v.get("record_level").filter(|x| !x.is_null());
        let record_delta = rl.and_then(|r| r.get("delta")).and_then(Value::as_f64);
        let mut per_site = BTreeMap::new();
        if let Some(sites) = rl.and_then(|r| r.get("sites")).and_then(Value::as_array) {
            for s in sites {
                if let (Some(name), Some(a)) = (
                    s.get("site").and_then(Value::as_str),
                    Accounted::from_json(s, record_delta),
                ) {
                    per_site.insert(name.to_string(), a);
                }
            }
        }
        let g = Self {
            source,
            record_level: rl.and_then(|r| Accounted::from_json(r, None)),
            per_site,
            site_level: v
                .get("site_level")
                .filter(|x| !x.is_null())
                .and_then(|s| Accounted::from_json(s, None)),
        };
        (g.record_level.is_some() || g.site_level.is_some()).then_some(g)
    }

    /// The delta the accountant used (record level first).
    fn delta(&self) -> Option<f64> {
        self.record_level
            .as_ref()
            .and_then(|a| a.delta)
            .or_else(|| self.site_level.as_ref().and_then(|a| a.delta))
    }

    /// The guarantee for one row of the table: a site's record-level epsilon, or the
    /// federation's (`None` site), or else the site-level one; `(epsilon, label)`.
    fn for_scope(&self, site: Option<&str>) -> Option<(f64, String)> {
        let rl = site
            .and_then(|s| self.per_site.get(s))
            .or(self.record_level.as_ref());
        if let Some(a) = rl {
            let (e, k) = a.best();
            return (!e.is_nan()).then(|| (e, format!("record-level, {k}")));
        }
        self.site_level.as_ref().and_then(|a| {
            let (e, k) = a.best();
            (!e.is_nan()).then(|| (e, format!("site-level, {k}")))
        })
    }
}

/// One line of `audit.csv` and of `audit.json`'s `attacks`.
#[derive(Debug, Clone, Serialize)]
struct AttackRow {
    attack: &'static str,
    /// `overall` or a site's name.
    scope: String,
    #[serde(flatten)]
    summary: AttackSummary,
    /// The accountant's epsilon for the same records, where the run had a mechanism.
    accountant_epsilon: Option<f64>,
    /// Which bound that is (`record-level, prv`, ...).
    accountant: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    run: PathBuf,
    seed: u64,
    model: String,
    strategy: String,
    /// The sites whose rows are audited, with the model file each was scored with.
    sites: BTreeMap<String, String>,
    shadows: usize,
    /// The experiment seed of each shadow run.
    shadow_seeds: Vec<u64>,
    delta: f64,
    /// Where `delta` came from: `--delta`, the accountant, or the default.
    delta_source: String,
    confidence: f64,
    fprs: Vec<f64>,
    /// The run's privacy guarantee, `null` without a privacy mechanism.
    accountant: Option<Guarantee>,
    attacks: Vec<AttackRow>,
    notes: Vec<String>,
}

fn output_kind(loss: Loss) -> OutputKind {
    match loss {
        Loss::Bce => OutputKind::Sigmoid,
        Loss::CrossEntropy => OutputKind::Softmax,
        Loss::MultiLabel => OutputKind::MultiLabel,
    }
}

/// Every row of `split` scored by `params`.
fn score(
    engine: &mut dyn GradientEngine,
    params: &Params,
    split: &Split,
    kind: OutputKind,
) -> Result<Vec<ExampleScore>> {
    let cols = split.x.cols;
    let mut scores = Vec::with_capacity(split.y.len());
    for (start, y) in (0..split.y.len())
        .step_by(CHUNK)
        .map(|s| (s, &split.y[s..(s + CHUNK).min(split.y.len())]))
    {
        let x = &split.x.data[start * cols..(start + y.len()) * cols];
        let z = engine.logits(params.values(), x, y.len())?;
        let outputs = z.len() / y.len().max(1);
        scores.extend(example_scores(kind, outputs, &z, y)?);
    }
    Ok(scores)
}

/// The rows `take` (indices into `train` then `test`, concatenated) as one split.
fn select(train: &Split, test: &Split, take: impl Iterator<Item = usize>) -> Split {
    let cols = train.x.cols;
    let mut x = Matrix::empty(cols);
    let mut y = Vec::new();
    for i in take {
        let (s, r) = if i < train.y.len() {
            (train, i)
        } else {
            (test, i - train.y.len())
        };
        x.data
            .extend_from_slice(&s.x.data[r * cols..(r + 1) * cols]);
        x.rows += 1;
        y.push(s.y[r]);
    }
    Split { x, y }
}

/// The audited rows: per audited site (index into the data's sites), its training
/// rows then its test rows.
struct Pool {
    sites: Vec<usize>,
    /// First pool index of each audited site, and one past the last.
    offsets: Vec<usize>,
    member: Vec<bool>,
}

impl Pool {
    fn new(data: &FederatedDataset, sites: Vec<usize>) -> Self {
        let mut offsets = vec![0];
        let mut member = Vec::new();
        for &i in &sites {
            let s = &data.sites[i];
            member.extend(std::iter::repeat_n(true, s.train.y.len()));
            member.extend(std::iter::repeat_n(false, s.test.y.len()));
            offsets.push(member.len());
        }
        Self {
            sites,
            offsets,
            member,
        }
    }
}

/// What the shadow runs give the attacks.
struct ShadowRuns {
    /// Logit-scaled confidences, `[shadow][pool row]`.
    confidence: Vec<Vec<f64>>,
    /// Whether each shadow trained on each row (same shape).
    inclusion: Vec<Vec<bool>>,
    /// Each shadow run's privacy report (`None` without a mechanism).
    privacy: Vec<Option<Value>>,
}

/// The shadow runs' logit-scaled confidences, `[shadow][pool row]`, with the
/// inclusion they trained with.
fn shadows(
    run: &FinishedRun,
    pool: &Pool,
    engine: &mut dyn GradientEngine,
    args: &PrivacyAuditArgs,
    seeds: &[u64],
) -> Result<ShadowRuns> {
    let inclusion = balanced_inclusion(pool.member.len(), args.shadows, args.seed)
        .map_err(|e| Error::User(format!("--shadows: {e}")))?;
    train_on(run, pool, engine, args, inclusion, seeds, "shadow model")
}

/// Runs the experiment once per inclusion vector (pool rows it trains on; the rest are
/// its test rows) with the matching seed, and scores every pool row.
fn train_on(
    run: &FinishedRun,
    pool: &Pool,
    engine: &mut dyn GradientEngine,
    args: &PrivacyAuditArgs,
    inclusion: Vec<Vec<bool>>,
    seeds: &[u64],
    what: &str,
) -> Result<ShadowRuns> {
    let opts = engine_options(&args.engine)?;
    let kind = output_kind(run.arch().loss());
    let mut confidence = Vec::with_capacity(inclusion.len());
    let mut privacy = Vec::with_capacity(inclusion.len());
    for (k, (inc, &seed)) in inclusion.iter().zip(seeds).enumerate() {
        let mut data = run.experiment.data().clone();
        for (a, &i) in pool.sites.iter().enumerate() {
            let (lo, hi) = (pool.offsets[a], pool.offsets[a + 1]);
            let site = &run.experiment.data().sites[i];
            let local = |keep: bool| {
                (lo..hi)
                    .filter(move |&g| inc[g] == keep)
                    .map(move |g| g - lo)
            };
            data.sites[i].train = select(&site.train, &site.test, local(true));
            data.sites[i].test = select(&site.train, &site.test, local(false));
        }
        let mut spec = run.spec().clone().into_inner();
        spec.seed = seed;
        let spec = spec.check()?;
        tracing::info!(run = k + 1, seed, "training {what}");
        let o = crate::run_quietly(&spec, &data, opts)
            .with_context(|| format!("{what} {} (seed {seed})", k + 1))?;
        let mut conf = vec![f64::NAN; pool.member.len()];
        for (a, &i) in pool.sites.iter().enumerate() {
            let name = &run.experiment.data().sites[i].name;
            let params = o
                .trained
                .site_models
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&o.trained.global, |(_, p)| p);
            let sd = &o.trained.data.sites[i];
            let mut tr = score(engine, params, &sd.train, kind)?.into_iter();
            let mut te = score(engine, params, &sd.test, kind)?.into_iter();
            for g in pool.offsets[a]..pool.offsets[a + 1] {
                let s = if inc[g] { tr.next() } else { te.next() };
                conf[g] = s.context("shadow rows out of step")?.confidence;
            }
        }
        confidence.push(conf);
        privacy.push(o.summary.privacy.clone());
    }
    Ok(ShadowRuns {
        confidence,
        inclusion,
        privacy,
    })
}

/// The random-membership run's attack scores, its members (by a fair coin each) and
/// its own privacy guarantee.
type RandomMembership = (Vec<(&'static str, Vec<f64>)>, Vec<bool>, Option<Guarantee>);

/// The seed of the held-out split behind every epsilon bound of an audit with `--seed
/// seed`: its own ChaCha8 stream (3), apart from the shadows' run seeds (1), the
/// random-membership coins (2) and the shadows' inclusion (stream 0).
fn split_seed(seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(3);
    rng.next_u64()
}

/// The rows of one attack: overall and per audited site (sites with fewer than
/// [`MIN_PER_CLASS`] members or non-members, too few for the held-out split behind the
/// epsilon bound, are skipped, and listed in `notes` when it is given).
#[allow(clippy::too_many_arguments)]
fn attack_rows(
    name: &'static str,
    scores: &[f64],
    member: &[bool],
    pool: &Pool,
    run: &FinishedRun,
    guarantee: Option<&Guarantee>,
    args: &PrivacyAuditArgs,
    delta: f64,
    notes: Option<&mut Vec<String>>,
) -> Result<Vec<AttackRow>> {
    let mut scopes: Vec<(String, std::ops::Range<usize>)> =
        vec![("overall".into(), 0..member.len())];
    for (a, &i) in pool.sites.iter().enumerate() {
        scopes.push((
            run.experiment.data().sites[i].name.clone(),
            pool.offsets[a]..pool.offsets[a + 1],
        ));
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (scope, r) in scopes {
        let m = &member[r.clone()];
        let members = m.iter().filter(|&&x| x).count();
        if members < MIN_PER_CLASS || m.len() - members < MIN_PER_CLASS {
            skipped.push(format!(
                "{scope}: skipped, it has {members} members and {} non-members; the epsilon bound's held-out split needs at least {MIN_PER_CLASS} of each",
                m.len() - members
            ));
            continue;
        }
        let summary = summarize_attack(
            &scores[r],
            m,
            &args.fpr,
            delta,
            args.confidence,
            split_seed(args.seed),
        )
        .map_err(|e| Error::Internal(format!("attack {name} on {scope}: {e}")))?;
        let g = guarantee.and_then(|g| g.for_scope((scope != "overall").then_some(scope.as_str())));
        rows.push(AttackRow {
            attack: name,
            scope,
            summary,
            accountant_epsilon: g.as_ref().map(|x| x.0),
            accountant: g.map(|x| x.1),
        });
    }
    if let Some(n) = notes {
        n.extend(skipped);
    }
    Ok(rows)
}

/// The command line's ranges: an even number of at least 4 shadows (or 0), a confidence
/// and every FPR in (0, 1).
fn check_args(args: &PrivacyAuditArgs) -> Result<()> {
    if args.shadows != 0 && (args.shadows < 4 || !args.shadows.is_multiple_of(2)) {
        return Err(Error::User(format!(
            "--shadows = {}: LiRA needs an even number of at least 4 shadow models (0 skips it)",
            args.shadows
        )));
    }
    if !(args.confidence > 0.0 && args.confidence < 1.0) {
        return Err(Error::User(format!(
            "--confidence = {}: must be in (0, 1)",
            args.confidence
        )));
    }
    if let Some(f) = args.fpr.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
        return Err(Error::User(format!(
            "--fpr {f}: each FPR must be in (0, 1)"
        )));
    }
    Ok(())
}

/// The sites whose training rows trained the model (one for a local run).
fn audited_sites(run: &FinishedRun) -> Vec<usize> {
    match run.spec().federation.strategy {
        StrategyKind::Local => {
            let want = run
                .spec()
                .federation
                .local_site
                .as_deref()
                .unwrap_or_default();
            run.experiment
                .data()
                .sites
                .iter()
                .position(|s| s.name == want)
                .into_iter()
                .collect()
        }
        _ => (0..run.experiment.data().sites.len()).collect(),
    }
}

/// LiRA's online and offline scores of the target (pushed onto `attacks`), and the
/// random-membership target: one more run on a fair-coin subset of the pool, scored by
/// confidence and by LiRA against the same shadows.
fn lira_and_random(
    run: &FinishedRun,
    pool: &Pool,
    engine: &mut dyn GradientEngine,
    args: &PrivacyAuditArgs,
    seeds: &[u64],
    target: &[ExampleScore],
    attacks: &mut Vec<(&'static str, Vec<f64>)>,
) -> Result<RandomMembership> {
    let sh = shadows(run, pool, engine, args, seeds)?;
    let x: Vec<f64> = target.iter().map(|s| s.confidence).collect();
    let l = lira_scores(&x, &sh.confidence, &sh.inclusion, LiraVariance::Global)?;
    attacks.push(("lira-online", l.online));
    attacks.push(("lira-offline", l.offline));
    let mut coin = ChaCha8Rng::seed_from_u64(args.seed);
    coin.set_stream(2);
    let member: Vec<bool> = (0..pool.member.len())
        .map(|_| coin.next_u32() & 1 == 1)
        .collect();
    let t = train_on(
        run,
        pool,
        engine,
        args,
        vec![member.clone()],
        &[coin.next_u64()],
        "random-membership target",
    )?;
    let lr = lira_scores(
        &t.confidence[0],
        &sh.confidence,
        &sh.inclusion,
        LiraVariance::Global,
    )?;
    Ok((
        vec![
            ("confidence-rand", t.confidence[0].clone()),
            ("lira-online-rand", lr.online),
            ("lira-offline-rand", lr.offline),
        ],
        member,
        t.privacy[0].as_ref().and_then(|v| {
            Guarantee::from_value(v, "the random-membership run's privacy report".into())
        }),
    ))
}

/// Every attack's rows (the fixed-split attacks, then the random-membership ones) and
/// the notes they raise.
fn all_rows(
    attacks: &[(&'static str, Vec<f64>)],
    random: Option<&RandomMembership>,
    pool: &Pool,
    run: &FinishedRun,
    guarantee: Option<&Guarantee>,
    args: &PrivacyAuditArgs,
    delta: f64,
) -> Result<(Vec<AttackRow>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (k, (name, scores)) in attacks.iter().enumerate() {
        rows.extend(attack_rows(
            name,
            scores,
            &pool.member,
            pool,
            run,
            guarantee,
            args,
            delta,
            (k == 0).then_some(&mut notes),
        )?);
    }
    if let Some((rand_attacks, member, g)) = random {
        for (name, scores) in rand_attacks {
            rows.extend(attack_rows(
                name,
                scores,
                member,
                pool,
                run,
                g.as_ref(),
                args,
                delta,
                None,
            )?);
        }
        notes.push(format!(
            "-rand rows: one more run of the experiment is the target, each pool row in its training set by a fair coin ({} members of {}), and the {} shadow runs are LiRA's reference; membership is independent of the rows and of the reference, so these bounds hold for the experiment's training on about half of the pool, while the rows above (members = the fixed training split) can also pick up chance differences between that split's train and test rows; their accountant epsilon is the random-membership run's own",
            member.iter().filter(|&&m| m).count(),
            member.len(),
            args.shadows
        ));
    }
    Ok((rows, notes))
}

/// The notes that say how the audit's numbers were made.
fn method_notes(args: &PrivacyAuditArgs, sites: usize, no_mechanism: bool) -> Vec<String> {
    let mut notes = Vec::new();
    notes.push(format!(
        "members: the training rows of {} sites; non-members: their test rows",
        sites
    ));
    notes.push(format!(
        "epsilon lower bound: max(ln((TPR - delta) / FPR), ln((TNR - delta) / FNR)) with {}% Clopper-Pearson ends (Jagielski et al. 2020; Nasr et al. 2021); method: {HELD_OUT_METHOD} (each scope's rows split in halves that keep half its members and half its non-members, split seed {} from --seed {}); optimistic_same_data (audit.json) and epsilon_optimistic_same_data (audit.csv) are the best over thresholds on all rows, a diagnostic that does not hold at the stated confidence",
        100.0 * args.confidence,
        split_seed(args.seed),
        args.seed
    ));
    notes.push("caveat: the bound treats the rows of the one audited run as independent trials, which they are not in general; Steinke, Nasr & Jagielski 2023 (\"Privacy auditing with one (1) training run\") give the analysis for members included by independent coin flips, which this audit does not implement".into());
    if args.shadows > 0 {
        notes.push(format!(
            "LiRA (Carlini et al. 2022): {} shadow runs of the same experiment, each row in exactly half of them; Gaussians with the median of the in/out confidences and a global (pooled) variance",
            args.shadows
        ));
    }
    if no_mechanism {
        notes.push("no privacy mechanism: accountant epsilon n/a".into());
    }
    notes
}

/// Runs the audit of `args.run`.
pub fn privacy_audit(args: PrivacyAuditArgs, obs: &mut dyn Observer) -> Result<()> {
    check_args(&args)?;
    let opts = engine_options(&args.engine)?;
    let run = FinishedRun::open(&args.run, "ward privacy audit", opts)?;
    let guarantee = Guarantee::read(&run.dir, run.spec())?;
    let (delta, delta_source) = match (args.delta, guarantee.as_ref().and_then(Guarantee::delta)) {
        (Some(d), _) => (d, "--delta".to_string()),
        (None, Some(d)) => (d, "the run's accountant".to_string()),
        (None, None) => (DEFAULT_DELTA, "default".to_string()),
    };
    if !(0.0..1.0).contains(&delta) {
        return Err(Error::User(format!("--delta = {delta}: must be in [0, 1)")));
    }

    let pool = Pool::new(run.experiment.data(), audited_sites(&run));
    let arch = run.arch().clone();
    let kind = output_kind(arch.loss());
    let mut engine = make_engine(&arch, opts.device, opts.engine)?;

    // The run's model on every audited row.
    let mut target = Vec::with_capacity(pool.member.len());
    let mut model_files = BTreeMap::new();
    for &i in &pool.sites {
        let site = &run.prepared.simulation().data.sites[i];
        let (params, file) = run.site_model(&site.name)?;
        model_files.insert(site.name.clone(), file);
        target.extend(score(engine.as_mut(), &params, &site.train, kind)?);
        target.extend(score(engine.as_mut(), &params, &site.test, kind)?);
    }

    // Attack scores over the pool.
    let mut attacks: Vec<(&'static str, Vec<f64>)> =
        vec![("loss", target.iter().map(|s| -s.loss).collect())];
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    rng.set_stream(1);
    let seeds: Vec<u64> = (0..args.shadows).map(|_| rng.next_u64()).collect();
    // Random membership: one more run of the experiment, its training rows drawn from
    // the pool by a fair coin each (independent of the shadows' balanced inclusion), as
    // the target; the shadows are LiRA's reference.
    let random = if args.shadows > 0 {
        Some(lira_and_random(
            &run,
            &pool,
            engine.as_mut(),
            &args,
            &seeds,
            &target,
            &mut attacks,
        )?)
    } else {
        None
    };
    let (rows, mut notes) = all_rows(
        &attacks,
        random.as_ref(),
        &pool,
        &run,
        guarantee.as_ref(),
        &args,
        delta,
    )?;
    if rows.is_empty() {
        return Err(Error::User(
            "the audited sites have fewer than 2 training or 2 test rows in all (the epsilon bound's held-out split needs one of each per half): nothing to attack".into(),
        ));
    }
    notes.extend(method_notes(&args, pool.sites.len(), guarantee.is_none()));

    let out_dir = args.out.clone().unwrap_or_else(|| run.dir.join("audit"));
    fs_err::create_dir_all(&out_dir)?;
    write_csv(&out_dir, &rows, &args.fpr)?;
    write_examples(&out_dir, &run, &pool, &target, &attacks)?;
    let report = Report {
        run: run.dir.clone(),
        seed: args.seed,
        model: arch.describe(),
        strategy: run.spec().federation.strategy.as_str().to_string(),
        sites: model_files,
        shadows: args.shadows,
        shadow_seeds: seeds,
        delta,
        delta_source,
        confidence: args.confidence,
        fprs: args.fpr.clone(),
        accountant: guarantee,
        attacks: rows,
        notes,
    };
    ward_report::write_json_atomic(&out_dir.join("audit.json"), &report)?;
    print_table(&report, &args.fpr, obs);
    say(
        obs,
        format!(
            "written: {} (audit.json, audit.csv, audit_examples.csv)",
            out_dir.display()
        ),
    );
    Ok(())
}

fn fpr_label(f: f64) -> String {
    format!("{}%", 100.0 * f)
}

fn write_csv(dir: &std::path::Path, rows: &[AttackRow], fprs: &[f64]) -> Result<()> {
    let mut head = vec![
        "attack".to_string(),
        "scope".into(),
        "members".into(),
        "non_members".into(),
        "auc".into(),
    ];
    for f in fprs {
        head.push(format!("tpr_at_fpr_{f}"));
        head.push(format!("fp_allowed_at_fpr_{f}"));
    }
    for h in [
        "epsilon_lower_bound",
        "epsilon_threshold",
        "epsilon_evaluation_members",
        "epsilon_evaluation_non_members",
        "epsilon_split_seed",
        "epsilon_optimistic_same_data",
        "delta",
        "confidence",
        "accountant_epsilon",
        "accountant",
    ] {
        head.push(h.into());
    }
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    for r in rows {
        let s = &r.summary;
        let mut cells = vec![
            r.attack.to_string(),
            r.scope.clone(),
            s.members.to_string(),
            s.non_members.to_string(),
            format!("{:.6}", s.auc),
        ];
        for t in &s.tpr_at_fpr {
            cells.push(format!("{:.6}", t.tpr));
            cells.push(t.false_positives_allowed.to_string());
        }
        cells.push(format!("{:.6}", s.epsilon.ci));
        cells.push(format!("{}", s.epsilon.threshold));
        cells.push(s.epsilon.evaluation_members.to_string());
        cells.push(s.epsilon.evaluation_non_members.to_string());
        cells.push(s.epsilon.split_seed.to_string());
        cells.push(format!("{:.6}", s.epsilon.optimistic_same_data));
        cells.push(format!("{}", s.epsilon.delta));
        cells.push(format!("{}", s.epsilon.confidence));
        cells.push(
            r.accountant_epsilon
                .map_or(String::new(), |e| format!("{e:.6}")),
        );
        cells.push(r.accountant.clone().unwrap_or_default());
        lines.push(cells);
    }
    ward_report::write_csv_atomic(&dir.join("audit.csv"), &head, lines)?;
    Ok(())
}

fn write_examples(
    dir: &std::path::Path,
    run: &FinishedRun,
    pool: &Pool,
    target: &[ExampleScore],
    attacks: &[(&'static str, Vec<f64>)],
) -> Result<()> {
    let mut head: Vec<String> = ["site", "split", "row", "member", "loss", "confidence"]
        .map(String::from)
        .to_vec();
    head.extend(
        attacks
            .iter()
            .skip(1)
            .map(|(name, _)| name.replace('-', "_")),
    );
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    for (a, &i) in pool.sites.iter().enumerate() {
        let site = &run.experiment.data().sites[i];
        for g in pool.offsets[a]..pool.offsets[a + 1] {
            let local = g - pool.offsets[a];
            let (split, row) = if local < site.train.y.len() {
                ("train", local)
            } else {
                ("test", local - site.train.y.len())
            };
            let mut cells = vec![
                site.name.clone(),
                split.to_string(),
                row.to_string(),
                u8::from(pool.member[g]).to_string(),
                format!("{:.6}", target[g].loss),
                format!("{:.6}", target[g].confidence),
            ];
            cells.extend(attacks.iter().skip(1).map(|(_, s)| format!("{:.6}", s[g])));
            lines.push(cells);
        }
    }
    ward_report::write_csv_atomic(&dir.join("audit_examples.csv"), &head, lines)?;
    Ok(())
}

fn print_table(report: &Report, fprs: &[f64], obs: &mut dyn Observer) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut head = vec![
        "attack".to_string(),
        "scope".into(),
        "members / non".into(),
        "AUC".into(),
    ];
    for &f in fprs {
        head.push(format!("TPR @ {} FPR (FP allowed)", fpr_label(f)));
    }
    head.push(format!(
        "measured eps >= ({}%, delta {:e}, held-out half)",
        100.0 * report.confidence,
        report.delta
    ));
    head.push("accountant eps".into());
    t.set_header(head);
    for r in &report.attacks {
        let s = &r.summary;
        let mut cells = vec![
            r.attack.to_string(),
            r.scope.clone(),
            format!("{} / {}", s.members, s.non_members),
            format!("{:.3}", s.auc),
        ];
        for x in &s.tpr_at_fpr {
            cells.push(format!("{:.3} ({})", x.tpr, x.false_positives_allowed));
        }
        cells.push(format!("{:.3}", s.epsilon.ci));
        cells.push(match (&r.accountant_epsilon, &r.accountant) {
            (Some(e), Some(k)) => format!("{e:.3} ({k})"),
            _ => "n/a".into(),
        });
        t.add_row(cells);
    }
    say(
        obs,
        format!(
            "Membership-inference audit of {} ({}, {}; {} shadow models, seed {})",
            report.run.display(),
            report.model,
            report.strategy,
            report.shadows,
            report.seed
        ),
    );
    say(obs, t);
    say(
        obs,
        format!(
            "measured eps: {HELD_OUT_METHOD} (split seed {}); it treats the run's rows as independent trials (see audit.json's notes)",
            split_seed(report.seed)
        ),
    );
    match &report.accountant {
        Some(g) => say(obs, format!("accountant: {}", g.source)),
        None => say(obs, "no privacy mechanism: accountant epsilon n/a"),
    }
    say(
        obs,
        format!(
            "FP allowed: false positives the FPR leaves among the non-members (0: the TPR at zero false positives; {} non-members overall)",
            report.attacks.first().map_or(0, |r| r.summary.non_members)
        ),
    );
}
