//! The `ward` binary: parses arguments, dispatches to `ward-experiment` and prints.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use ward_experiment as wx;

use crate::args::{BenchCommand, Cli, Command, DataCommand, PrivacyCommand, ReproduceCommand};
use crate::commands::Terminal;

/// mimalloc instead of the system allocator: training steps allocate and free many
/// tensor buffers, and glibc's malloc returned large ones to the kernel each time (a
/// fifth of a small-CNN step went to `mmap`/`munmap`); measured with `ward bench cnn`.
/// The `system-alloc` build feature keeps glibc's malloc, for allocator A/B timings.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = dispatch(cli.command);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            // User mistakes (bad config, bad data, bad flags) exit 2; internal failures 1.
            let user = e.chain().any(|c| {
                c.downcast_ref::<wx::Error>()
                    .is_some_and(wx::Error::is_user)
            });
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    let mut t = Terminal::new(true);
    let obs = &mut t;
    match command {
        Command::Run(a) => commands::run::run(a)?,
        Command::Data(DataCommand::Describe { what, sets }) => {
            wx::data::describe(&what, &sets, obs)?;
        }
        Command::Data(DataCommand::Synth(a)) => wx::data::synth(a, obs)?,
        Command::Reproduce(ReproduceCommand::FlambyHeart(a)) => {
            wx::reproduce::flamby_heart(a, obs)?;
        }
        Command::Reproduce(ReproduceCommand::FlambyHeartDp(a)) => {
            wx::reproduce::dp::flamby_heart_dp(a, obs)?;
        }
        Command::Reproduce(ReproduceCommand::Uncertainty(a)) => {
            wx::reproduce::uncertainty::uncertainty(a, obs)?;
        }
        Command::Reproduce(ReproduceCommand::ScannerShift(a)) => {
            wx::reproduce::scanner_shift::scanner_shift(a, obs)?;
        }
        Command::Reproduce(ReproduceCommand::Fairness(a)) => {
            wx::reproduce::fairness::fairness(a, obs)?;
        }
        Command::Reproduce(ReproduceCommand::Loso(a)) => wx::reproduce::loso::loso(a, obs)?,
        Command::Bench(BenchCommand::Fl(a)) => wx::bench::fl(a, obs)?,
        Command::Bench(BenchCommand::Aggregate(a)) => {
            wx::bench::aggregate::bench_aggregate(a, obs)?
        }
        Command::Bench(BenchCommand::Cnn(a)) => wx::bench::cnn::bench_cnn(a, obs)?,
        Command::Bench(BenchCommand::Secagg(a)) => wx::bench::secagg::bench_secagg(a, obs)?,
        Command::Bench(BenchCommand::Dp(a)) => wx::bench::dp::bench_dp(a, obs)?,
        Command::RobustGrid(a) => wx::grid::robust_grid(a, obs)?,
        Command::Aggregate(a) => wx::aggregate::aggregate(a, obs)?,
        Command::Robustness(a) => wx::robustness::robustness(a, obs)?,
        Command::Privacy(PrivacyCommand::Epsilon(a)) => wx::calc::epsilon(a, obs)?,
        Command::Privacy(PrivacyCommand::Sigma(a)) => wx::calc::sigma(a, obs)?,
        Command::Privacy(PrivacyCommand::Audit(a)) => wx::audit::privacy_audit(a, obs)?,
        Command::Calibration(a) => wx::trust::calibration(a, obs)?,
        Command::Conformal(a) => wx::trust::conformal(a, obs)?,
        Command::Report(a) => wx::report::report(a, obs)?,
    }
    Ok(())
}
