//! The robust aggregation rules, one module each.

pub(crate) mod bulyan;
pub(crate) mod centered_clipping;
pub(crate) mod fltrust;
pub(crate) mod geometric_median;
pub(crate) mod krum;
pub(crate) mod mean;
pub(crate) mod median;
pub(crate) mod trimmed_mean;
