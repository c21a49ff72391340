//! One module per subcommand.

pub(crate) mod aggregate;
pub(crate) mod bench;
pub(crate) mod bench_aggregate;
pub(crate) mod bench_cnn;
pub(crate) mod bench_dp;
pub(crate) mod bench_readers;
pub(crate) mod bench_secagg;
pub(crate) mod data;
pub(crate) mod privacy;
pub(crate) mod privacy_audit;
pub(crate) mod reproduce;
pub(crate) mod reproduce_dp;
pub(crate) mod robust_grid;
pub(crate) mod robustness;
pub(crate) mod run;
pub(crate) mod scanner_shift;

use anyhow::Result;
use ward_fl::EngineOptions;

use crate::args::EngineArgs;
use crate::experiment::UserError;

/// Parses `--device` and `--engine`.
pub(crate) fn engine_options(a: &EngineArgs) -> Result<EngineOptions> {
    Ok(EngineOptions {
        device: a
            .device
            .parse()
            .map_err(|e: ward_models::ModelError| UserError(format!("--device: {e}")))?,
        engine: a
            .engine
            .parse()
            .map_err(|e: ward_models::ModelError| UserError(format!("--engine: {e}")))?,
    })
}

/// Prints a line to stdout (only the binary prints).
#[allow(clippy::print_stdout)]
pub(crate) fn out(line: impl std::fmt::Display) {
    println!("{line}");
}
