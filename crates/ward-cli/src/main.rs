//! The `ward` binary.

mod args;
mod commands;
mod experiment;
mod privacy;
mod run_dir;
mod runner;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{BenchCommand, Cli, Command, DataCommand, PrivacyCommand, ReproduceCommand};
use crate::experiment::UserError;

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
    let result = match cli.command {
        Command::Run(a) => commands::run::run(a),
        Command::Data(DataCommand::Describe { what, sets }) => {
            commands::data::describe(&what, &sets)
        }
        Command::Data(DataCommand::Synth(a)) => commands::data::synth(a),
        Command::Reproduce(ReproduceCommand::FlambyHeart(a)) => {
            commands::reproduce::flamby_heart(a)
        }
        Command::Reproduce(ReproduceCommand::FlambyHeartDp(a)) => {
            commands::reproduce_dp::flamby_heart_dp(a)
        }
        Command::Reproduce(ReproduceCommand::ScannerShift(a)) => {
            commands::scanner_shift::scanner_shift(a)
        }
        Command::Bench(BenchCommand::Fl(a)) => commands::bench::fl(a),
        Command::RobustGrid(a) => commands::robust_grid::robust_grid(a),
        Command::Aggregate(a) => commands::aggregate::aggregate(a),
        Command::Robustness(a) => commands::robustness::robustness(a),
        Command::Bench(BenchCommand::Aggregate(a)) => commands::bench_aggregate::bench_aggregate(a),
        Command::Bench(BenchCommand::Cnn(a)) => commands::bench_cnn::bench_cnn(a),
        Command::Privacy(PrivacyCommand::Epsilon(a)) => commands::privacy::epsilon(a),
        Command::Privacy(PrivacyCommand::Sigma(a)) => commands::privacy::sigma(a),
        Command::Bench(BenchCommand::Secagg(a)) => commands::bench_secagg::bench_secagg(a),
        Command::Bench(BenchCommand::Dp(a)) => commands::bench_dp::bench_dp(a),
        Command::Privacy(PrivacyCommand::Audit(a)) => commands::privacy_audit::privacy_audit(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            // User mistakes (bad config, bad data, bad flags) exit 2; internal failures 1.
            if e.chain().any(|c| c.is::<UserError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
