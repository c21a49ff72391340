//! Ward's privacy: accountants for differential privacy, central DP with adaptive
//! clipping for federated averaging, and secure aggregation (SecAgg+).

pub mod accountant;
pub mod audit;
pub mod central;
mod error;
/// Secure aggregation (SecAgg+): the `ward-secagg` crate, which sits below the round
/// engine (`ward-fl` drives its protocol steps) so that this crate can build on `ward-fl`.
pub use ward_secagg as secagg;

pub use error::PrivacyError;
