//! Command-line arguments (clap types only; the commands live in `commands/`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ward_experiment::options::{
    AggregateArgs, BenchAggregateArgs, BenchCnnArgs, BenchDpArgs, BenchFlArgs, BenchSecaggArgs,
    CalibrationArgs, ConformalArgs, EngineArgs, LosoArgs, PrivacyAuditArgs, PrivacyEpsilonArgs,
    PrivacySigmaArgs, ReportArgs, ReproduceArgs, ReproduceDpArgs, ReproduceFairnessArgs,
    RobustGridArgs, RobustnessArgs, ScannerShiftArgs, SynthArgs, UncertaintyArgs,
};

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
    /// Acquisition-shift robustness of a trained image model: 18 corruptions (Gaussian,
    /// speckle, impulse, shot and Rician noise, blur, pixelation, JPEG, motion, ghosting,
    /// k-space spike, bias field, gamma, contrast and brightness up and down; severities
    /// after MedMNIST-C and TorchIO) x 5 severities on every site's test images, scored by
    /// accuracy, balanced accuracy, chance-normalised balanced error and the drop of the
    /// margin over chance. Writes robustness.csv, robustness.json, robustness.svg and
    /// `examples/<corruption>_s<k>.png`.
    Robustness(RobustnessArgs),
    /// Differential-privacy calculators for data-protection officers, and an empirical
    /// audit of a trained run.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Calibration of any model's predicted probabilities, printed as one JSON line:
    /// {"n", "classes", "ece", "mce", "adaptive_ece", "classwise_ece", "brier", "nll",
    /// "accuracy", "bins": [{"lo", "hi", "count", "confidence", "accuracy"}, ...]}.
    ///
    /// ECE and the reliability bins use equal-width bins (lo, hi], the first including 0
    /// (Guo et al. 2017); confidence is the top-label probability. Brier is the mean over
    /// rows of the sum over classes of squared errors (not divided by k); NLL is in nats
    /// with probabilities clipped at 1e-15. --probs is an (n, k) float32/float64 .npy
    /// array whose rows sum to 1 (within 1e-3), or (n,) positive-class probabilities of a
    /// binary task; --labels an (n,) integer .npy array of class indices.
    Calibration(CalibrationArgs),
    /// Split conformal prediction on any model's calibration outputs, printed as one
    /// JSON line: {"score", "alpha", "qhat", "n", "quantile", "inclusion", "sets"}
    /// ("sets", the classes of each --test row, only with --test).
    ///
    /// Scores: lac (1 - p_y), aps (probability mass down to y), raps (aps + lambda per
    /// rank past k_reg). With exchangeable calibration and test rows, a set holds the true
    /// class with probability at least 1 - alpha (and, for --sets at-most with continuous
    /// scores, less than 1 - alpha + 1/(n + 1)). qhat is the ceil((n+1)(1-alpha))-th smallest calibration
    /// score (--quantile mapie: MAPIE 0.8.6's np.quantile "higher" rule).
    Conformal(ConformalArgs),
    /// One self-contained HTML page on a finished run, for clinicians and ethics boards:
    /// what was trained where, per-site performance with intervals, calibration before
    /// and after federated recalibration, conformal sets and their coverage per site,
    /// deferral to a clinician, uncertainty, fairness across sites, privacy spent, the
    /// poisoning audit and acquisition-shift robustness. Also writes evidence.json (every
    /// number on the page) into the run directory. No script, no network: figures are
    /// inline SVG.
    Report(ReportArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Epsilon spent by `--steps` steps of the subsampled Gaussian mechanism (DP-SGD)
    /// with noise multiplier `--sigma`, at `--delta`: Poisson sampling at rate `--q`
    /// (guarantee for adding or removing one record), or with `--sampling fixed` batches
    /// of exactly `--batch` of `--n` records without replacement (guarantee for
    /// substituting one record; the record count is public).
    ///
    /// Prints one JSON object: {"epsilon", "sigma", "sampling", "adjacency", "q",
    /// "steps", "delta", "accountant", "bound", ...}. `bound` says what `epsilon` is: for
    /// rdp (the default with poisson) an upper bound, the Balle et al. 2020 conversion of
    /// Rényi DP over Opacus's orders 1.1..10.9, 12..63 (with "rdp_order" and
    /// "epsilon_mironov", Mironov 2017's looser conversion; fixed-size batches: Wang,
    /// Balle & Kasiviswanathan 2019's bound); for prv (the default with fixed) the upper
    /// estimate of the PRV accountant (Gopi et al. 2021) with eps_error 0.01 and
    /// delta_error delta/1000 (with "prv_estimate" and "prv_lower"): numerical, not a
    /// proof.
    Epsilon(PrivacyEpsilonArgs),
    /// The smallest noise multiplier (to 1e-4) whose epsilon after `--steps` steps
    /// (sampled as for `epsilon`) is at most `--epsilon` at `--delta`.
    ///
    /// Prints one JSON object: {"epsilon" (reached at that sigma, at most the target),
    /// "target_epsilon", "sigma", "sampling", "adjacency", "q", "steps", "delta",
    /// "accountant", "bound"}.
    Sigma(PrivacySigmaArgs),
    /// Membership-inference audit of a trained run: the loss-threshold attack (Yeom et
    /// al. 2018) and LiRA (Carlini et al. 2022) with shadow runs of the same
    /// experiment, on each site's training rows (members) against its test rows.
    ///
    /// Prints AUC, TPR at low FPR and the epsilon lower bound the attack proves
    /// (threshold chosen on a random half of the rows, seeded by --seed; Clopper-Pearson
    /// bound at it on the other half), overall and per site, beside the accountant's
    /// epsilon where the run had a privacy mechanism. With shadows, the `-rand` rows
    /// attack one more run of the experiment whose training rows were drawn from the
    /// pool by a fair coin each: membership independent of the rows, so their bounds
    /// cannot come from chance differences between the run's fixed train and test rows.
    /// Writes audit.json, audit.csv and audit_examples.csv.
    Audit(PrivacyAuditArgs),
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
    /// Fairness across sites and groups on a binary table (default fed-heart-disease):
    /// FedAvg and q-FFL at each --q over seeds; mean, worst-site and per-site accuracy,
    /// spread, and TPR / FPR / equalized-odds gaps by --group-column (its raw value per
    /// test row), each with a 95% t-interval over seeds, beside the constant-predictor
    /// floor. Writes fairness.csv and fairness.json.
    Fairness(ReproduceFairnessArgs),
    /// Generalisation to an unseen hospital: for every strategy (and the pooled
    /// baseline) and every site, train without that site and score the model on its
    /// test split, as trained, fine-tuned on k labelled cases of its training split, and
    /// (BatchNorm models) after AdaBN and TENT; beside the floor (best constant
    /// prediction) and the in-federation score. Means over seeds with 95% t-intervals;
    /// writes loso.csv and loso.json.
    Loso(LosoArgs),
    /// Uncertainty on an experiment (default: FedAvg on Fed-Heart-Disease): a single
    /// federated model, a deep ensemble of --members independent federations and the
    /// federated last-layer Laplace approximation, per site: NLL, ECE, Brier, accuracy,
    /// AURC, predictive entropy on right and wrong cases, the ensemble's mutual
    /// information; 95% intervals over --seeds repetitions. Writes uncertainty.csv and
    /// uncertainty.json.
    Uncertainty(UncertaintyArgs),
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
