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
    /// Attacks x defences x compromised sites on an experiment: clean accuracy, accuracy
    /// drop against the same defence without attack, backdoor success, and the sites each
    /// selecting defence excluded. Writes grid.csv, grid.json and heatmap SVGs; rerunning
    /// with the same --out skips finished cells.
    RobustGrid(RobustGridArgs),
    /// Apply an aggregation rule to update vectors of your own and print the result as
    /// one JSON line: {"rule": ..., "result": [...], "selected": [...]}.
    ///
    /// The input is an (n, d) float32 or float64 .npy array in C order, one update per
    /// row (float64 is cast to float32). The global model is all zeros, so the updates
    /// are both models and deltas. `selected` (0-based row indices) appears only for
    /// rules that select (krum, multi-krum, bulyan).
    Aggregate(AggregateArgs),
    /// Acquisition-shift robustness of a trained image model: 12 corruptions (noise,
    /// blur, motion, bias field, gamma, contrast, brightness, JPEG, pixelation, ghosting,
    /// k-space spikes) x 5 severities on every site's test images. Writes
    /// robustness.csv, robustness.json, robustness.svg and `examples/<corruption>_s<k>.png`.
    Robustness(RobustnessArgs),
    /// Differential-privacy calculators for data-protection officers, and an empirical
    /// audit of a trained run.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Epsilon spent by `--steps` steps of the Poisson-subsampled Gaussian mechanism
    /// (DP-SGD) with noise multiplier `--sigma` and sample rate `--q`, at `--delta`.
    ///
    /// Prints one JSON object: {"epsilon", "sigma", "q", "steps", "delta",
    /// "accountant", "bound", ...}. `bound` says which bound `epsilon` is: for rdp (the
    /// default) the Balle et al. 2020 conversion of Rényi DP over Opacus's orders
    /// 1.1..10.9, 12..63 (with "rdp_order", the order attaining it, and
    /// "epsilon_mironov", Mironov 2017's looser conversion); for prv the upper estimate
    /// of the PRV accountant (Gopi et al. 2021) with eps_error 0.01 and delta_error
    /// delta/1000 (with "prv_estimate" and "prv_lower").
    Epsilon(PrivacyEpsilonArgs),
    /// The smallest noise multiplier (to 1e-4) whose epsilon after `--steps` steps at
    /// sample rate `--q` is at most `--epsilon` at `--delta`.
    ///
    /// Prints one JSON object: {"epsilon" (reached at that sigma, at most the target),
    /// "target_epsilon", "sigma", "q", "steps", "delta", "accountant", "bound"}.
    Sigma(PrivacySigmaArgs),
    /// Membership-inference audit of a trained run: the loss-threshold attack (Yeom et
    /// al. 2018) and LiRA (Carlini et al. 2022) with shadow runs of the same
    /// experiment, on each site's training rows (members) against its test rows.
    ///
    /// Prints AUC, TPR at low FPR and the epsilon lower bound the attack proves
    /// (Clopper-Pearson intervals), overall and per site, beside the accountant's
    /// epsilon where the run had a privacy mechanism. With shadows, the `-rand` rows
    /// attack one more run of the experiment whose training rows were drawn from the
    /// pool by a fair coin each: membership independent of the rows, so their bounds
    /// cannot come from chance differences between the run's fixed train and test rows.
    /// Writes audit.json, audit.csv and audit_examples.csv.
    Audit(PrivacyAuditArgs),
}

/// Sampling and accounting shared by both privacy calculators.
#[derive(Debug, Args)]
pub(crate) struct PrivacyMechanismArgs {
    /// Poisson sampling rate per step, in (0, 1] (batch size / records).
    #[arg(long)]
    pub(crate) q: f64,
    /// Number of steps (each a Poisson-sampled noisy gradient step), at least 1.
    #[arg(long)]
    pub(crate) steps: u64,
    /// Target delta, in (0, 1) (usually below 1 / records).
    #[arg(long)]
    pub(crate) delta: f64,
    /// Accountant: rdp (Rényi DP, Balle et al. 2020 conversion) or prv (PRV
    /// accountant, upper estimate).
    #[arg(long, default_value = "rdp", value_parser = ["rdp", "prv"])]
    pub(crate) accountant: String,
}

#[derive(Debug, Args)]
pub(crate) struct PrivacyEpsilonArgs {
    /// Noise multiplier: the Gaussian noise's std divided by the clipping norm (> 0).
    #[arg(long)]
    pub(crate) sigma: f64,
    #[command(flatten)]
    pub(crate) mechanism: PrivacyMechanismArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PrivacySigmaArgs {
    /// Target epsilon (> 0).
    #[arg(long)]
    pub(crate) epsilon: f64,
    #[command(flatten)]
    pub(crate) mechanism: PrivacyMechanismArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RobustnessArgs {
    /// A run directory written by `ward run` (config.toml, model.safetensors).
    pub(crate) run: PathBuf,
    /// Output directory (default: `<run>/robustness`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Seed of the corruptions' random draws.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Test images shown per example sheet.
    #[arg(long, default_value_t = 6)]
    pub(crate) examples: usize,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AggregateArgs {
    /// The updates: an (n, d) float32/float64 .npy array, C order, one update per row.
    pub(crate) updates: PathBuf,
    /// The rule: mean, fedavg, median, trimmed-mean, krum, multi-krum, geometric-median,
    /// bulyan, centered-clipping, fltrust, dnc, signguard, clipped-clustering or flame.
    #[arg(long)]
    pub(crate) rule: String,
    /// Byzantine updates to tolerate (trimmed-mean cuts f per side; krum, multi-krum,
    /// bulyan, dnc and nnm need it; median checks n >= 2f+1 with it).
    #[arg(long)]
    pub(crate) f: Option<usize>,
    /// multi-krum: updates averaged (default n - f).
    #[arg(long)]
    pub(crate) m: Option<usize>,
    /// centered-clipping: the clipping radius (required).
    #[arg(long)]
    pub(crate) tau: Option<f64>,
    /// centered-clipping: iterations (default 1); geometric-median: the iteration limit
    /// (default 100); dnc: its niters (default 1).
    #[arg(long)]
    pub(crate) iterations: Option<usize>,
    /// geometric-median: the smoothing eps (default 1e-8).
    #[arg(long)]
    pub(crate) eps: Option<f64>,
    /// Seed of bucketing's shuffle and of dnc's, signguard's and flame's random draws
    /// (the round is 1).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// dnc: coordinates subsampled per iteration (default 10000).
    #[arg(long)]
    pub(crate) subsample_dim: Option<usize>,
    /// dnc: the filtering fraction c (floor(c f) removed per iteration; default 1.0).
    #[arg(long)]
    pub(crate) filter_fraction: Option<f64>,
    /// flame: the noise level lambda (noise std lambda x the median distance; default
    /// 0.001, 0 for none).
    #[arg(long)]
    pub(crate) lambda: Option<f64>,
    /// fltrust: the server's update, a .npy vector of d values (shape (d,) or (1, d)).
    #[arg(long, value_name = "FILE.npy")]
    pub(crate) server_update: Option<PathBuf>,
    /// A pre-aggregator applied before the rule, in order: nnm (with --f),
    /// bucketing:S or clip:C. Repeat for several.
    #[arg(long = "pre", value_name = "nnm|bucketing:S|clip:C")]
    pub(crate) pre: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RobustGridArgs {
    /// Experiment file (default: the built-in default experiment). A backdoor row takes
    /// its trigger, target and rate from the file's `[attack]` (kind = "backdoor").
    pub(crate) experiment: Option<PathBuf>,
    /// Override a key of the experiment (as for `ward run`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) sets: Vec<String>,
    /// Output directory (grid.csv, grid.json, grid.jsonl, `heatmap_<dataset>_<metric>.svg`).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Attacks, comma-separated (names of `attack.kind`).
    #[arg(
        long,
        default_value = "sign-flip,scale,gaussian,alie,ipm,min-max,min-sum,fang,mimic,swap,backdoor"
    )]
    pub(crate) attacks: String,
    /// Defences, comma-separated (names of `robust.aggregator`).
    #[arg(
        long,
        default_value = "fedavg,median,trimmed-mean,krum,multi-krum,bulyan,geometric-median,centered-clipping,fltrust,dnc,signguard,clipped-clustering,flame"
    )]
    pub(crate) defences: String,
    /// Numbers of compromised sites, comma-separated (0 is the no-attack column).
    #[arg(long, default_value = "0,1", conflicts_with = "fractions")]
    pub(crate) f: String,
    /// Fractions of compromised sites instead of numbers, e.g. 0,0.1,0.2,0.3.
    #[arg(long)]
    pub(crate) fractions: Option<String>,
    /// Seeds, comma-separated.
    #[arg(long, default_value = "0")]
    pub(crate) seeds: String,
    /// The f every defence is configured to tolerate (default: the largest attack f).
    #[arg(long)]
    pub(crate) defence_f: Option<usize>,
    /// Centered clipping's radius.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) tau: f64,
    /// FLTrust's root sample: training rows moved to the server (`robust.root-samples`).
    #[arg(long, default_value_t = 50)]
    pub(crate) root_samples: usize,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
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
    /// Generate the synthetic multi-site scanner-shift imaging task: one MedMNIST-layout
    /// `<site>.npz` per site (uint8 images (N,H,W), labels (N,1), train_/val_/test_ keys),
    /// `contact_<site>.png` and synth.json (the site profiles and the seed).
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Sites, each with its own acquisition profile.
    #[arg(long, default_value_t = 4)]
    pub(crate) sites: usize,
    /// Images per site (before the site's size factor).
    #[arg(long, default_value_t = 600)]
    pub(crate) per_site: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 28)]
    pub(crate) size: usize,
    /// Lesion classes (2..=8).
    #[arg(long, default_value_t = 4)]
    pub(crate) classes: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReproduceCommand {
    /// FLamby's Fed-Heart-Disease table (pooled, local, FedAvg, FedProx, SCAFFOLD, Cyclic,
    /// FedAdam, FedYogi, FedAdagrad) over 5 seeds, then Ward's own rows with settings
    /// chosen by cross-validation inside the training splits.
    FlambyHeart(ReproduceArgs),
    /// FLamby's privacy-utility grid on Fed-Heart-Disease: record-level DP-SGD at every
    /// site within FedAvg (FLamby's settings: SGD lr 0.001, batch 4, 100 local steps, 15
    /// rounds, clip 1.1) at each target (epsilon, delta), plus the same run without DP,
    /// over seeds. Ward calibrates each site's noise for the 1500 steps it really takes
    /// and reports the epsilon spent (RDP and PRV, max over sites); FLamby's published
    /// accuracies stand beside each row, with the epsilon FLamby's own calibration
    /// (Opacus, for 15 epochs) really spent over its 1500 steps. Writes table.csv and
    /// table.json (the columns of flamby-heart).
    FlambyHeartDp(ReproduceDpArgs),
    /// Synthetic multi-site scanner shift: local-only (one row per site), FedAvg,
    /// FedProx, FedBN and pooled, over seeds; writes table.csv, table.json (the columns
    /// of flamby-heart) and cross_site.csv (trained on site i, tested on site j).
    ScannerShift(ScannerShiftArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ScannerShiftArgs {
    /// Output directory (default: `runs/reproduce-scanner-shift-<timestamp>`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 3)]
    pub(crate) seeds: u64,
    /// Sites (each with its own acquisition profile).
    #[arg(long, default_value_t = 4)]
    pub(crate) sites: usize,
    /// Images per site (train, val and test).
    #[arg(long, default_value_t = 600)]
    pub(crate) per_site: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 28)]
    pub(crate) size: usize,
    /// Lesion classes.
    #[arg(long, default_value_t = 4)]
    pub(crate) classes: usize,
    /// Seed of the synthetic data (fixed across run seeds).
    #[arg(long, default_value_t = 0)]
    pub(crate) data_seed: u64,
    /// Conv block widths of the small CNN.
    #[arg(long, value_delimiter = ',', default_value = "16,32")]
    pub(crate) channels: Vec<usize>,
    /// Width of the CNN's dense layer.
    #[arg(long, default_value_t = 64)]
    pub(crate) hidden: usize,
    /// Rounds (federated) or epochs (local, pooled).
    #[arg(long, default_value_t = 20)]
    pub(crate) rounds: usize,
    /// Local Adam learning rate.
    #[arg(long, default_value_t = 0.002)]
    pub(crate) lr: f64,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
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

#[derive(Debug, Args)]
pub(crate) struct ReproduceDpArgs {
    /// Output directory for table.csv and table.json (default:
    /// `runs/reproduce-flamby-heart-dp-<timestamp>`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 5)]
    pub(crate) seeds: u64,
    /// Target epsilons, comma-separated (FLamby's grid).
    #[arg(long, value_delimiter = ',', default_value = "0.1,1,5,10,50")]
    pub(crate) epsilons: Vec<f64>,
    /// Deltas, comma-separated (FLamby's grid).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.01,0.001,0.0001")]
    pub(crate) deltas: Vec<f64>,
    /// Accountant that calibrates Ward's noise: rdp (default; Balle et al. 2020
    /// conversion) or prv (tighter, slower). Both are reported for every row.
    #[arg(long, default_value = "rdp", value_parser = ["rdp", "prv"])]
    pub(crate) accountant: String,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Federated training speed: the default `ward run` process, its rounds alone and the
    /// time per local step (native kernels and Burn), beside the Flower and numpy anchor
    /// when it and Python are present.
    Fl(BenchFlArgs),
    /// Time per aggregation of each robust rule at n = 10, 50, 100 updates and d = 1e5,
    /// 1e6, 1e7 parameters (as ../shared/anchors/aggregation), beside that anchor (numpy
    /// and ByzFL) run in the same invocation when its venv exists.
    Aggregate(BenchAggregateArgs),
    /// CNN training-step time: the small CNN and ResNet-18 of
    /// shared/anchors/pytorch_cnn at batch 32 on 1x28x28 and 1x64x64, beside PyTorch run
    /// in the same invocation when the anchor's venv exists. Slow: ResNet-18 steps take
    /// seconds on 2 cores.
    Cnn(BenchCnnArgs),
    /// SecAgg+ round time and bytes per site at n = 10, 50, 100 sites and d = 1e5, 1e6,
    /// with 0 % and 20 % of the sites dropping after sharing keys, on the complete graph
    /// and on a sparse SecAgg+ graph (Flower's example: 2 neighbours, threshold 2),
    /// beside Flower's SecAgg+ (../shared/anchors/secagg) run in the same invocation when
    /// its venv exists.
    Secagg(BenchSecaggArgs),
    /// DP-SGD step time against the non-private step (ratio) for an MLP on the native
    /// engine and the small CNN with GroupNorm on Burn, in one invocation (use
    /// --release).
    Dp(BenchDpArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchSecaggArgs {
    /// Numbers of sites, comma-separated.
    #[arg(long, default_value = "10,50,100")]
    pub(crate) n: String,
    /// Vector lengths, comma-separated (1e5 notation accepted).
    #[arg(long, default_value = "1e5,1e6")]
    pub(crate) d: String,
    /// Dropout fractions, comma-separated: round(fraction x n) sites leave after sharing
    /// keys (chosen as the anchor does, so every neighbourhood keeps the threshold).
    #[arg(long, default_value = "0,0.2")]
    pub(crate) drop: String,
    /// Graphs, comma-separated: complete (the anchor's `full`: threshold round(n/2)),
    /// sparse (the anchor's `example`: --neighbours and --threshold).
    #[arg(long, default_value = "complete,sparse")]
    pub(crate) graphs: String,
    /// Neighbours of each site in the sparse graph (Flower's num_shares minus the site
    /// itself).
    #[arg(long, default_value_t = 2)]
    pub(crate) neighbours: u32,
    /// Shamir threshold in the sparse graph.
    #[arg(long, default_value_t = 2)]
    pub(crate) threshold: u32,
    /// Clipping range of the quantiser (Flower's default 8).
    #[arg(long, default_value_t = 8.0)]
    pub(crate) clip: f32,
    /// Bits per value (Flower's default 2^22 levels).
    #[arg(long, default_value_t = 22)]
    pub(crate) bits: u32,
    /// Mask generator: chacha8, chacha12 or chacha20.
    #[arg(long, default_value = "chacha12")]
    pub(crate) prg: String,
    /// Threads (0: all cores; 1: everything on one thread, like the anchor).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Rounds per case (the median is reported).
    #[arg(long, default_value_t = 1)]
    pub(crate) repeats: usize,
    /// Write every measurement as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// The anchor folder (default: shared/anchors/secagg found from the current or the
    /// executable's directory).
    #[arg(long)]
    pub(crate) anchor: Option<PathBuf>,
    /// Python virtual environment for the anchor (its setup.sh creates it; this command
    /// never runs setup.sh).
    #[arg(long, default_value = "/tmp/flower-venv")]
    pub(crate) venv: PathBuf,
    /// Seconds allowed to one anchor round (as the anchor's own cap); larger cases of the
    /// same graph are then skipped.
    #[arg(long, default_value_t = 180.0)]
    pub(crate) anchor_cap: f64,
    /// Do not run the anchor.
    #[arg(long)]
    pub(crate) no_anchor: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchDpArgs {
    /// Timed steps per CNN case (MLP cases take 10 times as many; median reported).
    #[arg(long, default_value_t = 10)]
    pub(crate) steps: usize,
    /// Untimed warm-up steps per case.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup: usize,
    /// CNN batch size.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch: usize,
    /// Models, comma-separated (mlp, cnn); empty: both.
    #[arg(long, default_value = "")]
    pub(crate) only: String,
}

#[derive(Debug, Args)]
pub(crate) struct BenchCnnArgs {
    /// Timed steps per small-CNN case (median reported).
    #[arg(long, default_value_t = 20)]
    pub(crate) steps: usize,
    /// Timed steps per ResNet-18 case.
    #[arg(long, default_value_t = 5)]
    pub(crate) resnet_steps: usize,
    /// Untimed warm-up steps per case.
    #[arg(long, default_value_t = 3)]
    pub(crate) warmup: usize,
    /// Cases, comma-separated (cnn, resnet18, readers); empty: all.
    #[arg(long, default_value = "")]
    pub(crate) only: String,
    /// Images (or for NIfTI, 32-slice volumes / 32) per reader in the readers' case.
    #[arg(long, default_value_t = 256)]
    pub(crate) reader_images: usize,
    /// Device: cpu, cuda:N or wgpu (build features).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// The anchor folder (default: shared/anchors/pytorch_cnn found upwards).
    #[arg(long)]
    pub(crate) anchor: Option<PathBuf>,
    /// The anchor's Python venv (its setup.sh makes it; never run by this command).
    #[arg(long, default_value = "/tmp/torch-venv")]
    pub(crate) venv: PathBuf,
    /// Do not run the anchor.
    #[arg(long)]
    pub(crate) no_anchor: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchAggregateArgs {
    /// Numbers of updates, comma-separated.
    #[arg(long, default_value = "10,50,100")]
    pub(crate) n: String,
    /// Numbers of parameters, comma-separated (1e5 notation accepted). n = 100 with
    /// d = 1e7 is skipped, as in the anchor (4 GB of input).
    #[arg(long, default_value = "1e5,1e6,1e7")]
    pub(crate) d: String,
    /// Rules, comma-separated (anchor names: mean, median, trimmed_mean, krum,
    /// multi_krum, geomed, centered_clipping, bulyan, nnm_mean).
    #[arg(
        long,
        default_value = "mean,median,trimmed_mean,krum,multi_krum,geomed,centered_clipping,bulyan,nnm_mean"
    )]
    pub(crate) rules: String,
    /// Calls per case (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub(crate) repeats: usize,
    /// The anchor folder (default: shared/anchors/aggregation found from the current or
    /// the executable's directory).
    #[arg(long)]
    pub(crate) anchor: Option<PathBuf>,
    /// Python virtual environment for the anchor (its setup.sh creates it; this command
    /// never runs setup.sh). A venv with numpy alone gives the numpy column.
    #[arg(long, default_value = "/tmp/byzfl-venv")]
    pub(crate) venv: PathBuf,
    /// Do not run the anchor.
    #[arg(long)]
    pub(crate) no_anchor: bool,
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

#[derive(Debug, Args)]
pub(crate) struct PrivacyAuditArgs {
    /// A run directory written by `ward run` (config.toml, model.safetensors).
    pub(crate) run: PathBuf,
    /// Output directory (default: `<run>/audit`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Seed of the shadow models' data halves and run seeds.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Shadow runs for LiRA (even, at least 4; 0 runs only the loss attack). Each is a
    /// full run of the experiment.
    #[arg(long, default_value_t = 8)]
    pub(crate) shadows: usize,
    /// False-positive rates at which to report the TPR, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.01")]
    pub(crate) fpr: Vec<f64>,
    /// Delta of the epsilon lower bound (default: the run accountant's delta, else
    /// 1e-5).
    #[arg(long)]
    pub(crate) delta: Option<f64>,
    /// Confidence of the Clopper-Pearson intervals behind the epsilon bound.
    #[arg(long, default_value_t = 0.95)]
    pub(crate) confidence: f64,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}
