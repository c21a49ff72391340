//! The robust aggregation rules, one module each.

pub(crate) mod bulyan;
pub(crate) mod centered_clipping;
pub(crate) mod clipped_clustering;
pub(crate) mod dnc;
pub(crate) mod flame;
pub(crate) mod fltrust;
pub(crate) mod geometric_median;
pub(crate) mod krum;
pub(crate) mod mean;
pub(crate) mod median;
pub(crate) mod signguard;
pub(crate) mod trimmed_mean;
