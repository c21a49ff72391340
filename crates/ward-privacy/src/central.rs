//! Central (site-level) DP with fixed and adaptive clipping (in progress).
