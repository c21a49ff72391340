//! Ward's poisoning robustness: robust aggregators, pre-aggregators, and attacks.
//!
//! Every rule implements [`ward_fl::Aggregator`] on [`ward_core::Params`] values, so
//! the round engine uses it unchanged in simulation and deployment:
//!
//! | rule | name | assumption ([`Aggregator::min_updates`]) |
//! |---|---|---|
//! | [`Mean`] | `mean` | none (not robust) |
//! | [`Median`] | `median` | `n >= 2f+1` when built with `f`, else `n >= 1` |
//! | [`TrimmedMean`] | `trimmed-mean` | `n >= 2f+1` |
//! | [`Krum`], [`MultiKrum`] | `krum`, `multi-krum` | `n >= 2f+3` (and `m <= n-f`) |
//! | [`Bulyan`] | `bulyan` | `n >= 4f+3` |
//! | [`GeometricMedian`] | `geometric-median` | `n >= 1` (breakdown point 1/2) |
//! | [`CenteredClipping`] | `centered-clipping` | `n >= 1` (centre from the previous round; moves at most `tau` a step) |
//! | [`ClippedMean`] | `clipped-mean` | `n >= 1` (centred on the global model; moves at most `tau` a step) |
//! | [`Fltrust`] | `fltrust` | `n >= 1` and the server's update in the round |
//! | [`Dnc`] | `dnc` | `n >= 2f+1` (honest majority; keeps `n - floor(c f)` a pass) |
//! | [`SignGuard`] | `signguard` | `n >= 1` (robust with an honest majority) |
//! | [`ClippedClustering`] | `clipped-clustering` | `n >= 2` (two clusters; honest majority) |
//! | [`Flame`] | `flame` | `n >= 2` (cluster of `n/2 + 1`; honest majority) |
//!
//! Each rule has a `check(n)` that returns the assumption's violation as a
//! [`RobustError`] (e.g. `bulyan with f = 2 needs n >= 4f+3 = 11 updates, got 8`), and
//! calls it before aggregating; `RobustError` converts into [`ward_fl::FlError`].
//! The updates are complete local models; rules defined on deltas (centered clipping,
//! FLTrust, norm clipping) work on `x_i - ctx.global` and return `global + delta`.
//! The robust rules are unweighted: they ignore `num_examples` (only `fedavg`, from
//! `ward-fl`, weights by examples), so a site's share of a robust aggregate is `1/n`
//! whatever its size.
//!
//! Pre-aggregators ([`PreAggregator`]: [`NormClip`], [`Nnm`], [`Bucketing`]) compose
//! with any rule through [`Composed`]; [`build_rule`] builds a rule and its
//! pre-aggregators from the typed `[robust]` spec (`ward_core::config::RobustSpec`,
//! read from an experiment file or from a name and options).
//!
//! Performance: median, trimmed mean and Bulyan's coordinate phase stream over
//! coordinates in chunks (sorting networks for small `n`, selection otherwise) in
//! parallel with rayon; Krum, Multi-Krum, Bulyan and NNM share one pairwise distance
//! matrix computed in parallel with `f64` accumulation.
//!
//! DnC, SignGuard and FLAME draw at random (coordinate subsets, noise) from ChaCha8
//! seeded with the configured seed and the round number, so they keep no state and a
//! resumed run is exact; their clustering and eigen kernels (mean shift, average
//! linkage, HDBSCAN's majority cluster, Jacobi) are small exact implementations checked
//! against scikit-learn and numpy on small inputs.
//!
//! [`attacks`] holds the poisoning attacks (data and model poisoning).
//!
//! ```
//! use ward_core::{Metrics, Params, Update};
//! use ward_fl::{Aggregator, RoundContext};
//! use ward_robust::{Krum, Median};
//!
//! let global = Params::from_flat(vec![0.0, 0.0]);
//! let u = |site, v: [f32; 2]| Update { site, params: Params::from_flat(v.to_vec()),
//!     num_examples: 1, metrics: Metrics::new(), control_delta: None };
//! // Four honest updates near (1, 1) and one far away.
//! let updates = [u(0, [1.0, 1.0]), u(1, [1.2, 0.9]), u(2, [0.9, 1.1]),
//!                u(3, [1.1, 1.0]), u(4, [100.0, -100.0])];
//! let ctx = RoundContext::new(1, &global);
//! let med = Median::new().aggregate(&updates, &ctx)?;
//! assert_eq!(med.params.values(), &[1.1, 1.0]);
//! let krum = Krum::new(1).aggregate(&updates, &ctx)?;
//! assert_ne!(krum.selected, Some(vec![4]));
//! // Krum with f = 2 needs 2f+3 = 7 updates.
//! assert!(Krum::new(2).aggregate(&updates, &ctx).is_err());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod attacks;

mod builder;
mod cluster;
mod common;
mod coordinate;
mod distance;
mod error;
mod pre;
mod rules;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod reference;

pub use builder::build_rule;
pub use error::RobustError;
pub use pre::{Bucketing, Composed, Nnm, NormClip, PreAggregator, PreOutput};
pub use rules::bulyan::Bulyan;
pub use rules::centered_clipping::{CenteredClipping, ClippedMean};
pub use rules::clipped_clustering::ClippedClustering;
pub use rules::dnc::Dnc;
pub use rules::flame::Flame;
pub use rules::fltrust::Fltrust;
pub use rules::geometric_median::GeometricMedian;
pub use rules::krum::{Krum, MultiKrum};
pub use rules::mean::Mean;
pub use rules::median::Median;
pub use rules::signguard::SignGuard;
pub use rules::trimmed_mean::TrimmedMean;
#[doc(no_inline)]
pub use ward_fl::Aggregator;
