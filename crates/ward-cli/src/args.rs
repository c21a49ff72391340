//! Command-line arguments (clap types only; the commands live in `commands/`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Ward: trustworthy federated learning on medical data.
///
/// Train one model across hospitals while every record stays on site, and measure
/// whether the result deserves trust.
#[derive(Debug, Parser)]
#[command(name = "ward", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "WARD_LOG")]
    pub(crate) log: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run an experiment (the default: FedAvg on the four-hospital heart-disease cohort).
    ///
    /// Shows a progress bar over rounds, prints each site's test accuracy, and writes a
    /// run directory: config.toml (resolved), metrics.jsonl, summary.json,
    /// model.safetensors and checkpoint.bin.
    Run(RunArgs),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Reproduce a published benchmark table.
    #[command(subcommand)]
    Reproduce(ReproduceCommand),
    /// Measure speed (release builds only give meaningful numbers).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Where gradients are computed.
#[derive(Debug, Clone, Args)]
pub(crate) struct EngineArgs {
    /// Device: cpu (Burn's burn-flex backend, or Ward's native kernels), cuda:N, wgpu.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Gradient engine: auto (native kernels for dense models on the CPU, Burn
    /// elsewhere), native, or burn (Burn autodiff on --device).
    #[arg(long, default_value = "auto")]
    pub(crate) engine: String,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Experiment file (TOML). Without it: the built-in default experiment.
    pub(crate) experiment: Option<PathBuf>,
    /// Override a key of the experiment, e.g. `--set federation.rounds=5`
    /// (repeatable; the value is TOML, or a bare string).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) sets: Vec<String>,
    /// Run directory (default: `runs/<experiment>-<timestamp>`).
    #[arg(long, conflicts_with = "resume")]
    pub(crate) out: Option<PathBuf>,
    /// Resume an interrupted run from its directory (its config.toml and checkpoint).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["experiment", "sets"])]
    pub(crate) resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// A table per site: rows, train/test, label balance, feature means.
    Describe {
        /// A built-in dataset (fed-heart-disease, breast-cancer) or an experiment file.
        what: String,
        /// Override a key of the experiment file (as for `ward run`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReproduceCommand {
    /// FLamby's Fed-Heart-Disease table (pooled, local, FedAvg, FedProx, SCAFFOLD, Cyclic,
    /// FedAdam, FedYogi, FedAdagrad) over 5 seeds, then Ward's own rows with settings
    /// chosen by cross-validation inside the training splits.
    FlambyHeart(ReproduceArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReproduceArgs {
    /// Output directory for table.csv and table.json (default: `runs/reproduce-flamby-heart-<timestamp>`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 5)]
    pub(crate) seeds: u64,
    /// Only FLamby's rows (skip the cross-validated search for Ward's own rows).
    #[arg(long)]
    pub(crate) no_search: bool,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Federated training speed: the default `ward run` process, its rounds alone and the
    /// time per local step (native kernels and Burn), beside the Flower and numpy anchor
    /// when it and Python are present.
    Fl(BenchFlArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchFlArgs {
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub(crate) repeats: usize,
    /// The anchor folder (default: ../shared/anchors/flower_heart from the current or
    /// the repository directory).
    #[arg(long)]
    pub(crate) anchor: Option<PathBuf>,
    /// Python virtual environment for the anchor (its setup.sh creates it).
    #[arg(long, default_value = "/tmp/flower-venv")]
    pub(crate) venv: PathBuf,
    /// Do not run the anchor.
    #[arg(long)]
    pub(crate) no_anchor: bool,
    /// Do not run the anchor's setup.sh when its venv exists already.
    #[arg(long)]
    pub(crate) no_setup: bool,
    /// Skip Flower (run only the numpy loop of the anchor).
    #[arg(long)]
    pub(crate) no_flower: bool,
}
