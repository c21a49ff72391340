//! Evidence a clinician can act on: is the model's confidence honest (calibration), how
//! can it be made honest without pooling data (federated recalibration), and which
//! labels must a set hold to contain the truth with a stated probability (conformal
//! prediction, split and federated).
//!
//! - [`Probs`] and [`Logits`]: checked `(n, k)` inputs, row-major.
//! - [`calibration`]: ECE (equal-width and equal-mass bins), MCE, classwise ECE, Brier
//!   score, NLL, accuracy and the reliability diagram ([`calibration::report`]).
//! - [`recalibration`]: federated temperature scaling (sites send four sums per round,
//!   never a logit), Platt scaling (sites send gradient and Hessian sums) and histogram
//!   binning (federated counts).
//! - [`conformal`]: LAC, APS and RAPS scores, the conformal quantile, prediction sets
//!   and class-conditional (Mondrian) calibration, with MAPIE 0.8.6's conventions.
//! - [`fedcp_qq`]: one-shot federated conformal prediction by a quantile of quantiles
//!   (Humbert et al. 2023), with its coverage under exchangeable sites.
//! - [`laplace`]: the last-layer Laplace approximation, its Hessian summed over sites,
//!   the prior precision by marginal likelihood and the probit / Monte Carlo predictive.
//! - [`interval`]: Wilson intervals for proportions, Student-t intervals for means over
//!   seeds.
//! - [`selective`]: risk–coverage (deferral) curves, AURC and E-AURC, the operating
//!   point for a target error, and deferral by conformal set size.
//! - [`uncertainty`]: predictive entropy, and its split into expected entropy and mutual
//!   information over MC-dropout passes or ensemble members.
//! - [`fairness`]: accuracy across sites (worst site, spread) and group rates and gaps
//!   on a binary task (TPR, FPR, equalized odds, demographic parity; Fairlearn's
//!   definitions), with Student-t intervals over seeds.
//!
//! ```
//! use ward_trust::conformal::{Inclusion, QuantileRule, Score, SplitConformal};
//! use ward_trust::{Probs, calibration};
//!
//! // Two rows, two classes: confident and right, unsure and wrong.
//! let probs = Probs::new(vec![0.9, 0.1, 0.6, 0.4], 2)?;
//! let labels = [0, 1];
//! let r = calibration::report(&probs, &labels, 15)?;
//! assert_eq!(r.accuracy, 0.5);
//! // Brier: (0.1^2 + 0.1^2 + 0.6^2 + 0.6^2) / 2 = 0.37.
//! assert!((r.brier - 0.37).abs() < 1e-12);
//!
//! // LAC at alpha = 0.5 on the two rows: scores 0.1 and 0.6; ceil(3 * 0.5) = 2nd smallest.
//! let cp = SplitConformal::calibrate(&probs, &labels, Score::Lac, 0.5, QuantileRule::Exact)?;
//! assert_eq!(cp.qhat, 0.6);
//! let test = Probs::new(vec![0.7, 0.3], 2)?;
//! assert_eq!(cp.predict(&test, Inclusion::IncludeLast), vec![vec![0]]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod calibration;
pub mod conformal;
mod error;
pub mod fairness;
pub mod fedcp_qq;
pub mod interval;
pub mod laplace;
mod probs;
pub mod recalibration;
pub mod selective;
pub mod uncertainty;

pub use error::TrustError;
pub use probs::{Logits, Probs, ROW_SUM_TOLERANCE};
