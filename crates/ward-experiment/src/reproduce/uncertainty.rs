//! `ward reproduce uncertainty`: a single federated model, a deep ensemble of
//! independent federations (Lakshminarayanan et al. 2017; the strong baseline of Ovadia
//! et al. 2019), the federated last-layer Laplace approximation
//! ([`ward_trust::laplace`]) and MC dropout (Gal & Ghahramani 2016), scored per site on
//! calibration, selective prediction and predictive entropy, with 95% intervals over
//! repetitions.
//!
//! Repetition `r` trains `members` federations with run seeds `r * members + m`; the
//! single model is member 0, the ensemble averages the members' probabilities, Laplace
//! is fitted around member 0 (each site sends its last layer's GGN Hessian sum over its
//! training rows; the server adds the prior precision chosen by marginal likelihood),
//! MC dropout averages member 0's softmax over `dropout_samples` sampled masks (models
//! trained with `model.dropout > 0`; left out otherwise). A constant predictor that
//! knows each site's test label frequencies is the floor.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use ward_core::config::CheckedSpec;
use ward_data::FederatedDataset;
use ward_fl::EngineOptions;
use ward_models::ModelArch;
use ward_trust::{Probs, calibration, interval, laplace, selective, uncertainty};

use crate::options::UncertaintyArgs;
use crate::{Error, Observer, Result, engine_options, say};

/// The methods, in table order.
const METHODS: [&str; 5] = ["single", "ensemble", "laplace", "mc-dropout", "constant"];

/// The methods that sample (an ensemble's members, MC dropout's masks) and so have a
/// mutual information.
const SAMPLED: [&str; 2] = ["ensemble", "mc-dropout"];

/// The metrics, in table order (`mutual_info` only for the sampled methods).
const METRICS: [&str; 8] = [
    "nll",
    "ece",
    "brier",
    "accuracy",
    "aurc",
    "entropy_right",
    "entropy_wrong",
    "mutual_info",
];

/// One trained federation's predictions on every site's test rows.
struct MemberPreds {
    /// Per site: class probabilities, `k'` per row (`k' = 2` for one logit).
    probs: Vec<Vec<f64>>,
    /// Per site: the Laplace predictive (member 0 only).
    laplace: Option<Vec<Vec<f64>>>,
    /// The prior precision chosen for Laplace.
    prior_precision: Option<f64>,
    /// Per site, per sampled mask: MC dropout's probabilities (member 0 of a model with
    /// dropout only).
    dropout: Option<Vec<Vec<Vec<f64>>>>,
    /// Per site: test labels.
    labels: Vec<Vec<usize>>,
}

/// `[1 - σ(z), σ(z)]` for one logit, the softmax otherwise.
fn probs_of(z: &[f32], k: usize) -> Vec<f64> {
    if k == 1 {
        z.iter()
            .flat_map(|&v| {
                let p = 1.0 / (1.0 + (-f64::from(v)).exp());
                [1.0 - p, p]
            })
            .collect()
    } else {
        ward_models::softmax_rows(z, k)
    }
}

/// Rows of `phi` (`d` each, f32) with the bias's constant 1 appended.
fn with_bias(phi: &[f32], d: usize) -> Vec<f64> {
    phi.chunks(d)
        .flat_map(|r| r.iter().map(|&v| f64::from(v)).chain([1.0]))
        .collect()
}

/// Fits the last-layer Laplace posterior federatedly: each site's GGN sum over its
/// training rows (all a site sends), summed; the prior precision by marginal likelihood.
fn fit_laplace(
    engine: &mut dyn ward_models::GradientEngine,
    arch: &ModelArch,
    params: &[f32],
    data: &FederatedDataset,
) -> Result<laplace::Posterior> {
    let (k, d_in) = arch.last_layer();
    let d = d_in + 1;
    let mut h = vec![0.0; (k * d) * (k * d)];
    let model = |e: ward_models::ModelError| Error::Internal(format!("laplace: {e}"));
    let trust = |e: ward_trust::TrustError| Error::Internal(format!("laplace: {e}"));
    for site in &data.sites {
        let rows = site.train.y.len();
        if rows == 0 {
            continue;
        }
        let phi = engine
            .features(params, &site.train.x.data, rows)
            .map_err(model)?;
        let z = engine
            .logits(params, &site.train.x.data, rows)
            .map_err(model)?;
        let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let mut site_h = vec![0.0; h.len()];
        laplace::ggn_sum(&z, k, &with_bias(&phi, d_in), d, &mut site_h).map_err(trust)?;
        // The server's sum of what the sites sent.
        h.iter_mut().zip(&site_h).for_each(|(a, b)| *a += b);
    }
    // θ* in the Hessian's order: weight row c then its bias, per output.
    let last = &params[params.len() - k * d..];
    let theta: Vec<f64> = (0..k)
        .flat_map(|c| {
            last[c * d_in..(c + 1) * d_in]
                .iter()
                .map(|&v| f64::from(v))
                .chain([f64::from(last[k * d_in + c])])
        })
        .collect();
    let (lambda, _) =
        laplace::select_prior_precision(&h, &theta, k, d, &laplace::prior_grid()).map_err(trust)?;
    laplace::Posterior::new(&h, k, d, lambda).map_err(trust)
}

/// Trains one federation and predicts every site's test rows (and, for member 0, the
/// Laplace predictive).
fn member(
    spec: &CheckedSpec,
    data: &FederatedDataset,
    opts: EngineOptions,
    first: bool,
    args: &UncertaintyArgs,
) -> Result<MemberPreds> {
    let (with_laplace, mc_samples) = (first, args.mc_samples);
    let outcome = crate::run_quietly(spec, data, opts)?;
    let trained = &outcome.trained;
    let arch = ward_fl::model_arch(spec, &trained.data).map_err(|e| Error::User(e.to_string()))?;
    let mut engine = ward_models::make_engine(&arch, opts.device, opts.engine)
        .map_err(|e| Error::User(e.to_string()))?;
    let params = trained.global.values();
    let (k, d_in) = arch.last_layer();
    let model = |e: ward_models::ModelError| Error::Internal(format!("predict: {e}"));
    let post = if with_laplace {
        Some(fit_laplace(engine.as_mut(), &arch, params, &trained.data)?)
    } else {
        None
    };
    let with_dropout = first && arch.dropout() > 0.0 && args.dropout_samples > 0;
    let mut out = MemberPreds {
        probs: Vec::new(),
        laplace: post.as_ref().map(|_| Vec::new()),
        prior_precision: post.as_ref().map(|p| p.prior_precision),
        dropout: with_dropout.then(Vec::new),
        labels: Vec::new(),
    };
    for (si, site) in trained.data.sites.iter().enumerate() {
        let rows = site.test.y.len();
        let z = engine
            .logits(params, &site.test.x.data, rows)
            .map_err(model)?;
        out.probs.push(probs_of(&z, k));
        out.labels
            .push(site.test.y.iter().map(|&y| y as usize).collect());
        if let (Some(post), Some(lap)) = (&post, out.laplace.as_mut()) {
            let phi = engine
                .features(params, &site.test.x.data, rows)
                .map_err(model)?;
            let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
            let p = laplace::predict(
                post,
                &z64,
                &with_bias(&phi, d_in),
                mc_samples,
                spec.seed.wrapping_mul(1000).wrapping_add(si as u64),
            )
            .map_err(|e| Error::Internal(format!("laplace: {e}")))?;
            lap.push(p);
        }
        if let Some(mc) = out.dropout.as_mut() {
            // Mask seeds: a stream of the run seed and the site, one per sample.
            let base = spec
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((si as u64) << 32);
            let samples = (0..args.dropout_samples as u64)
                .map(|t| {
                    engine
                        .dropout_logits(params, &site.test.x.data, rows, base.wrapping_add(t))
                        .map(|z| probs_of(&z, k))
                        .map_err(model)
                })
                .collect::<Result<Vec<_>>>()?;
            mc.push(samples);
        }
    }
    Ok(out)
}

fn argmax(r: &[f64]) -> (usize, f64) {
    r.iter().enumerate().fold(
        (0, f64::NEG_INFINITY),
        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
    )
}

/// The metrics of probabilities `p` (`k` per row) on `labels`; `mutual_info` is the
/// mean over rows of `H(mean) − mean H(member)` ([`uncertainty::decompose`]) where
/// `members` are given.
fn score(p: &[f64], k: usize, labels: &[usize], members: Option<&[Probs]>) -> Result<Vec<f64>> {
    let internal = |e: ward_trust::TrustError| Error::Internal(e.to_string());
    let probs = Probs::new(p.to_vec(), k).map_err(internal)?;
    let r = calibration::report(&probs, labels, 15).map_err(internal)?;
    let h = uncertainty::entropies(&probs);
    let (mut right, mut wrong, mut confidence, mut correct) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((row, &y), &e) in probs.rows().zip(labels).zip(&h) {
        let (best, conf) = argmax(row);
        confidence.push(conf);
        correct.push(best == y);
        if best == y {
            right.push(e);
        } else {
            wrong.push(e);
        }
    }
    let rc = selective::risk_coverage(&confidence, &correct).map_err(internal)?;
    let mean = |v: &[f64]| ward_core::stats::mean(v).unwrap_or(f64::NAN);
    let mi = match members {
        Some(ms) => mean(
            &uncertainty::decompose(ms)
                .map_err(internal)?
                .mutual_information,
        ),
        None => f64::NAN,
    };
    Ok(vec![
        r.nll,
        r.ece,
        r.brier,
        r.accuracy,
        rc.aurc,
        mean(&right),
        mean(&wrong),
        mi,
    ])
}

/// The best constant predictor of a test set: its own label frequencies on every row.
fn constant(labels: &[usize], k: usize) -> Vec<f64> {
    let mut freq = vec![0.0; k];
    for &y in labels {
        freq[y] += 1.0 / labels.len() as f64;
    }
    labels.iter().flat_map(|_| freq.clone()).collect()
}

/// The 95% Student-t interval of the mean over repetitions ([`interval::mean_t`]) of
/// the finite values: `(mean, half-width)`, the half-width NaN for fewer than two.
fn mean_t(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    match interval::mean_t(&v, 0.95) {
        Some(i) => (i.estimate, i.hi - i.estimate),
        None => (ward_core::stats::mean(&v).unwrap_or(f64::NAN), f64::NAN),
    }
}

/// One line of the results: a site (or `all`), a method, a metric over repetitions.
#[derive(Debug, Clone, Serialize)]
struct Cell {
    site: String,
    method: String,
    metric: String,
    mean: f64,
    half_width: f64,
    per_seed: Vec<f64>,
}

/// What `uncertainty.json` holds.
#[derive(Debug, Serialize)]
struct Report<'a> {
    members: usize,
    seeds: usize,
    mc_samples: usize,
    dropout_samples: usize,
    interval: &'static str,
    laplace: &'static str,
    mc_dropout: &'static str,
    prior_precision_per_seed: Vec<f64>,
    cells: &'a [Cell],
    config: &'a ward_core::ExperimentSpec,
}

/// Per repetition, per site (then `all`), per method: the metric vector.
type Scores = Vec<Vec<Vec<Vec<f64>>>>;

fn score_repetition(preds: &[MemberPreds]) -> Result<Vec<Vec<Vec<f64>>>> {
    let first = &preds[0];
    let n_sites = first.labels.len();
    let k = first
        .probs
        .first()
        .map_or(2, |p| p.len() / first.labels[0].len().max(1));
    let mut out = Vec::new();
    // Per site, then all test rows together.
    for si in 0..=n_sites {
        let sites: Vec<usize> = if si == n_sites {
            (0..n_sites).collect()
        } else {
            vec![si]
        };
        let cat = |f: &dyn Fn(usize) -> Vec<f64>| -> Vec<f64> {
            sites.iter().flat_map(|&s| f(s)).collect()
        };
        let labels: Vec<usize> = sites
            .iter()
            .flat_map(|&s| first.labels[s].clone())
            .collect();
        if labels.is_empty() {
            out.push(vec![vec![f64::NAN; METRICS.len()]; METHODS.len()]);
            continue;
        }
        for p in preds {
            if p.labels != first.labels {
                return Err(Error::Internal(
                    "members saw different test rows: the split depends on the run seed".into(),
                ));
            }
        }
        let single = cat(&|s| first.probs[s].clone());
        let members: Vec<Vec<f64>> = preds.iter().map(|p| cat(&|s| p.probs[s].clone())).collect();
        let mut mean = vec![0.0; single.len()];
        for m in &members {
            mean.iter_mut()
                .zip(m)
                .for_each(|(a, b)| *a += b / members.len() as f64);
        }
        let member_probs: Vec<Probs> = members
            .iter()
            .map(|m| Probs::new(m.clone(), k))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let lap = cat(&|s| {
            first
                .laplace
                .as_ref()
                .map_or_else(Vec::new, |l| l[s].clone())
        });
        // The constant floor: per site, its own test frequencies.
        let floor = cat(&|s| constant(&first.labels[s], k));
        let mc = match &first.dropout {
            Some(per_site) => {
                let t = per_site.first().map_or(0, Vec::len);
                let samples: Vec<Probs> = (0..t)
                    .map(|i| Probs::new(cat(&|s| per_site[s][i].clone()), k))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let mut mean = vec![0.0; single.len()];
                for m in &samples {
                    mean.iter_mut()
                        .zip(m.rows().flatten())
                        .for_each(|(a, b)| *a += b / t as f64);
                }
                score(&mean, k, &labels, Some(&samples))?
            }
            None => vec![f64::NAN; METRICS.len()],
        };
        out.push(vec![
            score(&single, k, &labels, None)?,
            score(&mean, k, &labels, Some(&member_probs))?,
            score(&lap, k, &labels, None)?,
            mc,
            score(&floor, k, &labels, None)?,
        ]);
    }
    Ok(out)
}

/// Runs the comparison and writes `uncertainty.csv` and `uncertainty.json`.
pub fn uncertainty(args: UncertaintyArgs, obs: &mut dyn Observer) -> Result<()> {
    let opts = engine_options(&args.engine)?;
    let (members, seeds) = (args.members.max(1), args.seeds.max(1));
    let loaded = match &args.experiment {
        Some(p) => crate::load(p, &args.sets)?,
        None => crate::default_experiment(&args.sets)?,
    };
    let base = loaded.spec;
    let data = crate::load_data(&base, &loaded.base_dir)?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| crate::default_run_dir("reproduce-uncertainty"));
    fs_err::create_dir_all(&dir)?;
    let runs: Vec<(usize, usize)> = (0..seeds)
        .flat_map(|r| (0..members).map(move |m| (r, m)))
        .collect();
    let jobs = crate::parallel::jobs_for(args.jobs, opts, &base, &data);
    let total = runs.len();
    obs.step(0, total, &format!("{total} federations, {jobs} at a time"));
    let preds = crate::parallel::run_ordered(
        &runs,
        jobs,
        |&(r, m)| -> Result<MemberPreds> {
            let mut s = (*base).clone();
            s.seed = (r * members + m) as u64;
            let s = s.check()?;
            member(&s, &data, opts, m == 0, &args)
        },
        |done| obs.step(done, total, &format!("{done} of {total} federations")),
    )
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let mut scores: Scores = Vec::new();
    let mut lambdas = Vec::new();
    for rep in preds.chunks(members) {
        lambdas.push(rep[0].prior_precision.unwrap_or(f64::NAN));
        scores.push(score_repetition(rep)?);
    }
    let mut site_names: Vec<String> = data.sites.iter().map(|s| s.name.clone()).collect();
    site_names.push("all".into());
    let mut cells = Vec::new();
    for (si, site) in site_names.iter().enumerate() {
        for (mi, method) in METHODS.iter().enumerate() {
            for (ki, metric) in METRICS.iter().enumerate() {
                if *metric == "mutual_info" && !SAMPLED.contains(method) {
                    continue;
                }
                let per_seed: Vec<f64> = scores.iter().map(|s| s[si][mi][ki]).collect();
                let (mean, half_width) = mean_t(&per_seed);
                cells.push(Cell {
                    site: site.clone(),
                    method: (*method).into(),
                    metric: (*metric).into(),
                    mean,
                    half_width,
                    per_seed,
                });
            }
        }
    }
    write_outputs(&dir, &cells, &args, &lambdas, &base)?;
    obs.step(total, total, "done");
    print_table(&cells, &site_names, members, seeds, obs);
    say(
        obs,
        format!(
            "Laplace prior precision (marginal likelihood, per repetition): {lambdas:?}\nwritten: {}, {}",
            dir.join("uncertainty.csv").display(),
            dir.join("uncertainty.json").display()
        ),
    );
    Ok(())
}

fn write_outputs(
    dir: &std::path::Path,
    cells: &[Cell],
    args: &UncertaintyArgs,
    lambdas: &[f64],
    base: &CheckedSpec,
) -> Result<()> {
    let seeds = args.seeds.max(1);
    let mut head: Vec<String> = ["site", "method", "metric", "mean", "ci95_low", "ci95_high"]
        .map(String::from)
        .to_vec();
    head.extend((0..seeds).map(|s| format!("seed{s}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let lines = cells.iter().map(|c| {
        let mut row = vec![
            c.site.clone(),
            c.method.clone(),
            c.metric.clone(),
            format!("{:.6}", c.mean),
            format!("{:.6}", c.mean - c.half_width),
            format!("{:.6}", c.mean + c.half_width),
        ];
        row.extend(c.per_seed.iter().map(|v| format!("{v:.6}")));
        row
    });
    ward_report::write_csv_atomic(&dir.join("uncertainty.csv"), &head, lines)?;
    ward_report::write_json_atomic(
        &dir.join("uncertainty.json"),
        &Report {
            members: args.members.max(1),
            seeds,
            mc_samples: args.mc_samples,
            dropout_samples: args.dropout_samples,
            interval: "95% Student-t interval of the mean over repetitions",
            laplace: "last-layer Laplace around member 0, GGN Hessian summed over sites' training rows, prior precision by marginal likelihood on a log grid 1e-4..1e4; probit predictive for one logit, Monte Carlo over the logit Gaussian otherwise",
            mc_dropout: "member 0's softmax averaged over dropout_samples forward passes, each with its own dropout mask (the training rate, model.dropout) and every other layer in evaluation mode; mutual information over the masks; NaN when the model has no dropout",
            prior_precision_per_seed: lambdas.to_vec(),
            cells,
            config: base,
        },
    )?;
    Ok(())
}

fn print_table(
    cells: &[Cell],
    sites: &[String],
    members: usize,
    seeds: usize,
    obs: &mut dyn Observer,
) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["site".to_string(), "method".into()];
    header.extend(METRICS.iter().map(|m| (*m).to_string()));
    t.set_header(header);
    for site in sites {
        for method in METHODS {
            let mut row = vec![site.clone(), method.to_string()];
            for metric in METRICS {
                row.push(
                    cells
                        .iter()
                        .find(|c| &c.site == site && c.method == method && c.metric == metric)
                        .map_or("-".into(), |c| {
                            if c.mean.is_nan() {
                                "-".into()
                            } else if c.half_width.is_finite() {
                                format!("{:.3}±{:.3}", c.mean, c.half_width)
                            } else {
                                format!("{:.3}", c.mean)
                            }
                        }),
                );
            }
            t.add_row(row);
        }
    }
    say(
        obs,
        format!(
            "Uncertainty: single federated model vs ensemble of {members} federations vs last-layer Laplace vs MC dropout (- where the model has no dropout); mean ± 95% t-interval over {seeds} repetitions (constant: each site's test label frequencies)"
        ),
    );
    say(obs, t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        // Confidences 0.9 (right), 0.8 (wrong), 0.6 (right): risks 0, 1/2, 1/3.
        let p = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4];
        let s = score(&p, 2, &[0, 0, 0], None).unwrap();
        assert!((s[4] - (0.0 + 0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((s[3] - 2.0 / 3.0).abs() < 1e-12);
        let (m, hw) = mean_t(&[1.0, 2.0, 3.0]);
        // sd 1, t_{0.975,2} = 4.3027: 4.3027 / sqrt(3).
        assert_eq!(m, 2.0);
        assert!((hw - 4.302_65 / 3f64.sqrt()).abs() < 1e-4);
    }

    /// A tiny run end to end: two repetitions of two members on the default cohort.
    #[test]
    fn small_run_writes_the_table() {
        let dir = std::env::temp_dir().join(format!("ward-unc-{}", std::process::id()));
        let args = UncertaintyArgs {
            experiment: None,
            sets: vec![
                "federation.rounds=2".into(),
                "model.kind=\"mlp\"".into(),
                "model.hidden=[8]".into(),
                "model.dropout=0.2".into(),
            ],
            members: 2,
            seeds: 2,
            mc_samples: 100,
            dropout_samples: 10,
            out: Some(dir.clone()),
            jobs: Some(1),
            engine: crate::options::EngineArgs {
                device: "cpu".into(),
                engine: "auto".into(),
            },
        };
        uncertainty(args, &mut crate::Quiet).unwrap();
        let csv = fs_err::read_to_string(dir.join("uncertainty.csv")).unwrap();
        assert!(csv.contains("all,ensemble,mutual_info,"), "{csv}");
        assert!(csv.contains("all,laplace,nll,"));
        let mi = csv
            .lines()
            .find(|l| l.starts_with("all,mc-dropout,mutual_info,"))
            .unwrap_or_else(|| panic!("no MC-dropout mutual information: {csv}"));
        let mean: f64 = mi.split(',').nth(3).unwrap().parse().unwrap();
        assert!(mean > 0.0, "masks should disagree somewhere: {mi}");
        let _ = fs_err::remove_dir_all(&dir);
    }
}
