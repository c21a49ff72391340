//! The report's sections, in page order.

use std::collections::BTreeMap;

use maud::html;
use ward_fl::SiteStatus;
use ward_trust::interval::Interval;

use super::charts::{figure, reliability_series};
use super::{Body, RunArtifacts, Section};
use crate::Result;

/// The sections of the page, in order. Later features push theirs onto this list.
pub fn default_sections() -> Vec<Box<dyn Section>> {
    vec![
        Box::new(Overview),
        Box::new(Performance),
        Box::new(Calibration),
        Box::new(Conformal),
        Box::new(Deferral),
        Box::new(Uncertainty),
        Box::new(Fairness),
        Box::new(Privacy),
        Box::new(Poisoning),
        Box::new(Robustness),
    ]
}

fn f3(v: f64) -> String {
    format!("{v:.3}")
}

fn opt3(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), f3)
}

fn ci(i: &Interval) -> String {
    format!("{:.3} [{:.3}, {:.3}]", i.estimate, i.lo, i.hi)
}

/// What was trained, where, and whether training converged.
struct Overview;

impl Section for Overview {
    fn id(&self) -> &'static str {
        "overview"
    }
    fn title(&self) -> &'static str {
        "What was trained where"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let spec = run.run.spec();
        let sim = run.run.prepared.simulation();
        let s = &run.summary;
        let rounds = s.rounds;
        // Per round: mean training loss over the sites that trained, each site's accuracy.
        let mut loss: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
        let mut acc: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        // Per round: the sum and count of the sites' test accuracies.
        let mut by_round: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
        for r in &run.metrics {
            if let Some(l) = r.train_loss.filter(|l| l.is_finite()) {
                let e = loss.entry(r.round).or_default();
                e.0 += l;
                e.1 += 1;
            }
            if let Some(a) = r.test_accuracy {
                let e = by_round.entry(r.round).or_default();
                e.0 += a;
                e.1 += 1;
                acc.entry(r.site.clone())
                    .or_default()
                    .push((r.round as f64, a));
            }
        }
        let loss: Vec<(f64, f64)> = loss
            .into_iter()
            .map(|(r, (sum, n))| (r as f64, sum / n as f64))
            .collect();
        let mean_acc: Vec<(f64, f64)> = by_round
            .into_iter()
            .map(|(r, (sum, n))| (r as f64, sum / n as f64))
            .collect();
        let converged = convergence(&loss, &mean_acc);
        let loss_fig = figure(
            "Mean training loss per round",
            ("round", "training loss"),
            vec![("mean over sites".into(), loss)],
            true,
            "The mean of the sites' local training losses in each round.",
        )?;
        let acc_fig = figure(
            "Test accuracy per round",
            ("round", "accuracy"),
            acc.into_iter().collect(),
            true,
            "Each site's test accuracy of the global (or, under FedBN, its own) model after each round.",
        )?;
        let cal_fraction = spec.evidence.calibration_fraction;
        Ok(Body::Present(html! {
            p {
                "Dataset " b { (sim.data.name) } " over " (sim.data.sites.len()) " sites; model "
                b { (s.model) } "; strategy " b { (s.strategy) } " with aggregation "
                b { (s.aggregator) } ", " (rounds) " rounds, seed " (s.seed) "."
                @if let Some(a) = &s.attack { " Simulated attack: " b { (a) } "." }
                @if spec.privacy.is_off() { " No privacy mechanism." } @else { " With a privacy mechanism (see Privacy)." }
            }
            table {
                tr { th { "site" } th { "training rows" } th { "calibration rows" } th { "test rows" } th { "test label counts" } }
                @for (i, site) in sim.data.sites.iter().enumerate() {
                    tr {
                        td { (site.name) }
                        td { (site.train.len()) }
                        td { (sim.calibration.get(i).map_or(0, ward_data::Split::len)) }
                        td { (site.test.len()) }
                        td { (format!("{:?}", site.test.label_counts(sim.data.num_classes))) }
                    }
                }
            }
            p.note {
                @match cal_fraction {
                    Some(f) => { "The calibration split is " (f) " of each site's training rows, set aside before training (never trained on); the test split is used only to score." }
                    None => { "No calibration split (evidence.calibration-fraction unset): every training row was trained on." }
                }
            }
            p { b { "Convergence: " } (converged) }
            div.figs { (loss_fig) (acc_fig) }
        }))
    }
}

/// Whether training has flattened at the end: the mean training loss over the last
/// fifth of the rounds against the fifth before it (relative change under 2%) and the
/// mean test accuracy over the sites, same windows (change under 0.02). A slow learning
/// rate can keep the loss within 2% while accuracy is still climbing, so both must hold.
fn convergence(loss: &[(f64, f64)], accuracy: &[(f64, f64)]) -> String {
    let n = loss.len();
    if n < 10 {
        return format!("{n} rounds of training loss: too few to judge whether the curve is flat.");
    }
    let k = n / 5;
    let mean = |s: &[(f64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64;
    let last = mean(&loss[n - k..]);
    let before = mean(&loss[n - 2 * k..n - k]);
    let change = (before - last) / before.abs().max(1e-12);
    let m = accuracy.len();
    let acc_change =
        (m >= 2 * k).then(|| mean(&accuracy[m - k..]) - mean(&accuracy[m - 2 * k..m - k]));
    let acc_text = acc_change.map_or_else(String::new, |d| {
        format!("; the mean test accuracy over sites moved by {d:+.3} between the same windows")
    });
    let flat = change.abs() < 0.02 && acc_change.is_none_or(|d| d.abs() < 0.02);
    let verdict = if flat {
        "flat (loss change under 2%, accuracy change under 0.02): training has converged at this learning rate"
    } else {
        "still moving (loss change of 2% or more, or accuracy change of 0.02 or more): training had not converged; more rounds could change every number below"
    };
    format!(
        "the mean training loss over the last {k} rounds is {last:.4}, {:.1}% below the {k} rounds before{acc_text}; {verdict}.",
        change * 100.0
    )
}

/// Per-site performance with intervals and floors.
struct Performance;

impl Section for Performance {
    fn id(&self) -> &'static str {
        "performance"
    }
    fn title(&self) -> &'static str {
        "Performance at each site"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let e = &run.evidence;
        Ok(Body::Present(html! {
            p { "Accuracy on each site's own test split with its 95% Wilson interval. The floor is the accuracy of always predicting that site's most frequent class: a model is only useful above it." }
            table {
                tr { th { "site" } th { "test rows" } th { "accuracy [95% CI]" } th { "balanced accuracy" } th { "floor (constant)" } th { "AUC" } th { "model file" } }
                @for s in &e.sites {
                    tr {
                        td { (s.site) }
                        td { (s.n_test) }
                        td { (ci(&s.accuracy)) }
                        td { (f3(s.balanced_accuracy)) }
                        td { (f3(s.floor)) }
                        td { (opt3(run.summary.per_site_auc.get(&s.site).copied())) }
                        td { code { (s.model_file) } }
                    }
                }
            }
            p {
                "Mean over sites " (f3(e.fairness.mean)) "; over all test rows "
                (f3(e.overall.accuracy)) " (" (e.overall.n) " rows)."
            }
        }))
    }
}

/// Calibration before and after federated recalibration.
struct Calibration;

impl Section for Calibration {
    fn id(&self) -> &'static str {
        "calibration"
    }
    fn title(&self) -> &'static str {
        "Calibration: is the stated confidence honest?"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let e = &run.evidence;
        let bins = e.settings.bins;
        let methods: Vec<String> = e
            .sites
            .first()
            .map(|s| s.recalibrated.iter().map(|r| r.method.clone()).collect())
            .unwrap_or_default();
        let mut series = reliability_series("all sites", &e.overall.bins);
        for s in &e.sites {
            series.extend(
                reliability_series(&s.site, &s.calibration.bins)
                    .into_iter()
                    .take(1),
            );
        }
        let fig = figure(
            "Reliability diagram",
            ("confidence (top-class probability)", "accuracy"),
            series,
            true,
            &format!(
                "Mean confidence against accuracy in {bins} equal-width bins; on the diagonal, a model that says 80% is right 80% of the time."
            ),
        )?;
        Ok(Body::Present(html! {
            p { "ECE: the gap between confidence and accuracy averaged over " (bins) " equal-width confidence bins (Guo et al. 2017); adaptive ECE uses equal-mass bins; MCE is the largest gap; Brier is the mean squared error of the probability vector (summed over classes); NLL in nats. Lower is better for all." }
            table {
                tr { th { "site" } th { "ECE" } th { "adaptive ECE" } th { "MCE" } th { "Brier" } th { "NLL" }
                    @for m in &methods { th { "ECE after " (m) } } }
                @for s in &e.sites {
                    tr {
                        td { (s.site) }
                        td { (f3(s.calibration.ece)) } td { (f3(s.calibration.adaptive_ece)) }
                        td { (f3(s.calibration.mce)) } td { (f3(s.calibration.brier)) } td { (f3(s.calibration.nll)) }
                        @for r in &s.recalibrated { td { (f3(r.ece)) } }
                    }
                }
                tr {
                    td { b { "all test rows" } }
                    td { (f3(e.overall.ece)) } td { (f3(e.overall.adaptive_ece)) } td { (f3(e.overall.mce)) }
                    td { (f3(e.overall.brier)) } td { (f3(e.overall.nll)) }
                    @for _ in &methods { td { } }
                }
            }
            @match &e.recalibration {
                Some(r) => {
                    p {
                        "Recalibration was fitted federatedly on the calibration splits (" (r.rows) " rows over all sites): "
                        @if let Some(t) = &r.temperature {
                            "temperature T = " (format!("{:.4}", t.temperature)) " after " (t.rounds) " rounds in which each site sent four sums (never a logit)"
                        }
                        @if let Some(err) = &r.temperature_error { "temperature scaling failed: " (err) }
                        @if r.platt.is_some() { "; Platt scaling from each site's gradient and Hessian sums" }
                        @if r.histogram.is_some() { "; histogram binning from each site's bin counts" }
                        "."
                    }
                }
                None => { p.absent { (e.unavailable.get("recalibration").map_or("", String::as_str)) } }
            }
            (fig)
        }))
    }
}

/// Conformal prediction sets, per site, with the guarantee.
struct Conformal;

impl Section for Conformal {
    fn id(&self) -> &'static str {
        "conformal"
    }
    fn title(&self) -> &'static str {
        "Conformal prediction sets"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let e = &run.evidence;
        let Some(c) = &e.conformal else {
            return Ok(Body::Absent(format!(
                "Not computed: {}.",
                e.unavailable
                    .get("conformal")
                    .map_or("no calibration split", String::as_str)
            )));
        };
        let target = 1.0 - c.alpha;
        Ok(Body::Present(html! {
            p { "Instead of one label, the model returns a set of classes meant to contain the true one with probability at least " (f3(target)) " (score " code { (c.score) } ", alpha " (c.alpha) ")." }
            p.note { (c.guarantee) }
            @if let Some(q) = c.federated_qhat { p { "Federated threshold (FedCP-QQ): " (format!("{q:.4}")) "." } }
            table {
                tr { th { "site" } th { "calibration rows" } th { "own threshold" } th { "coverage, own sets [95% CI]" } th { "mean size, own" }
                     th { "coverage, federated sets [95% CI]" } th { "mean size, federated" } th { "singletons" } th { "coverage per class (Mondrian)" } }
                @for s in &c.sites {
                    tr {
                        td { (s.site) }
                        td { (s.n_calibration) }
                        td { (opt3(s.local_qhat)) }
                        td { (s.local.map_or("– (too few calibration rows)".into(), |l| ci(&l.coverage))) }
                        td { (s.local.map_or("–".into(), |l| f3(l.mean_size))) }
                        td { (s.federated.map_or("–".into(), |l| ci(&l.coverage))) }
                        td { (s.federated.map_or("–".into(), |l| f3(l.mean_size))) }
                        td { (s.federated.map_or("–".into(), |l| f3(l.singletons))) }
                        td { (s.class_coverage.iter().map(|v| opt3(*v)).collect::<Vec<_>>().join(" / ")) }
                    }
                }
            }
            @if let Some(m) = &c.marginal {
                p { "Over all test rows, the federated sets cover " (ci(m)) "." }
            }
            @if c.below_target.is_empty() {
                p { "No site's federated coverage is below " (f3(target)) " with 95% confidence." }
            } @else {
                p.warn {
                    "Below target at " (c.below_target.join(", ")) ": the upper end of the site's 95% interval is under " (f3(target))
                    ". The coverage over all sites together can hide this: these sites differ from the others, and the federated guarantee assumes they do not."
                }
            }
        }))
    }
}

/// Deferral to a clinician.
struct Deferral;

impl Section for Deferral {
    fn id(&self) -> &'static str {
        "deferral"
    }
    fn title(&self) -> &'static str {
        "Deferral to a clinician"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let e = &run.evidence;
        let target = e.settings.target_error;
        let series = e
            .sites
            .iter()
            .map(|s| {
                let mut pts: Vec<(f64, f64)> = s
                    .risk_coverage
                    .curve
                    .iter()
                    .map(|p| (p.deferred(), p.risk))
                    .collect();
                pts.reverse();
                (s.site.clone(), pts)
            })
            .collect();
        let fig = figure(
            "Error on the cases kept against the fraction deferred",
            ("fraction deferred to a clinician", "error on kept cases"),
            series,
            false,
            "Policy: defer the least confident cases (lowest top-class probability) first.",
        )?;
        let sets: BTreeMap<&str, _> = e
            .conformal
            .iter()
            .flat_map(|c| c.sites.iter())
            .filter_map(|s| Some((s.site.as_str(), s.set_deferral?)))
            .collect();
        Ok(Body::Present(html! {
            p { "Two policies: defer when the model's confidence is low, or when its conformal set holds more than one class. The operating point is the smallest fraction deferred at which the error on the kept cases is at most " (f3(target)) " (evidence.target-error), read off the test split." }
            table {
                tr { th { "site" } th { "error, nothing deferred" } th { "deferred for error ≤ " (f3(target)) } th { "error on kept there" }
                     th { "deferred: set not a singleton" } th { "error on kept (singletons)" } }
                @for s in &e.sites {
                    tr {
                        td { (s.site) }
                        td { (f3(s.risk_coverage.error)) }
                        @match s.operating_point.point {
                            Some(p) => { td { (f3(p.deferred())) } td { (f3(p.risk)) } }
                            None => { td { "all (no confidence level reaches it)" } td { "–" } }
                        }
                        @match sets.get(s.site.as_str()) {
                            Some(d) => { td { (f3(d.deferred)) } td { (opt3(d.kept_error)) } }
                            None => { td { "–" } td { "–" } }
                        }
                    }
                }
            }
            (fig)
        }))
    }
}

/// Predictive uncertainty and selective prediction.
struct Uncertainty;

impl Section for Uncertainty {
    fn id(&self) -> &'static str {
        "uncertainty"
    }
    fn title(&self) -> &'static str {
        "Uncertainty and selective prediction"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let e = &run.evidence;
        let series = e
            .sites
            .iter()
            .map(|s| {
                (
                    s.site.clone(),
                    s.risk_coverage
                        .curve
                        .iter()
                        .map(|p| (p.coverage, p.risk))
                        .collect(),
                )
            })
            .collect();
        let fig = figure(
            "Risk–coverage",
            ("coverage (fraction of cases kept)", "risk (error on kept)"),
            series,
            false,
            "Keeping the most confident cases first; a lower curve is better. AURC is the area under it.",
        )?;
        Ok(Body::Present(html! {
            p { "Predictive entropy (nats) of the model's probabilities: a useful uncertainty is higher on the cases the model gets wrong. AURC (Geifman et al. 2019) is the mean error over all coverages; E-AURC subtracts the best possible ranking's AURC." }
            table {
                tr { th { "site" } th { "mean entropy" } th { "on right" } th { "on wrong" } th { "AURC" } th { "E-AURC" } }
                @for s in &e.sites {
                    tr {
                        td { (s.site) }
                        td { (f3(s.uncertainty.mean)) }
                        td { (opt3(s.uncertainty.correct)) }
                        td { (opt3(s.uncertainty.wrong)) }
                        td { (f3(s.risk_coverage.aurc)) }
                        td { (f3(s.risk_coverage.e_aurc)) }
                    }
                }
            }
            (fig)
            @if e.sites.iter().any(|s| s.mc_dropout.is_some()) {
                h3 { "MC dropout" }
                p { "The model was trained with dropout; averaging its predictions over "
                    (crate::evidence::MC_DROPOUT_SAMPLES)
                    " random dropout masks (Gal & Ghahramani 2016) gives a second opinion and splits the uncertainty: the mutual information between prediction and mask is the part due to the model not knowing (epistemic). A useful signal is higher on wrong cases than on right ones." }
                table {
                    tr { th { "site" } th { "accuracy" } th { "NLL" } th { "ECE" } th { "entropy on right" } th { "on wrong" } th { "mutual information on right" } th { "on wrong" } }
                    @for s in &e.sites {
                        @if let Some(m) = &s.mc_dropout {
                            tr {
                                td { (s.site) }
                                td { (f3(m.accuracy)) }
                                td { (f3(m.nll)) }
                                td { (f3(m.ece)) }
                                td { (opt3(m.entropy.correct)) }
                                td { (opt3(m.entropy.wrong)) }
                                td { (opt3(m.mutual_information.correct)) }
                                td { (opt3(m.mutual_information.wrong)) }
                            }
                        }
                    }
                }
            }
        }))
    }
}

/// Accuracy across sites.
struct Fairness;

impl Section for Fairness {
    fn id(&self) -> &'static str {
        "fairness"
    }
    fn title(&self) -> &'static str {
        "Fairness across sites"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let f = &run.evidence.fairness;
        Ok(Body::Present(html! {
            table {
                tr { th { "mean over sites" } th { "worst site" } th { "best site" } th { "spread (best − worst)" } }
                tr {
                    td { (f3(f.mean)) }
                    td { (f.worst.0) ": " (f3(f.worst.1)) }
                    td { (f.best.0) ": " (f3(f.best.1)) }
                    td { (f3(f.spread)) }
                }
            }
            @if let Some(g) = &run.evidence.groups {
                h3 { "By " (g.column) " (all sites' test rows)" }
                p { "Rates of the predicted class per group (Fairlearn's definitions): true-positive rate (sensitivity), false-positive rate, selection rate; a gap is the largest minus the smallest over the groups. Equalized-odds difference is the larger of the TPR and FPR gaps." }
                table {
                    tr { th { "group" } th { "rows" } th { "positives" } th { "accuracy" } th { "TPR" } th { "FPR" } th { "selection rate" } }
                    @for r in &g.overall.groups {
                        tr { td { (r.group) } td { (r.n) } td { (r.positives) } td { (f3(r.accuracy)) }
                             td { (opt3(r.tpr)) } td { (opt3(r.fpr)) } td { (f3(r.selection_rate)) } }
                    }
                }
                table {
                    tr { th { "" } th { "TPR gap" } th { "FPR gap" } th { "equalized odds" } th { "demographic parity" } }
                    tr { td { "all sites" } td { (opt3(g.overall.tpr_difference)) } td { (opt3(g.overall.fpr_difference)) }
                         td { (opt3(g.overall.equalized_odds_difference)) } td { (f3(g.overall.demographic_parity_difference)) } }
                    @for (site, r) in &g.sites {
                        tr { td { (site) } td { (opt3(r.tpr_difference)) } td { (opt3(r.fpr_difference)) }
                             td { (opt3(r.equalized_odds_difference)) } td { (f3(r.demographic_parity_difference)) } }
                    }
                }
                p.note { "Small groups make these gaps noisy: read them beside each group's rows and positives." }
            }
            @if let Some(why) = run.evidence.unavailable.get("groups") {
                p.absent { "Groups within sites: " (why) "." }
            }
        }))
    }
}

/// Privacy spent, from privacy.json.
struct Privacy;

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn epsilon_text(v: &serde_json::Value) -> Option<String> {
    let e = v.get("epsilon")?;
    let part = |k: &str| e.get(k).and_then(serde_json::Value::as_f64);
    match (part("rdp"), part("prv")) {
        (None, None) => None,
        (r, p) => Some(format!(
            "epsilon {} (RDP, an upper bound), {} (PRV, a numerical estimate)",
            r.map_or("–".into(), |x| format!("{x:.3}")),
            p.map_or("–".into(), |x| format!("{x:.3}"))
        )),
    }
}

/// What the bound epsilon (RDP's, the certified one) says in numbers: the factor
/// e^epsilon, and a warning where it is too large to protect anyone in practice.
///
/// Ward's reading: epsilon <= 1 strong; up to 10 moderate; above 10 the factor exceeds
/// e^10 ≈ 22 026, which bounds almost nothing.
fn epsilon_meaning(v: &serde_json::Value) -> Option<(String, bool)> {
    let eps = v
        .pointer("/epsilon/rdp")
        .and_then(serde_json::Value::as_f64)?;
    let factor = eps.exp();
    let factor = if factor < 1e4 {
        format!("{factor:.2}")
    } else {
        format!("{factor:.2e}")
    };
    let (words, warn) = if eps <= 1.0 {
        ("a strong guarantee", false)
    } else if eps <= 10.0 {
        (
            "a moderate guarantee: it bounds what the run reveals, but an attacker's odds on one record may still grow several-fold",
            false,
        )
    } else {
        (
            "a weak guarantee: at this epsilon the bound allows an attacker's odds on one record to grow by more than 20 000 times, so it protects little in practice",
            true,
        )
    };
    Some((format!("Here e^epsilon = {factor}: {words}."), warn))
}

impl Section for Privacy {
    fn id(&self) -> &'static str {
        "privacy"
    }
    fn title(&self) -> &'static str {
        "Privacy spent"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let Some(p) = &run.privacy else {
            return Ok(Body::Absent(
                "This run had no privacy mechanism ([privacy] unset): it makes no differential-privacy claim. Its model and per-site scores may reveal information about individual training records."
                    .into(),
            ));
        };
        let kinds = [
            ("record_level", "Record-level DP-SGD at each site"),
            ("site_level", "Site-level central DP at the server"),
            ("secure_aggregation", "Secure aggregation (SecAgg+)"),
        ];
        Ok(Body::Present(html! {
            @for (key, name) in kinds {
                @if let Some(m) = p.get(key) {
                    h3 { (name) }
                    @if let Some(eps) = epsilon_text(m) {
                        p { b { (eps) } ", delta " (m.get("delta").and_then(scalar).unwrap_or_default()) "." }
                        p.note { "What it means: for any one " (m.pointer("/guarantee/unit").and_then(scalar).unwrap_or_default())
                            ", everything this run published is almost as likely with it as without it: at most e^epsilon times more likely, except with probability delta." }
                        @if let Some((text, warn)) = epsilon_meaning(m) {
                            @if warn { p.warn { (text) } } @else { p.note { (text) } }
                        }
                    }
                    table {
                        @if let Some(g) = m.get("guarantee").and_then(serde_json::Value::as_object) {
                            @for (k, v) in g {
                                @if let Some(s) = scalar(v) { tr { th { (k) } td { (s) } } }
                                @if let Some(a) = v.as_array() {
                                    tr { th { (k) } td { (a.iter().filter_map(scalar).collect::<Vec<_>>().join("; ")) } }
                                }
                            }
                        }
                        @if let Some(o) = m.as_object() {
                            @for (k, v) in o {
                                @if let Some(s) = scalar(v) { tr { th { (k) } td { (s) } } }
                            }
                        }
                    }
                }
            }
            @if let Some(w) = p.get("warnings").and_then(serde_json::Value::as_array) {
                @for x in w { p.warn { (scalar(x).unwrap_or_default()) } }
            }
        }))
    }
}

/// Who the aggregation rule excluded, from metrics.jsonl.
struct Poisoning;

impl Section for Poisoning {
    fn id(&self) -> &'static str {
        "poisoning"
    }
    fn title(&self) -> &'static str {
        "Poisoning audit: who was excluded"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let s = &run.summary;
        let mut per: BTreeMap<&str, (usize, usize, Option<String>)> = BTreeMap::new();
        for r in &run.metrics {
            let e = per.entry(r.site.as_str()).or_default();
            match &r.status {
                SiteStatus::Accepted => e.0 += 1,
                SiteStatus::Rejected { reason } => {
                    e.1 += 1;
                    e.2.get_or_insert_with(|| reason.clone());
                }
                _ => {}
            }
        }
        Ok(Body::Present(html! {
            p {
                "Aggregation rule " b { (s.aggregator) } ". "
                @match &s.attack {
                    Some(a) => { "Simulated attack " b { (a) } " from " (s.compromised_sites.join(", ")) "." }
                    None => { "No simulated attack." }
                }
            }
            table {
                tr { th { "site" } th { "updates accepted" } th { "updates rejected" } th { "first reason" } }
                @for (site, (acc, rej, why)) in &per {
                    tr { td { (site) } td { (acc) } td { (rej) } td { (why.clone().unwrap_or_default()) } }
                }
            }
            @if per.values().all(|v| v.1 == 0) { p { "No update was excluded." } }
            @if let Some(b) = s.backdoor_success_mean { p.warn { "Backdoor success on triggered test rows: " (f3(b)) "." } }
        }))
    }
}

/// Acquisition-shift robustness, from `ward robustness`.
struct Robustness;

impl Section for Robustness {
    fn id(&self) -> &'static str {
        "robustness"
    }
    fn title(&self) -> &'static str {
        "Robustness to acquisition changes"
    }
    fn render(&self, run: &RunArtifacts) -> Result<Body> {
        let Some(r) = &run.robustness else {
            let hint = if run.run.experiment.data().image.is_some() {
                format!(
                    "Not measured: run `ward robustness {}` (18 corruptions x 5 severities), then this report again.",
                    run.dir.display()
                )
            } else {
                "Not applicable: the acquisition corruptions are for images; this run trained on a table.".into()
            };
            return Ok(Body::Absent(hint));
        };
        let sites = r.get("sites").and_then(serde_json::Value::as_object);
        Ok(Body::Present(html! {
            p { "Balanced accuracy on each site's test images, clean and averaged over every corruption and severity (ward robustness; chance is 1 / classes)." }
            table {
                tr { th { "site" } th { "clean" } th { "mean under corruption" } th { "chance" } }
                @if let Some(sites) = sites {
                    @for (name, v) in sites {
                        tr {
                            td { (name) }
                            td { (opt3(v.get("clean_balanced_accuracy").and_then(serde_json::Value::as_f64))) }
                            td { (opt3(v.pointer("/mean/balanced_accuracy").and_then(serde_json::Value::as_f64))) }
                            td { (opt3(v.get("chance").and_then(serde_json::Value::as_f64))) }
                        }
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{convergence, epsilon_meaning};

    /// 15 rounds, windows of 3: a loss falling 0.5% a round is within 2% between windows
    /// (3 rounds apart: about 1.5%), but accuracy rising 0.02 a round moves 0.06 between
    /// them, so training is still moving; with accuracy flat too it is converged; a loss
    /// falling 3% a round is still moving whatever accuracy does.
    #[test]
    fn convergence_needs_flat_loss_and_flat_accuracy() {
        let curve = |start: f64, step: f64| -> Vec<(f64, f64)> {
            (1..=15)
                .map(|r| (f64::from(r), start * (1.0 - step).powi(r)))
                .collect()
        };
        let rising: Vec<(f64, f64)> = (1..=15)
            .map(|r| (f64::from(r), 0.5 + 0.02 * f64::from(r)))
            .collect();
        let flat_acc: Vec<(f64, f64)> = (1..=15).map(|r| (f64::from(r), 0.8)).collect();
        let slow = curve(0.7, 0.005);
        assert!(
            convergence(&slow, &rising).contains("still moving"),
            "{}",
            convergence(&slow, &rising)
        );
        assert!(convergence(&slow, &rising).contains("+0.060"));
        assert!(convergence(&slow, &flat_acc).contains("has converged"));
        assert!(convergence(&curve(0.7, 0.03), &flat_acc).contains("still moving"));
        assert!(
            convergence(&slow, &[]).contains("has converged"),
            "no accuracy: loss alone"
        );
        assert!(convergence(&slow[..5], &flat_acc).contains("too few"));
    }

    /// e^0.5 = 1.6487, e^12 = 162 754.8 (by hand); only the second is a warning.
    #[test]
    fn epsilon_is_read_as_a_factor_and_large_ones_are_flagged() {
        let at = |e: f64| epsilon_meaning(&serde_json::json!({"epsilon": {"rdp": e}})).unwrap();
        let (text, warn) = at(0.5);
        assert!(text.contains("e^epsilon = 1.65: a strong"), "{text}");
        assert!(!warn);
        let (text, warn) = at(5.0);
        assert!(text.contains("148.41: a moderate"), "{text}");
        assert!(!warn);
        let (text, warn) = at(12.0);
        assert!(text.contains("1.63e5: a weak"), "{text}");
        assert!(warn);
        assert!(epsilon_meaning(&serde_json::json!({"epsilon": {"prv": 1.0}})).is_none());
    }
}
