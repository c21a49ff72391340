//! Secure aggregation, SecAgg+ (in progress).
