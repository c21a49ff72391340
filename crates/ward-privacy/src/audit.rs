//! Empirical privacy audit: membership inference (in progress).
