//! Record-level DP-SGD: per-sample gradients, clipping, noise, Poisson sampling (in progress).
