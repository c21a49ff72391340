//! Ward's privacy: accountants for differential privacy, central DP with adaptive
//! clipping for federated averaging, and secure aggregation (SecAgg+).

pub mod accountant;
pub mod audit;
pub mod central;
mod error;
pub mod secagg;

pub use error::PrivacyError;
