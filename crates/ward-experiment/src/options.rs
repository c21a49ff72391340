//! Options of the commands that the `ward` binary exposes; with the `clap` feature they
//! derive `clap::Args`, so the binary parses them and this crate runs them.

use std::path::PathBuf;

/// Sampling and accounting shared by both privacy calculators.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PrivacyMechanismArgs {
    /// How each step's batch is drawn: poisson (each record joins independently with
    /// rate --q; guarantee for adding or removing one record) or fixed (exactly --batch
    /// of --n records without replacement; guarantee for substituting one record).
    #[cfg_attr(feature = "clap", arg(long, default_value = "poisson", value_parser = ["poisson", "fixed"]))]
    pub sampling: String,
    /// Poisson sampling rate per step, in (0, 1] (batch size / records); poisson only.
    #[cfg_attr(feature = "clap", arg(long))]
    pub q: Option<f64>,
    /// Records drawn from (fixed-size sampling only).
    #[cfg_attr(feature = "clap", arg(long))]
    pub n: Option<u64>,
    /// Records per batch, at most --n (fixed-size sampling only).
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch: Option<u64>,
    /// Number of steps (each a subsampled noisy gradient step), at least 1.
    #[cfg_attr(feature = "clap", arg(long))]
    pub steps: u64,
    /// Target delta, in (0, 1) (usually below 1 / records).
    #[cfg_attr(feature = "clap", arg(long))]
    pub delta: f64,
    /// Accountant: rdp (Rényi DP, an upper bound by Balle et al. 2020's conversion) or
    /// prv (PRV accountant, a numerical upper estimate). Default: rdp for poisson, prv
    /// for fixed (Wang et al.'s RDP bound for sampling without replacement is several
    /// times looser).
    #[cfg_attr(feature = "clap", arg(long, value_parser = ["rdp", "prv"]))]
    pub accountant: Option<String>,
}

/// Options of the command that takes `PrivacyEpsilonArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PrivacyEpsilonArgs {
    /// Noise multiplier: the Gaussian noise's std divided by the clipping norm (> 0).
    #[cfg_attr(feature = "clap", arg(long))]
    pub sigma: f64,
    /// Sampling and accounting.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub mechanism: PrivacyMechanismArgs,
}

/// Options of the command that takes `PrivacySigmaArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PrivacySigmaArgs {
    /// Target epsilon (> 0).
    #[cfg_attr(feature = "clap", arg(long))]
    pub epsilon: f64,
    /// Sampling and accounting.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub mechanism: PrivacyMechanismArgs,
}

/// Options of the command that takes `RobustnessArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RobustnessArgs {
    /// A run directory written by `ward run` (config.toml, model.safetensors).
    pub run: PathBuf,
    /// Output directory (default: `<run>/robustness`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Seed of the corruptions' random draws.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Test images shown per example sheet.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 6))]
    pub examples: usize,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `ReportArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ReportArgs {
    /// A run directory written by `ward run` (config.toml, model.safetensors,
    /// summary.json, metrics.jsonl).
    pub run: PathBuf,
    /// Where to write the page (default: `<run>/report.html`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Device and gradient engine (to score the test splits).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `AggregateArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AggregateArgs {
    /// The updates: an (n, d) float32/float64 .npy array, C order, one update per row.
    pub updates: PathBuf,
    /// The rule: mean, fedavg, median, trimmed-mean, krum, multi-krum, geometric-median,
    /// bulyan, centered-clipping, clipped-mean, fltrust, dnc, signguard, clipped-clustering or
    /// flame. centered-clipping has no previous round here: its centre starts at 0, as
    /// clipped-mean's does.
    #[cfg_attr(feature = "clap", arg(long))]
    pub rule: String,
    /// Byzantine updates to tolerate (trimmed-mean cuts f per side; krum, multi-krum,
    /// bulyan, dnc and nnm need it; median checks n >= 2f+1 with it).
    #[cfg_attr(feature = "clap", arg(long))]
    pub f: Option<usize>,
    /// multi-krum: updates averaged (default n - f).
    #[cfg_attr(feature = "clap", arg(long))]
    pub m: Option<usize>,
    /// clipped-mean: the clipping radius (required); centered-clipping: the radius
    /// (default: the median distance of the updates from the centre).
    #[cfg_attr(feature = "clap", arg(long, allow_hyphen_values = true))]
    pub tau: Option<f64>,
    /// centered-clipping, clipped-mean: iterations (default 1); geometric-median: the iteration limit
    /// (default 100); dnc: its niters (default 1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub iterations: Option<usize>,
    /// geometric-median: the smoothing eps (default 1e-8).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eps: Option<f64>,
    /// Seed of bucketing's shuffle and of dnc's, signguard's and flame's random draws
    /// (the round is 1).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// dnc: coordinates subsampled per iteration (default 10000).
    #[cfg_attr(feature = "clap", arg(long))]
    pub subsample_dim: Option<usize>,
    /// dnc: the filtering fraction c (floor(c f) removed per iteration; default 1.0).
    #[cfg_attr(feature = "clap", arg(long))]
    pub filter_fraction: Option<f64>,
    /// flame: the noise level lambda (noise std lambda x the median distance; default
    /// 0.001, 0 for none).
    #[cfg_attr(feature = "clap", arg(long))]
    pub lambda: Option<f64>,
    /// fltrust: the server's update, a .npy vector of d values (shape (d,) or (1, d)).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE.npy"))]
    pub server_update: Option<PathBuf>,
    /// A pre-aggregator applied before the rule, in order: nnm (with --f),
    /// bucketing:S or clip:C. Repeat for several.
    #[cfg_attr(
        feature = "clap",
        arg(long = "pre", value_name = "nnm|bucketing:S|clip:C")
    )]
    pub pre: Vec<String>,
}

/// Options of the command that takes `RobustGridArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RobustGridArgs {
    /// Experiment file (default: the built-in default experiment). A backdoor row takes
    /// its trigger, target and rate from the file's `[attack]` (kind = "backdoor").
    pub experiment: Option<PathBuf>,
    /// Override a key of the experiment (as for `ward run`).
    #[cfg_attr(feature = "clap", arg(long = "set", value_name = "KEY=VALUE"))]
    pub sets: Vec<String>,
    /// Output directory (grid.csv, grid.json, grid.jsonl, `heatmap_<dataset>_<metric>.svg`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Attacks, comma-separated (names of `attack.kind`).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            default_value = "sign-flip,scale,gaussian,alie,ipm,min-max,min-sum,fang-trim,mimic,swap,backdoor,model-replacement"
        )
    )]
    pub attacks: String,
    /// Defences, comma-separated (names of `robust.aggregator`).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            default_value = "fedavg,mean,median,trimmed-mean,krum,multi-krum,bulyan,geometric-median,centered-clipping,clipped-mean,fltrust,dnc,signguard,clipped-clustering,flame"
        )
    )]
    pub defences: String,
    /// Numbers of compromised sites, comma-separated (0 is the no-attack column).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "0,1", conflicts_with = "fractions")
    )]
    pub f: String,
    /// Fractions of compromised sites instead of numbers, e.g. 0,0.1,0.2,0.3.
    #[cfg_attr(feature = "clap", arg(long))]
    pub fractions: Option<String>,
    /// Training seeds (the run seed: initialisation, batch order), comma-separated.
    #[cfg_attr(feature = "clap", arg(long, default_value = "0"))]
    pub seeds: String,
    /// Attacker draws, comma-separated: each draws which sites are compromised,
    /// independently of the training seed.
    #[cfg_attr(feature = "clap", arg(long, default_value = "0"))]
    pub draws: String,
    /// The f every defence that takes one is configured with (default: each cell's own
    /// number of compromised sites; its clean cell uses the same f).
    #[cfg_attr(feature = "clap", arg(long))]
    pub defence_f: Option<usize>,
    /// ALIE's z (the paper's formula gives 0 for small federations).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = 1.0, allow_hyphen_values = true)
    )]
    pub alie_z: f64,
    /// The Gaussian attack's noise norm over the attacker's honest update norm.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10.0))]
    pub gaussian_scale: f64,
    /// The clipping radius of centered-clipping (default: each round, the median
    /// distance of the updates from its centre) and clipped-mean (default 1).
    #[cfg_attr(feature = "clap", arg(long, allow_hyphen_values = true))]
    pub tau: Option<f64>,
    /// FLTrust's root sample: training rows moved to the server (`robust.root-samples`).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 50))]
    pub root_samples: usize,
    /// Cells run at once (default: one per core, fewer when memory is short, 1 on an
    /// accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Where gradients are computed.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct EngineArgs {
    /// Device: cpu (Burn's burn-flex backend, or Ward's native kernels), cuda:N, wgpu.
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: String,
    /// Gradient engine: auto (native kernels for dense models on the CPU, Burn
    /// elsewhere), native, or burn (Burn autodiff on --device).
    #[cfg_attr(feature = "clap", arg(long, default_value = "auto"))]
    pub engine: String,
}

/// Options of the command that takes `SynthArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SynthArgs {
    /// Output directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Sites, each with its own acquisition profile.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub sites: usize,
    /// Images per site (before the site's size factor).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 600))]
    pub per_site: usize,
    /// Image side in pixels.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 28))]
    pub size: usize,
    /// Lesion classes (2..=8).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub classes: usize,
    /// Seed of every random choice.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// Options of the command that takes `LosoArgs` (`ward reproduce loso`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct LosoArgs {
    /// An experiment file, or a built-in name: fed-heart-disease (FLamby's per-strategy
    /// settings) or scanner-shift (examples/scanner-shift-fedbn.toml: the synthetic
    /// scanner sites and a small CNN with BatchNorm).
    pub experiment: String,
    /// Override a key of the experiment (as for `ward run`), before each strategy's
    /// settings are applied.
    #[cfg_attr(feature = "clap", arg(long = "set", value_name = "KEY=VALUE"))]
    pub sets: Vec<String>,
    /// Output directory for loso.csv and loso.json (default:
    /// `runs/reproduce-loso-<timestamp>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Seeds 0..N.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub seeds: u64,
    /// Strategies, comma-separated (default: fedavg, fedprox, scaffold, fedadam,
    /// fedyogi, fedadagrad, cyclic, fedbn for a model with BatchNorm, and pooled).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub strategies: Vec<String>,
    /// Labelled cases of the held-out site's training split to fine-tune on,
    /// comma-separated (0: the model as trained; each capped by the rows the site has).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "0,5,20,50")
    )]
    pub k: Vec<usize>,
    /// Fine-tuning: Adam steps (batch: the experiment's, at most k).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 50))]
    pub ft_steps: usize,
    /// Fine-tuning: Adam learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.01))]
    pub ft_lr: f64,
    /// TENT: Adam learning rate on the BatchNorm affine parameters.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.001))]
    pub tent_lr: f64,
    /// TENT: test images per batch (default: the experiment's batch size).
    #[cfg_attr(feature = "clap", arg(long))]
    pub tent_batch: Option<usize>,
    /// Runs at once (default: one per core, fewer when memory is short, 1 on an
    /// accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `ScannerShiftArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ScannerShiftArgs {
    /// Output directory (default: `runs/reproduce-scanner-shift-<timestamp>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Seeds 0..N.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub seeds: u64,
    /// Sites (each with its own acquisition profile).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub sites: usize,
    /// Images per site (train, val and test).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 600))]
    pub per_site: usize,
    /// Image side in pixels.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 28))]
    pub size: usize,
    /// Lesion classes.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub classes: usize,
    /// Seed of the synthetic data (fixed across run seeds).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub data_seed: u64,
    /// Conv block widths of the small CNN.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "16,32")
    )]
    pub channels: Vec<usize>,
    /// Width of the CNN's dense layer.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 64))]
    pub hidden: usize,
    /// Rounds (federated) or epochs (local, pooled).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub rounds: usize,
    /// Local Adam learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.002))]
    pub lr: f64,
    /// Cells run at once (default: one per core, fewer when memory is short, 1 on an
    /// accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `ReproduceArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ReproduceArgs {
    /// Output directory for table.csv and table.json (default: `runs/reproduce-flamby-heart-<timestamp>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Seeds 0..N.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub seeds: u64,
    /// Only FLamby's rows (skip the cross-validated search for Ward's own rows).
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_search: bool,
    /// Cells run at once (default: one per core, fewer when memory is short, 1 on an
    /// accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `ReproduceFairnessArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ReproduceFairnessArgs {
    /// `fed-heart-disease` (FLamby's federated settings: SGD lr 0.001, batch 4, 100
    /// local steps, 15 rounds) or an experiment file with a binary table.
    #[cfg_attr(feature = "clap", arg(default_value = "fed-heart-disease"))]
    pub experiment: String,
    /// q-FFL's q values, comma-separated (each a row beside FedAvg).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "0,0.5,1,2,5")
    )]
    pub q: Vec<f64>,
    /// Seeds 0..N.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub seeds: u64,
    /// The feature column whose raw value (before standardisation) is each test row's
    /// group.
    #[cfg_attr(feature = "clap", arg(long, default_value = "sex"))]
    pub group_column: String,
    /// Rounds (default: the experiment's; 15 for fed-heart-disease).
    #[cfg_attr(feature = "clap", arg(long))]
    pub rounds: Option<usize>,
    /// Local learning rate (default: the experiment's; 0.001 for fed-heart-disease).
    #[cfg_attr(feature = "clap", arg(long))]
    pub lr: Option<f64>,
    /// Output directory for fairness.csv and fairness.json (default:
    /// `runs/reproduce-fairness-<timestamp>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Cells run at once (default: one per core, fewer when memory is short, 1 on an
    /// accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `ReproduceDpArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ReproduceDpArgs {
    /// Output directory for table.csv and table.json (default:
    /// `runs/reproduce-flamby-heart-dp-<timestamp>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Seeds 0..N.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub seeds: u64,
    /// Target epsilons, comma-separated (FLamby's grid).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "0.1,1,5,10,50")
    )]
    pub epsilons: Vec<f64>,
    /// Deltas, comma-separated (FLamby's grid).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "0.1,0.01,0.001,0.0001")
    )]
    pub deltas: Vec<f64>,
    /// Accountant that calibrates Ward's noise: rdp (default; Balle et al. 2020
    /// conversion) or prv (tighter, slower). Both are reported for every row.
    #[cfg_attr(feature = "clap", arg(long, default_value = "rdp", value_parser = ["rdp", "prv"]))]
    pub accountant: String,
    /// Cells run at once (default: one per core, fewer when memory is short, 1 on an
    /// accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of the command that takes `BenchSecaggArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BenchSecaggArgs {
    /// Numbers of sites, comma-separated.
    #[cfg_attr(feature = "clap", arg(long, default_value = "10,50,100"))]
    pub n: String,
    /// Vector lengths, comma-separated (1e5 notation accepted).
    #[cfg_attr(feature = "clap", arg(long, default_value = "1e5,1e6"))]
    pub d: String,
    /// Dropout fractions, comma-separated: round(fraction x n) sites leave after sharing
    /// keys (chosen as the anchor does, so every neighbourhood keeps the threshold).
    #[cfg_attr(feature = "clap", arg(long, default_value = "0,0.2"))]
    pub drop: String,
    /// Graphs, comma-separated: complete (the anchor's `full`: threshold round(n/2)),
    /// sparse (the anchor's `example`: --neighbours and --threshold).
    #[cfg_attr(feature = "clap", arg(long, default_value = "complete,sparse"))]
    pub graphs: String,
    /// Neighbours of each site in the sparse graph (Flower's num_shares minus the site
    /// itself).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub neighbours: u32,
    /// Shamir threshold in the sparse graph.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub threshold: u32,
    /// Clipping range of the quantiser (Flower's default 8).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8.0))]
    pub clip: f32,
    /// Bits per value (Flower's default 2^22 levels).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 22))]
    pub bits: u32,
    /// Mask generator: chacha8, chacha12 or chacha20.
    #[cfg_attr(feature = "clap", arg(long, default_value = "chacha12"))]
    pub prg: String,
    /// Threads (0: all cores; 1: everything on one thread, like the anchor).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub threads: usize,
    /// Rounds per case (the median is reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub repeats: usize,
    /// Write every measurement as JSON to this file.
    #[cfg_attr(feature = "clap", arg(long))]
    pub json: Option<PathBuf>,
    /// The anchor folder (default: shared/anchors/secagg found from the current or the
    /// executable's directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub anchor: Option<PathBuf>,
    /// Python virtual environment for the anchor (its setup.sh creates it; this command
    /// never runs setup.sh).
    #[cfg_attr(feature = "clap", arg(long, default_value = "/tmp/flower-venv"))]
    pub venv: PathBuf,
    /// Seconds allowed to one anchor round (as the anchor's own cap); larger cases of the
    /// same graph are then skipped.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 180.0))]
    pub anchor_cap: f64,
    /// Do not run the anchor.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_anchor: bool,
}

/// Options of the command that takes `BenchDpArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BenchDpArgs {
    /// Timed steps per CNN case (MLP cases take 10 times as many; median reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10))]
    pub steps: usize,
    /// Untimed warm-up steps per case.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub warmup: usize,
    /// CNN batch size.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub batch: usize,
    /// Models, comma-separated (mlp, cnn); empty: both.
    #[cfg_attr(feature = "clap", arg(long, default_value = ""))]
    pub only: String,
}

/// Options of the command that takes `BenchCnnArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BenchCnnArgs {
    /// Timed steps per small-CNN case (median reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub steps: usize,
    /// Timed steps per ResNet-18 case.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub resnet_steps: usize,
    /// Untimed warm-up steps per case.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub warmup: usize,
    /// Cases, comma-separated (cnn, resnet18, readers); empty: all.
    #[cfg_attr(feature = "clap", arg(long, default_value = ""))]
    pub only: String,
    /// Images (or for NIfTI, 32-slice volumes / 32) per reader in the readers' case.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 256))]
    pub reader_images: usize,
    /// Image sides, comma-separated (each case is 1 x side x side).
    #[cfg_attr(feature = "clap", arg(long, default_value = "28,64"))]
    pub inputs: String,
    /// Devices, comma-separated: cpu (burn-flex), ndarray (burn-ndarray), cuda:N or wgpu
    /// (build features); each is timed on every case, in this order.
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: String,
    /// The anchor folder (default: shared/anchors/pytorch_cnn found upwards).
    #[cfg_attr(feature = "clap", arg(long))]
    pub anchor: Option<PathBuf>,
    /// The anchor's Python venv (its setup.sh makes it; never run by this command).
    #[cfg_attr(feature = "clap", arg(long, default_value = "/tmp/torch-venv"))]
    pub venv: PathBuf,
    /// Do not run the anchor.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_anchor: bool,
}

/// Options of the command that takes `BenchAggregateArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BenchAggregateArgs {
    /// Numbers of updates, comma-separated.
    #[cfg_attr(feature = "clap", arg(long, default_value = "10,50,100"))]
    pub n: String,
    /// Numbers of parameters, comma-separated (1e5 notation accepted). n = 100 with
    /// d = 1e7 is skipped, as in the anchor (4 GB of input).
    #[cfg_attr(feature = "clap", arg(long, default_value = "1e5,1e6,1e7"))]
    pub d: String,
    /// Rules, comma-separated (anchor names: mean, median, trimmed_mean, krum,
    /// multi_krum, geomed, centered_clipping, bulyan, nnm_mean).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            default_value = "mean,median,trimmed_mean,krum,multi_krum,geomed,centered_clipping,bulyan,nnm_mean"
        )
    )]
    pub rules: String,
    /// Calls per case (the median is reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub repeats: usize,
    /// The anchor folder (default: shared/anchors/aggregation found from the current or
    /// the executable's directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub anchor: Option<PathBuf>,
    /// Python virtual environment for the anchor (its setup.sh creates it; this command
    /// never runs setup.sh). A venv with numpy alone gives the numpy column.
    #[cfg_attr(feature = "clap", arg(long, default_value = "/tmp/byzfl-venv"))]
    pub venv: PathBuf,
    /// Do not run the anchor.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_anchor: bool,
}

/// Options of the command that takes `BenchFlArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BenchFlArgs {
    /// Repetitions of each measurement (the median is reported).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub repeats: usize,
    /// The anchor folder (default: ../shared/anchors/flower_heart from the current or
    /// the repository directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub anchor: Option<PathBuf>,
    /// Python virtual environment for the anchor (its setup.sh creates it).
    #[cfg_attr(feature = "clap", arg(long, default_value = "/tmp/flower-venv"))]
    pub venv: PathBuf,
    /// Do not run the anchor.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_anchor: bool,
    /// Do not run the anchor's setup.sh when its venv exists already.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_setup: bool,
    /// Skip Flower (run only the numpy loop of the anchor).
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_flower: bool,
}

/// Options of the command that takes `PrivacyAuditArgs`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PrivacyAuditArgs {
    /// A run directory written by `ward run` (config.toml, model.safetensors).
    pub run: PathBuf,
    /// Output directory (default: `<run>/audit`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Seed of the shadow models' data halves and run seeds, and of the held-out split
    /// behind the epsilon bound (threshold chosen on one half, bound on the other).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Shadow runs for LiRA (even, at least 4; 0 runs only the loss attack). Each is a
    /// full run of the experiment.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub shadows: usize,
    /// False-positive rates at which to report the TPR, comma-separated.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "0.001,0.01")
    )]
    pub fpr: Vec<f64>,
    /// Delta of the epsilon lower bound (default: the run accountant's delta, else
    /// 1e-5).
    #[cfg_attr(feature = "clap", arg(long))]
    pub delta: Option<f64>,
    /// Confidence of the Clopper-Pearson intervals behind the epsilon bound.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.95))]
    pub confidence: f64,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}

/// Options of `ward calibration`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CalibrationArgs {
    /// Class probabilities: an (n, k) float32/float64 .npy array (rows sum to 1), or (n,)
    /// positive-class probabilities of a binary task.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE.npy"))]
    pub probs: PathBuf,
    /// Labels: an (n,) integer .npy array of class indices (0..k-1).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE.npy"))]
    pub labels: PathBuf,
    /// Equal-width (and equal-mass) bins of the confidence.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 15))]
    pub bins: usize,
}

/// Options of `ward conformal`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ConformalArgs {
    /// Calibration probabilities: (n, k) float32/float64 .npy, or (n,) for binary.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE.npy"))]
    pub probs: PathBuf,
    /// Calibration labels: (n,) integer .npy.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE.npy"))]
    pub labels: PathBuf,
    /// Miscoverage level in (0, 1): sets hold the label with probability >= 1 - alpha.
    #[cfg_attr(feature = "clap", arg(long))]
    pub alpha: f64,
    /// Conformity score: lac, aps or raps.
    #[cfg_attr(feature = "clap", arg(long, default_value = "lac", value_parser = ["lac", "aps", "raps"]))]
    pub score: String,
    /// raps: ranks up to k_reg are not penalised.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub k_reg: usize,
    /// raps: penalty per rank past k_reg.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.01))]
    pub lambda: f64,
    /// Quantile rule: exact (the ceil((n+1)(1-alpha))-th smallest score) or mapie
    /// (np.quantile(s, (n+1)(1-alpha)/n, method="higher"), MAPIE 0.8.6).
    #[cfg_attr(feature = "clap", arg(long, default_value = "exact", value_parser = ["exact", "mapie"]))]
    pub quantile: String,
    /// Set rule: include-last (MAPIE's include_last_label=True) or at-most
    /// ({j : score(x, j) <= qhat}).
    #[cfg_attr(feature = "clap", arg(long, default_value = "include-last", value_parser = ["include-last", "at-most"]))]
    pub sets: String,
    /// Test probabilities (same k): print their prediction sets.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE.npy"))]
    pub test: Option<PathBuf>,
}

/// Options of `ward reproduce uncertainty`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct UncertaintyArgs {
    /// Experiment file (default: the built-in default experiment, FedAvg on
    /// Fed-Heart-Disease).
    pub experiment: Option<PathBuf>,
    /// Override a key of the experiment (as for `ward run`).
    #[cfg_attr(feature = "clap", arg(long = "set", value_name = "KEY=VALUE"))]
    pub sets: Vec<String>,
    /// Ensemble members: independent federations, each with its own run seed.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub members: usize,
    /// Repetitions of the whole comparison (run seeds `r * members + m`); the 95%
    /// intervals are over them.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub seeds: usize,
    /// Monte Carlo draws per row of the multi-class Laplace predictive.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1000))]
    pub mc_samples: usize,
    /// MC dropout: forward passes with sampled dropout masks per test row (models with
    /// `model.dropout > 0`; the method is left out otherwise).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 50))]
    pub dropout_samples: usize,
    /// Output directory (default: `runs/reproduce-uncertainty-<timestamp>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Federations trained at once (default: one per core, fewer when memory is short,
    /// 1 on an accelerator). Results do not depend on it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub jobs: Option<usize>,
    /// Device and gradient engine.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub engine: EngineArgs,
}
