//! `ward privacy epsilon` and `ward privacy sigma`: the accountants as calculators,
//! printing one JSON object.

use crate::say;
use crate::{Error, Result};
use serde::Serialize;
use ward_privacy::PrivacyError;
use ward_privacy::accountant::{
    AccountantKind, GaussianEvent, PrvAccountant, RdpAccountant, Sampling, calibrate_sigma,
};

use crate::Observer;
use crate::options::{PrivacyEpsilonArgs, PrivacyMechanismArgs, PrivacySigmaArgs};

/// The printed object (field order as shown).
#[derive(Debug, Serialize)]
struct Report {
    epsilon: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_epsilon: Option<f64>,
    sigma: f64,
    sampling: &'static str,
    adjacency: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<u64>,
    q: f64,
    steps: u64,
    delta: f64,
    accountant: &'static str,
    bound: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdp_order: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epsilon_mironov: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prv_estimate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prv_lower: Option<f64>,
}

/// Every accountant error here comes from the flags: a user error (exit 2) naming
/// the flag where there is one.
fn user(e: PrivacyError) -> Error {
    match &e {
        PrivacyError::Parameter { param, .. } => {
            let flag = match *param {
                "sigma" | "q" | "steps" | "delta" | "epsilon" => format!("--{param}"),
                other => other.to_string(),
            };
            Error::User(format!("{flag}: {e}"))
        }
        _ => Error::User(e.to_string()),
    }
}

/// The event the flags describe (its `sigma` set by the caller).
fn event(sigma: f64, m: &PrivacyMechanismArgs) -> Result<GaussianEvent> {
    match m.sampling.as_str() {
        "poisson" => {
            if m.n.is_some() || m.batch.is_some() {
                return Err(Error::User(
                    "--n and --batch describe fixed-size batches: add --sampling fixed, or give --q alone".into(),
                ));
            }
            let q = m.q.ok_or_else(|| {
                Error::User("--q: the sampling rate is required with --sampling poisson".into())
            })?;
            Ok(GaussianEvent::poisson(sigma, q, m.steps))
        }
        "fixed" => {
            if m.q.is_some() {
                return Err(Error::User(
                    "--q is for Poisson sampling; with --sampling fixed give --n (records) and --batch (batch size)".into(),
                ));
            }
            let (Some(n), Some(batch)) = (m.n, m.batch) else {
                return Err(Error::User(
                    "--sampling fixed needs --n (records) and --batch (batch size)".into(),
                ));
            };
            GaussianEvent::without_replacement(sigma, batch, n, m.steps).map_err(|e| match &e {
                PrivacyError::Parameter { param, .. } if param.contains("size") => {
                    Error::User(format!("--batch: {e}"))
                }
                PrivacyError::Parameter { param, .. } if param.contains("population") => {
                    Error::User(format!("--n: {e}"))
                }
                _ => user(e),
            })
        }
        other => Err(Error::User(format!(
            "--sampling {other}: expected poisson or fixed"
        ))),
    }
}

fn kind(m: &PrivacyMechanismArgs) -> Result<AccountantKind> {
    match &m.accountant {
        Some(a) => a
            .parse()
            .map_err(|e: PrivacyError| Error::User(format!("--accountant: {e}"))),
        None if m.sampling == "fixed" => Ok(AccountantKind::Prv),
        None => Ok(AccountantKind::Rdp),
    }
}

/// The report for `sigma`, with each accountant's extra fields.
fn report(kind: AccountantKind, sigma: f64, m: &PrivacyMechanismArgs) -> Result<Report> {
    let event = event(sigma, m)?;
    let fixed = event.sampling == Sampling::WithoutReplacement;
    let mut r = Report {
        epsilon: f64::NAN,
        target_epsilon: None,
        sigma,
        sampling: event.sampling.as_str(),
        adjacency: event.sampling.adjacency(),
        n: m.n.filter(|_| fixed),
        batch: m.batch.filter(|_| fixed),
        q: event.q,
        steps: m.steps,
        delta: m.delta,
        accountant: kind.as_str(),
        bound: kind.bound(),
        rdp_order: None,
        epsilon_mironov: None,
        prv_estimate: None,
        prv_lower: None,
    };
    match kind {
        AccountantKind::Rdp => {
            let mut acc = RdpAccountant::new();
            acc.compose(&event).map_err(user)?;
            let b = acc.epsilon(m.delta).map_err(user)?;
            r.epsilon = b.epsilon;
            r.rdp_order = Some(b.order);
            r.epsilon_mironov = Some(acc.epsilon_mironov(m.delta).map_err(user)?.epsilon);
        }
        AccountantKind::Prv => {
            let p = PrvAccountant::default()
                .epsilon(&[event], m.delta)
                .map_err(user)?;
            r.epsilon = p.upper;
            r.prv_estimate = Some(p.estimate);
            r.prv_lower = Some(p.lower);
        }
    }
    if !r.epsilon.is_finite() {
        return Err(Error::User(format!(
            "no finite epsilon for --sigma {sigma}: the noise is too small"
        )));
    }
    Ok(r)
}

fn print(r: &Report, obs: &mut dyn Observer) -> Result<()> {
    say(obs, serde_json::to_string(r)?);
    Ok(())
}

/// `ward privacy epsilon`.
pub fn epsilon(a: PrivacyEpsilonArgs, obs: &mut dyn Observer) -> Result<()> {
    let kind = kind(&a.mechanism)?;
    print(&report(kind, a.sigma, &a.mechanism)?, obs)
}

/// `ward privacy sigma`.
pub fn sigma(a: PrivacySigmaArgs, obs: &mut dyn Observer) -> Result<()> {
    let m = &a.mechanism;
    let kind = kind(m)?;
    let shape = event(1.0, m)?;
    let sigma = calibrate_sigma(kind, a.epsilon, shape.sampling, shape.q, m.steps, m.delta)
        .map_err(user)?;
    let mut r = report(kind, sigma, m)?;
    r.target_epsilon = Some(a.epsilon);
    print(&r, obs)
}
