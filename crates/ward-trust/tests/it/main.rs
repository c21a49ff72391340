//! Integration tests of `ward-trust` (one test binary): MAPIE's numbers on a committed
//! fixture, Fairlearn's group rates on another, coverage over random splits of real and synthetic sites, and federated
//! temperature scaling against pooled fits (a grid search here, scipy when present).

mod coverage;
mod fairlearn;
mod mapie;
mod sites;
mod temperature;
