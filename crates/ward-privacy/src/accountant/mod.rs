//! Privacy accountants for the Poisson-subsampled Gaussian mechanism (DP-SGD's steps,
//! or rounds of central DP with sites sampled at rate `q`).
//!
//! Two accountants, both following Opacus 1.5.4 closely enough to reproduce its test
//! values:
//!
//! - [`AccountantKind::Rdp`] ([`RdpAccountant`]): Rényi DP of the subsampled Gaussian
//!   (Mironov, Talwar & Zhang 2019) over Opacus's default orders
//!   ([`rdp::default_orders`]), converted to `(epsilon, delta)` by Balle et al. 2020.
//!   [`RdpAccountant::epsilon_mironov`] gives Mironov 2017's looser conversion too.
//! - [`AccountantKind::Prv`] ([`PrvAccountant`]): privacy random variables (Gopi, Lee &
//!   Wutschitz 2021) discretised on a grid chosen from `eps_error` and `delta_error`
//!   and composed with FFTs. [`epsilon`] reports its **upper** estimate (the estimate
//!   plus `eps_error` at `delta - delta_error`), Opacus's `PRVAccountant.get_epsilon`;
//!   the tight estimate and the lower bound are in [`PrvEpsilon`].
//!
//! Composition: the events of one call are composed (RDP curves add; PRVs convolve),
//! in any order. Amplification by subsampling is stated for **Poisson** sampling at
//! rate `q` (each record, or each site, included independently with probability `q`);
//! fixed-size batches without replacement do not get this guarantee at the same `q`.
//!
//! ```
//! use ward_privacy::accountant::{AccountantKind, GaussianEvent, calibrate_sigma, epsilon};
//!
//! let event = GaussianEvent { sigma: 1.5, q: 0.04, steps: 2250 };
//! let eps = epsilon(AccountantKind::Rdp, &[event], 1e-5)?;
//! assert!((eps - 7.3291).abs() < 1e-3); // Opacus's test_rdp_accountant
//! let sigma = calibrate_sigma(AccountantKind::Rdp, eps, 0.04, 2250, 1e-5)?;
//! assert!((sigma - 1.5).abs() <= 1e-4);
//! # Ok::<(), ward_privacy::PrivacyError>(())
//! ```

pub mod prv;
pub mod rdp;

use serde::{Deserialize, Serialize};

pub use prv::{PrvAccountant, PrvEpsilon};
pub use rdp::{RdpAccountant, RdpEpsilon};

use crate::PrivacyError;

/// Which accountant computes epsilon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountantKind {
    /// Rényi DP (Mironov 2017; subsampled Gaussian, Mironov et al. 2019).
    #[default]
    Rdp,
    /// Privacy random variables (Gopi et al. 2021).
    Prv,
}

impl AccountantKind {
    /// The name as written in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rdp => "rdp",
            Self::Prv => "prv",
        }
    }

    /// Which bound [`epsilon`] reports for this accountant, in words for reports.
    pub fn bound(self) -> &'static str {
        match self {
            Self::Rdp => "rdp (Balle et al. 2020 conversion, Opacus orders 1.1..10.9, 12..63)",
            Self::Prv => "prv upper estimate (eps_error 0.01, delta_error delta/1000)",
        }
    }
}

impl std::fmt::Display for AccountantKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AccountantKind {
    type Err = PrivacyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rdp" => Ok(Self::Rdp),
            "prv" => Ok(Self::Prv),
            _ => Err(PrivacyError::parameter(
                "accountant",
                s,
                "unknown accountant: expected rdp or prv",
            )),
        }
    }
}

/// `steps` compositions of the Poisson-subsampled Gaussian mechanism with noise
/// multiplier `sigma` and sample rate `q`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianEvent {
    /// Noise multiplier (noise std / clip norm).
    pub sigma: f64,
    /// Sampling rate in (0, 1].
    pub q: f64,
    /// Number of steps.
    pub steps: u64,
}

/// Epsilon at `delta` after composing every event: for [`AccountantKind::Rdp`] the
/// Balle et al. 2020 conversion of the summed RDP curves over Opacus's default orders;
/// for [`AccountantKind::Prv`] the PRV accountant's **upper** estimate with Opacus's
/// defaults (`eps_error = 0.01`, `delta_error = delta / 1000`). No events give 0.
///
/// Errors: `sigma` not finite and positive, `q` outside `(0, 1]`, `steps = 0`, `delta`
/// outside `(0, 1)`, or an accountant that cannot produce a finite value (e.g. a PRV
/// grid too large for the memory cap).
pub fn epsilon(
    kind: AccountantKind,
    events: &[GaussianEvent],
    delta: f64,
) -> Result<f64, PrivacyError> {
    let e = epsilon_unchecked_finite(kind, events, delta)?;
    if !e.is_finite() {
        return Err(PrivacyError::Accountant {
            accountant: kind.as_str(),
            reason: format!("no finite epsilon at delta = {delta}: the noise is too small"),
        });
    }
    Ok(e)
}

/// [`epsilon`] without the finiteness check (calibration compares `inf` with targets).
fn epsilon_unchecked_finite(
    kind: AccountantKind,
    events: &[GaussianEvent],
    delta: f64,
) -> Result<f64, PrivacyError> {
    check_events(events)?;
    check_delta(delta)?;
    if events.is_empty() {
        return Ok(0.0);
    }
    match kind {
        AccountantKind::Rdp => {
            let mut acc = RdpAccountant::new();
            for e in events {
                acc.compose(e)?;
            }
            Ok(acc.epsilon(delta)?.epsilon)
        }
        AccountantKind::Prv => Ok(PrvAccountant::default().epsilon(events, delta)?.upper),
    }
}

/// The largest noise multiplier [`calibrate_sigma`] searches.
pub const MAX_SIGMA: f64 = 1e6;

/// The smallest noise multiplier (to 1e-4) whose epsilon after `steps` steps at rate
/// `q` is at most `target_epsilon` at `delta`.
///
/// Bisection on `sigma` (epsilon falls as `sigma` grows): the returned `sigma` has
/// `epsilon(sigma) <= target_epsilon` and `epsilon(sigma - 1e-4) > target_epsilon`.
/// For [`AccountantKind::Prv`] a probe whose PRV grid exceeds
/// [`prv::MAX_DOMAIN_SIZE`] counts as too little noise (its privacy loss spreads
/// further than the grid holds).
///
/// Errors: bad parameters (as [`epsilon`], and `target_epsilon` not finite and
/// positive), or a target that no `sigma` up to [`MAX_SIGMA`] reaches: the RDP
/// conversion over a finite grid of orders has a floor (about 0.1 at `delta = 1e-5`),
/// and the PRV upper estimate never falls below `eps_error`.
pub fn calibrate_sigma(
    kind: AccountantKind,
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
) -> Result<f64, PrivacyError> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(PrivacyError::parameter(
            "epsilon",
            target_epsilon,
            "the target epsilon must be finite and positive",
        ));
    }
    check_events(&[GaussianEvent {
        sigma: 1.0,
        q,
        steps,
    }])?;
    check_delta(delta)?;
    let eps_at = |sigma: f64| -> Result<f64, PrivacyError> {
        let event = [GaussianEvent { sigma, q, steps }];
        match kind {
            AccountantKind::Rdp => epsilon_unchecked_finite(kind, &event, delta),
            // A grid too large for this little noise counts as too little noise.
            AccountantKind::Prv => Ok(PrvAccountant::default()
                .epsilon_or_oversized(&event, delta)?
                .map_or(f64::INFINITY, |p| p.upper)),
        }
    };
    // Bracket: eps(lo) > target (lo = 0 is "no noise"), eps(hi) <= target.
    let mut lo = 0.0;
    let mut hi = 10.0;
    loop {
        let e = eps_at(hi)?;
        if e <= target_epsilon {
            break;
        }
        if hi >= MAX_SIGMA {
            return Err(PrivacyError::Accountant {
                accountant: kind.as_str(),
                reason: format!(
                    "epsilon = {target_epsilon} at delta = {delta} is unreachable: even \
                     sigma = {MAX_SIGMA} gives epsilon {e} over {steps} steps at q = {q} \
                     ({})",
                    match kind {
                        AccountantKind::Rdp =>
                            "the RDP conversion over a finite grid of orders has a floor",
                        AccountantKind::Prv => "the PRV upper estimate adds eps_error = 0.01",
                    }
                ),
            });
        }
        lo = hi;
        hi = (2.0 * hi).min(MAX_SIGMA);
    }
    while hi - lo > 1e-4 {
        let mid = 0.5 * (lo + hi);
        if eps_at(mid)? <= target_epsilon {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Checks every event's `sigma`, `q` and `steps`.
pub(crate) fn check_events(events: &[GaussianEvent]) -> Result<(), PrivacyError> {
    let many = events.len() > 1;
    let at = |i: usize, reason: &str| {
        if many {
            format!("{reason} (event {i})")
        } else {
            reason.to_string()
        }
    };
    for (i, e) in events.iter().enumerate() {
        if !(e.sigma.is_finite() && e.sigma > 0.0) {
            return Err(PrivacyError::parameter(
                "sigma",
                e.sigma,
                &at(i, "the noise multiplier must be finite and positive"),
            ));
        }
        if !(e.q > 0.0 && e.q <= 1.0) {
            return Err(PrivacyError::parameter(
                "q",
                e.q,
                &at(i, "the sampling rate must be in (0, 1]"),
            ));
        }
        if e.steps == 0 {
            return Err(PrivacyError::parameter(
                "steps",
                e.steps,
                &at(i, "at least one step is needed"),
            ));
        }
    }
    Ok(())
}

/// Checks `delta` is in `(0, 1)`.
pub(crate) fn check_delta(delta: f64) -> Result<(), PrivacyError> {
    if !(delta > 0.0 && delta < 1.0) {
        return Err(PrivacyError::parameter("delta", delta, "must be in (0, 1)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
