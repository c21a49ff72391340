//! Ward's poisoning robustness: attacks (and, soon, robust aggregators).

pub mod attacks;
