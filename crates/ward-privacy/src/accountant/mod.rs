//! Privacy accountants for the subsampled Gaussian mechanism (DP-SGD's steps, or rounds
//! of central DP with sites sampled at rate `q`), for two ways of drawing the batch
//! ([`Sampling`]):
//!
//! - [`Sampling::Poisson`]: each record (site) included independently with probability
//!   `q`; the guarantee is for add/remove-one neighbours.
//! - [`Sampling::WithoutReplacement`]: a fixed-size batch of `size` of `population`
//!   records, `q = size / population`; the guarantee is for substitution (replace-one)
//!   neighbours, under which the clipped sum moves by up to 2C, not C. Accounting a
//!   fixed-size batch as Poisson at the same `q` is about 2x optimistic.
//!
//! Two accountants:
//!
//! - [`AccountantKind::Rdp`] ([`RdpAccountant`]): Rényi DP of the subsampled Gaussian
//!   (Poisson: Mironov, Talwar & Zhang 2019, as Opacus 1.5.4; without replacement:
//!   Wang, Balle & Kasiviswanathan 2019, Theorem 27, as Google's dp-accounting 0.6.0)
//!   over Opacus's default orders ([`rdp::default_orders`]), converted to
//!   `(epsilon, delta)` by Balle et al. 2020. [`RdpAccountant::epsilon_mironov`] gives
//!   Mironov 2017's looser conversion too. An upper bound.
//! - [`AccountantKind::Prv`] ([`PrvAccountant`]): privacy random variables (Gopi, Lee &
//!   Wutschitz 2021) discretised on a grid chosen from `eps_error` and `delta_error`
//!   and composed with FFTs, as Opacus 1.5.4 for Poisson sampling; for sampling without
//!   replacement the same machinery on the substitution pair of mixtures. [`epsilon`]
//!   reports its **upper estimate** (the estimate plus `eps_error` at
//!   `delta - delta_error`), Opacus's `PRVAccountant.get_epsilon`: an estimate with a
//!   stated error, not a proven bound; the central estimate and the lower estimate are
//!   in [`PrvEpsilon`].
//!
//! Composition: the events of one call are composed (RDP curves add; PRVs convolve),
//! in any order. Events of different [`Sampling`] are refused together: add/remove and
//! substitution guarantees do not compose into one statement.
//!
//! ```
//! use ward_privacy::accountant::{AccountantKind, GaussianEvent, Sampling, calibrate_sigma, epsilon};
//!
//! let event = GaussianEvent::poisson(1.5, 0.04, 2250);
//! let eps = epsilon(AccountantKind::Rdp, &[event], 1e-5)?;
//! assert!((eps - 7.3291).abs() < 1e-3); // Opacus's test_rdp_accountant
//! let sigma = calibrate_sigma(AccountantKind::Rdp, eps, Sampling::Poisson, 0.04, 2250, 1e-5)?;
//! assert!((sigma - 1.5).abs() <= 1e-4);
//!
//! // The same steps on fixed-size batches of 1000 of 25000 records (substitution):
//! // about twice the Poisson value at the same q (PRV upper estimates 13.50 and 6.78;
//! // dp-accounting's PLD puts the fixed-size value at about 13.487).
//! let fixed = GaussianEvent::without_replacement(1.5, 1000, 25_000, 2250)?;
//! let eps_fixed = epsilon(AccountantKind::Prv, &[fixed], 1e-5)?;
//! let eps_poisson = epsilon(AccountantKind::Prv, &[event], 1e-5)?;
//! assert!((eps_fixed - 13.50).abs() < 0.01 && eps_fixed > 1.9 * eps_poisson);
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

    /// Which value [`epsilon`] reports for this accountant under Poisson sampling, in
    /// words for reports ([`AccountantKind::bound_for`] with [`Sampling::Poisson`]).
    pub fn bound(self) -> &'static str {
        self.bound_for(Sampling::Poisson)
    }

    /// Which value [`epsilon`] reports for this accountant and sampling, in words for
    /// reports.
    pub fn bound_for(self, sampling: Sampling) -> &'static str {
        match (self, sampling) {
            (Self::Rdp, Sampling::Poisson) => {
                "rdp (Balle et al. 2020 conversion, Opacus orders 1.1..10.9, 12..63)"
            }
            (Self::Rdp, Sampling::WithoutReplacement) => {
                "rdp, substitution (Wang, Balle & Kasiviswanathan 2019 Theorem 27, Balle et \
                 al. 2020 conversion, Opacus orders 1.1..10.9, 12..63)"
            }
            (Self::Prv, Sampling::Poisson) => {
                "prv upper estimate (eps_error 0.01, delta_error delta/1000)"
            }
            (Self::Prv, Sampling::WithoutReplacement) => {
                "prv upper estimate, substitution (eps_error 0.01, delta_error delta/1000)"
            }
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

/// How each step's batch (or each round's sites) is drawn, and the adjacency it is
/// accounted under.
///
/// The two give guarantees about different neighbouring datasets, so one accounting
/// never mixes them ([`epsilon`] refuses events of both kinds together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Each record (site) included independently with probability q; adjacency: add or
    /// remove one; the clipped sum moves by at most C.
    #[default]
    Poisson,
    /// Exactly `size` of `population` drawn without replacement each step,
    /// q = size / population; adjacency: substitution of one (population size public);
    /// the clipped sum moves by at most 2C.
    WithoutReplacement,
}

impl Sampling {
    /// The name as written in configs and on the command line: `poisson` or
    /// `without-replacement`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poisson => "poisson",
            Self::WithoutReplacement => "without-replacement",
        }
    }

    /// The neighbouring relation the guarantee is stated for, in words for reports.
    pub fn adjacency(self) -> &'static str {
        match self {
            Self::Poisson => "add or remove one",
            Self::WithoutReplacement => "substitution (replace one)",
        }
    }
}

impl std::fmt::Display for Sampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Sampling {
    type Err = PrivacyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "poisson" => Ok(Self::Poisson),
            "without-replacement" => Ok(Self::WithoutReplacement),
            _ => Err(PrivacyError::parameter(
                "sampling",
                s,
                "unknown sampling: expected poisson or without-replacement",
            )),
        }
    }
}

/// `steps` compositions of the subsampled Gaussian mechanism with noise multiplier
/// `sigma` and sample rate `q`, the batch drawn as `sampling` says.
///
/// `sigma` is always the noise std over the per-record clip norm C, whichever the
/// sampling: under [`Sampling::WithoutReplacement`] the accountants themselves account
/// for the substitution sensitivity 2C.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianEvent {
    /// Noise multiplier (noise std / per-record clip norm C).
    pub sigma: f64,
    /// Sampling rate in (0, 1] (`size / population` without replacement).
    pub q: f64,
    /// Number of steps.
    pub steps: u64,
    /// How each batch is drawn (and so the adjacency); [`Sampling::Poisson`] when a
    /// serialized event omits it.
    #[serde(default)]
    pub sampling: Sampling,
}

impl GaussianEvent {
    /// `steps` steps with Poisson sampling at rate `q` (add/remove-one adjacency).
    /// The parameters are checked where the event is used.
    pub fn poisson(sigma: f64, q: f64, steps: u64) -> Self {
        Self {
            sigma,
            q,
            steps,
            sampling: Sampling::Poisson,
        }
    }

    /// `steps` steps, each on exactly `size` of `population` records drawn without
    /// replacement (substitution adjacency), so `q = size / population`.
    ///
    /// Errors (naming `size`) if `size` is 0 or exceeds `population`; `sigma` and
    /// `steps` are checked where the event is used, as for [`GaussianEvent::poisson`].
    pub fn without_replacement(
        sigma: f64,
        size: u64,
        population: u64,
        steps: u64,
    ) -> Result<Self, PrivacyError> {
        if size == 0 {
            return Err(PrivacyError::parameter(
                "size",
                size,
                "a batch drawn without replacement needs at least one record",
            ));
        }
        if size > population {
            return Err(PrivacyError::parameter(
                "size",
                size,
                &format!(
                    "exceeds population = {population}: a batch drawn without replacement \
                     holds at most the whole population"
                ),
            ));
        }
        Ok(Self {
            sigma,
            q: size as f64 / population as f64,
            steps,
            sampling: Sampling::WithoutReplacement,
        })
    }
}

/// Epsilon at `delta` after composing every event: for [`AccountantKind::Rdp`] the
/// Balle et al. 2020 conversion of the summed RDP curves over Opacus's default orders;
/// for [`AccountantKind::Prv`] the PRV accountant's **upper estimate** with Opacus's
/// defaults (`eps_error = 0.01`, `delta_error = delta / 1000`). No events give 0.
///
/// The guarantee is for the adjacency of the events' [`Sampling`]
/// ([`Sampling::adjacency`]).
///
/// Errors: `sigma` not finite and positive, `q` outside `(0, 1]`, `steps = 0`, `delta`
/// outside `(0, 1)`, events of different `sampling` (named `sampling`), or an
/// accountant that cannot produce a finite value (e.g. a PRV grid too large for the
/// memory cap).
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
/// `q`, drawn as `sampling` says, is at most `target_epsilon` at `delta`.
///
/// Bisection on `sigma` (epsilon falls as `sigma` grows): the returned `sigma` has
/// `epsilon(sigma) <= target_epsilon` and `epsilon(sigma - 1e-4) > target_epsilon`.
/// For [`AccountantKind::Prv`] a probe whose PRV grid exceeds
/// [`prv::MAX_DOMAIN_SIZE`] counts as too little noise (its privacy loss spreads
/// further than the grid holds). Without replacement, `q` is `size / population`
/// (see [`GaussianEvent::without_replacement`]).
///
/// Errors: bad parameters (as [`epsilon`], and `target_epsilon` not finite and
/// positive), or a target that no `sigma` up to [`MAX_SIGMA`] reaches: the RDP
/// conversion over a finite grid of orders has a floor (about 0.1 at `delta = 1e-5`),
/// and the PRV upper estimate never falls below `eps_error`.
pub fn calibrate_sigma(
    kind: AccountantKind,
    target_epsilon: f64,
    sampling: Sampling,
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
    let event = |sigma| GaussianEvent {
        sigma,
        q,
        steps,
        sampling,
    };
    check_events(&[event(1.0)])?;
    check_delta(delta)?;
    let eps_at = |sigma: f64| -> Result<f64, PrivacyError> {
        let event = [event(sigma)];
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
    let mut narrow = false;
    if kind == AccountantKind::Prv {
        // PRV evaluations are costly and its estimate is tighter than RDP's bound:
        // start from the RDP answer (cheap) and narrow down from there.
        if let Ok(s) = calibrate_sigma(
            AccountantKind::Rdp,
            target_epsilon,
            sampling,
            q,
            steps,
            delta,
        ) {
            hi = s;
            narrow = true;
        }
    }
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
                     sigma = {MAX_SIGMA} gives epsilon {e} over {steps} steps at q = {q}, \
                     {sampling} sampling ({})",
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
    if narrow {
        let mut probe = 0.8 * hi;
        while probe - lo > 1e-4 {
            if eps_at(probe)? > target_epsilon {
                lo = probe;
                break;
            }
            hi = probe;
            probe *= 0.8;
        }
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

/// Checks every event's `sigma`, `q` and `steps`, and that all share one `sampling`.
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
    if let Some(first) = events.first()
        && let Some((i, e)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| e.sampling != first.sampling)
    {
        return Err(mixed_sampling(
            e.sampling,
            &format!("event {i}"),
            first.sampling,
            "event 0",
        ));
    }
    Ok(())
}

/// The error for composing `sampling` (of `what`) with `held` (of `other`).
pub(crate) fn mixed_sampling(
    sampling: Sampling,
    what: &str,
    held: Sampling,
    other: &str,
) -> PrivacyError {
    PrivacyError::parameter(
        "sampling",
        sampling,
        &format!(
            "{what} is {sampling} ({}) but {other} is {held} ({}): add/remove and \
             substitution guarantees do not compose into one statement; account them \
             separately",
            sampling.adjacency(),
            held.adjacency()
        ),
    )
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
