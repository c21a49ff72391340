//! The experiment file (`experiment.toml`): typed, strict, and checked before training.
//!
//! Every struct denies unknown keys and uses kebab-case names. Parsing gives the raw
//! [`ExperimentSpec`]; [`ExperimentSpec::validate`] checks ranges and consistency and
//! names the offending key on error. Every key is documented in `docs/config.md`; a
//! test keeps the two in step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// A whole experiment: data, model, local training and federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExperimentSpec {
    /// Experiment name; used for the default run directory `runs/<name>-<timestamp>`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Run seed: model initialisation, batch order, client sampling. Not the data split.
    #[serde(default)]
    pub seed: u64,
    /// Where the data comes from and how it is split into sites.
    pub data: DataSpec,
    /// The model.
    #[serde(default)]
    pub model: ModelSpec,
    /// Local training at each site.
    #[serde(default)]
    pub train: TrainSpec,
    /// Rounds and the federated strategy.
    #[serde(default)]
    pub federation: FederationSpec,
}

fn default_name() -> String {
    "experiment".into()
}

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Built in: UCI heart disease, four hospitals, FLamby's Fed-Heart-Disease protocol.
    FedHeartDisease,
    /// Built in: Breast Cancer Wisconsin (Diagnostic); no sites, so it needs `[data.partition]`.
    BreastCancer,
    /// A CSV file described by the keys of `[data]`.
    Csv,
}

impl DatasetKind {
    /// The name as written in the experiment file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FedHeartDisease => "fed-heart-disease",
            Self::BreastCancer => "breast-cancer",
            Self::Csv => "csv",
        }
    }
}

/// How rows with a missing value are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// Drop every row with a missing value in a used column.
    #[default]
    Drop,
    /// Fill numeric columns with the training split's mean, categorical ones with its most
    /// frequent level (per site). Rows with a missing target or site are still dropped.
    Impute,
}

/// Which training statistics standardise the features of federated and local runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandardizeKind {
    /// Each site with its own training mean and std (FLamby's protocol).
    #[default]
    PerSite,
    /// Every site with the mean and std of all sites' training rows together, as a
    /// federation computes them from per-site counts, sums and sums of squares (no row
    /// leaves its site). The pooled baseline always uses these.
    Global,
}

/// One categorical column, one-hot encoded without its reference level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CategoricalSpec {
    /// Column name in the CSV header.
    pub column: String,
    /// The reference level: it gets no indicator column.
    pub reference: String,
    /// The other levels, in the order of their indicator columns. Empty: every level seen
    /// in the file except the reference, sorted. A value outside `reference` and `levels`
    /// is an error.
    #[serde(default)]
    pub levels: Vec<String>,
}

/// How the target column becomes a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetSpec {
    /// Column name in the CSV header.
    pub column: String,
    /// Rule: `"> 0"`, `">= 1"`, `"< 5"`, `"<= 2"`, `"== M"`, `"!= 0"` (binary label: 1 where
    /// the rule holds), or `"class"` (integer class labels 0..k-1 as written).
    #[serde(default = "default_rule")]
    pub rule: String,
}

fn default_rule() -> String {
    "class".into()
}

/// How rows without a site column are spread over simulated sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Shuffle, then equal shares.
    Iid,
    /// Per class, site shares drawn from Dirichlet(alpha): label skew.
    Dirichlet,
    /// Site sizes drawn from Dirichlet(alpha), labels IID: quantity skew.
    Quantity,
}

/// Partitioning of a dataset that has no site column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PartitionSpec {
    /// The partitioner.
    pub kind: PartitionKind,
    /// Number of simulated sites (>= 1).
    pub sites: usize,
    /// Dirichlet concentration for `dirichlet` and `quantity` (> 0; smaller is more skewed).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Seed of the partition (fixed, independent of the run seed).
    #[serde(default = "default_split_seed")]
    pub seed: u64,
    /// Minimum rows per site; the draw is repeated (up to 100 times) until it holds.
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
}

fn default_alpha() -> f64 {
    0.5
}
fn default_min_rows() -> usize {
    10
}
fn default_split_seed() -> u64 {
    43
}
fn default_test_fraction() -> f64 {
    0.34
}
fn default_missing_tokens() -> Vec<String> {
    vec![String::new(), "NA".into(), "?".into()]
}

/// `[data]`: the dataset, its columns, its sites and its train/test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataSpec {
    /// `fed-heart-disease`, `breast-cancer` or `csv`.
    pub dataset: DatasetKind,
    /// CSV path (`csv` only), relative to the experiment file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Numeric feature columns (`csv` only), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<String>,
    /// Categorical feature columns (`csv` only), one-hot after the numeric ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<CategoricalSpec>,
    /// The target (`csv` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// Column naming each row's site (`csv` only). Without it, `[data.partition]` is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_column: Option<String>,
    /// Field values that mean "missing" (`csv` only).
    #[serde(default = "default_missing_tokens")]
    pub missing_values: Vec<String>,
    /// Missing-value policy.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Share of each site's rows held out for testing, in (0, 1).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split (fixed, independent of the run seed).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Partitioning for data without sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSpec>,
    /// Feature standardisation for federated and local runs: `per-site` or `global`.
    #[serde(default)]
    pub standardize: StandardizeKind,
}

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Logistic (binary) or softmax (multi-class) regression.
    #[default]
    Logistic,
    /// Multi-layer perceptron with `hidden` layers.
    Mlp,
}

/// Hidden-layer activation of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// tanh(x).
    Tanh,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSpec {
    /// `logistic` or `mlp`.
    #[serde(default)]
    pub kind: ModelKind,
    /// Hidden layer sizes (`mlp` only), e.g. `[32, 16]`.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Hidden activation (`mlp` only).
    #[serde(default)]
    pub activation: Activation,
}

/// Local optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with optional momentum and weight decay (PyTorch semantics).
    #[default]
    Sgd,
    /// Adam (Kingma & Ba 2015; PyTorch semantics, L2 weight decay).
    Adam,
}

/// Training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy for two classes, cross-entropy for more.
    #[default]
    Auto,
    /// Binary cross-entropy on one logit.
    Bce,
    /// Softmax cross-entropy on one logit per class.
    CrossEntropy,
}

/// `[train]`: local training at each site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainSpec {
    /// `sgd` or `adam`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Local learning rate (> 0).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD momentum in [0, 1).
    #[serde(default)]
    pub momentum: f64,
    /// L2 weight decay (>= 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam beta1 in [0, 1).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam beta2 in [0, 1).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam epsilon (> 0).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Mini-batch size (>= 1). The last batch of a pass may be smaller (no drop-last).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Local optimizer steps per round. Exactly one of `local-steps`, `local-epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_steps: Option<usize>,
    /// Local passes over the site's training data per round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_epochs: Option<usize>,
    /// Loss: `auto`, `bce` or `cross-entropy`.
    #[serde(default)]
    pub loss: LossKind,
}

fn default_lr() -> f64 {
    0.001
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_batch() -> usize {
    4
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: 0.0,
            weight_decay: 0.0,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            batch_size: default_batch(),
            local_steps: Some(100),
            local_epochs: None,
            loss: LossKind::Auto,
        }
    }
}

/// Federated strategy, or a non-federated baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// FedAvg (McMahan et al. 2017): average of local models weighted by examples.
    #[default]
    Fedavg,
    /// FedProx (Li et al. 2020): FedAvg with a proximal term `mu/2 |w - w_global|^2`.
    Fedprox,
    /// SCAFFOLD (Karimireddy et al. 2020), option II control variates.
    Scaffold,
    /// FedAdam (Reddi et al. 2021).
    Fedadam,
    /// FedYogi (Reddi et al. 2021).
    Fedyogi,
    /// FedAdagrad (Reddi et al. 2021).
    Fedadagrad,
    /// Cyclic: one site per round, order reshuffled each cycle.
    Cyclic,
    /// Baseline: all sites' training data pooled at one place.
    Pooled,
    /// Baseline: one site trains alone (`federation.local-site`), scored on every site.
    Local,
}

impl StrategyKind {
    /// Lower-case name as written in configs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fedavg => "fedavg",
            Self::Fedprox => "fedprox",
            Self::Scaffold => "scaffold",
            Self::Fedadam => "fedadam",
            Self::Fedyogi => "fedyogi",
            Self::Fedadagrad => "fedadagrad",
            Self::Cyclic => "cyclic",
            Self::Pooled => "pooled",
            Self::Local => "local",
        }
    }

    /// Whether this is a FedOpt server optimizer (FedAdam, FedYogi, FedAdagrad).
    pub fn is_fedopt(self) -> bool {
        matches!(self, Self::Fedadam | Self::Fedyogi | Self::Fedadagrad)
    }
}

/// `[federation]`: rounds, sampling and the strategy's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FederationSpec {
    /// Strategy or baseline.
    #[serde(default)]
    pub strategy: StrategyKind,
    /// Number of rounds (>= 1). Rounds count from 1.
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// Sites sampled per round (uniformly, without replacement). Absent: all sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites_per_round: Option<usize>,
    /// FedProx proximal weight mu (> 0, `fedprox` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    /// Server learning rate (`scaffold`, `fedadam`, `fedyogi`, `fedadagrad`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_lr: Option<f64>,
    /// Server beta1 (FedOpt), in [0, 1).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Server beta2 (FedAdam, FedYogi), in [0, 1).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Server adaptivity tau (FedOpt, > 0).
    #[serde(default = "default_eps")]
    pub tau: f64,
    /// Local baseline only: the site that trains (its name as in the data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_site: Option<String>,
    /// After the last round, each site fine-tunes the global model for this many local
    /// steps and is also scored on its own test set (personalised evaluation). 0: off.
    #[serde(default)]
    pub fine_tune_steps: usize,
    /// Evaluate the global model on every site's test set every this many rounds (0: only
    /// after the last round). The final round is always evaluated.
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
}

fn default_rounds() -> usize {
    15
}
fn default_eval_every() -> usize {
    1
}

impl Default for FederationSpec {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::Fedavg,
            rounds: default_rounds(),
            sites_per_round: None,
            mu: None,
            server_lr: None,
            beta1: default_beta1(),
            beta2: default_beta2(),
            tau: default_eps(),
            local_site: None,
            fine_tune_steps: 0,
            eval_every: default_eval_every(),
        }
    }
}

fn check(cond: bool, key: &str, reason: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if cond {
        Ok(())
    } else {
        Err(ConfigError::new(key, reason()))
    }
}

fn unit_interval(v: f64, key: &str) -> Result<(), ConfigError> {
    check((0.0..1.0).contains(&v), key, || {
        format!("must be in [0, 1), got {v}")
    })
}

fn positive(v: f64, key: &str) -> Result<(), ConfigError> {
    check(v.is_finite() && v > 0.0, key, || {
        format!("must be a finite number > 0, got {v}")
    })
}

impl ExperimentSpec {
    /// The default experiment: fed-heart-disease, FedAvg, FLamby's settings (SGD lr 0.001,
    /// batch 4, 100 local steps per round, 15 rounds).
    pub fn default_heart() -> Self {
        Self {
            name: "fed-heart-disease-fedavg".into(),
            seed: 0,
            data: DataSpec::builtin(DatasetKind::FedHeartDisease),
            model: ModelSpec::default(),
            train: TrainSpec::default(),
            federation: FederationSpec::default(),
        }
    }

    /// Checks ranges and consistency. The error names the key (dotted path).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(!self.name.trim().is_empty(), "name", || {
            "must not be empty".into()
        })?;
        check(
            self.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name",
            || {
                format!(
                    "{:?} may only hold ASCII letters, digits, '-', '_' and '.' (it names the run directory)",
                    self.name
                )
            },
        )?;
        self.data.validate()?;
        self.model.validate()?;
        self.train.validate()?;
        self.federation.validate()?;
        Ok(())
    }
}

impl DataSpec {
    /// A built-in dataset with default split settings.
    pub fn builtin(dataset: DatasetKind) -> Self {
        Self {
            dataset,
            path: None,
            numeric: Vec::new(),
            categorical: Vec::new(),
            target: None,
            site_column: None,
            missing_values: default_missing_tokens(),
            missing: MissingPolicy::Drop,
            test_fraction: default_test_fraction(),
            split_seed: default_split_seed(),
            partition: None,
            standardize: StandardizeKind::PerSite,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "data.test-fraction",
            || format!("must be in (0, 1), got {}", self.test_fraction),
        )?;
        let csv_only: [(&str, bool); 5] = [
            ("data.path", self.path.is_some()),
            ("data.numeric", !self.numeric.is_empty()),
            ("data.categorical", !self.categorical.is_empty()),
            ("data.target", self.target.is_some()),
            ("data.site-column", self.site_column.is_some()),
        ];
        match self.dataset {
            DatasetKind::Csv => {
                check(self.path.is_some(), "data.path", || {
                    "is required when data.dataset = \"csv\"".into()
                })?;
                check(self.target.is_some(), "data.target", || {
                    "is required when data.dataset = \"csv\"".into()
                })?;
                check(
                    !self.numeric.is_empty() || !self.categorical.is_empty(),
                    "data.numeric",
                    || "a csv dataset needs at least one numeric or categorical column".into(),
                )?;
                check(
                    self.site_column.is_some() || self.partition.is_some(),
                    "data.partition",
                    || "a csv dataset without data.site-column needs [data.partition]".into(),
                )?;
                check(
                    !(self.site_column.is_some() && self.partition.is_some()),
                    "data.partition",
                    || "give either data.site-column or [data.partition], not both".into(),
                )?;
            }
            builtin => {
                for (key, set) in csv_only {
                    check(!set, key, || {
                        format!(
                            "is only for data.dataset = \"csv\"; {} defines its own columns",
                            builtin.as_str()
                        )
                    })?;
                }
                if builtin == DatasetKind::BreastCancer {
                    check(self.partition.is_some(), "data.partition", || {
                        "breast-cancer has no sites: add [data.partition] (kind = \"iid\", \"dirichlet\" or \"quantity\")".into()
                    })?;
                }
                if builtin == DatasetKind::FedHeartDisease {
                    check(self.partition.is_none(), "data.partition", || {
                        "fed-heart-disease has four natural sites; remove [data.partition]".into()
                    })?;
                }
            }
        }
        if let Some(p) = &self.partition {
            check(p.sites >= 1, "data.partition.sites", || {
                format!("must be >= 1, got {}", p.sites)
            })?;
            positive(p.alpha, "data.partition.alpha")?;
        }
        Ok(())
    }
}

impl ModelSpec {
    fn validate(&self) -> Result<(), ConfigError> {
        match self.kind {
            ModelKind::Logistic => check(self.hidden.is_empty(), "model.hidden", || {
                "is only for kind = \"mlp\"".into()
            }),
            ModelKind::Mlp => {
                check(!self.hidden.is_empty(), "model.hidden", || {
                    "an mlp needs at least one hidden layer, e.g. hidden = [32]".into()
                })?;
                check(self.hidden.iter().all(|&h| h > 0), "model.hidden", || {
                    format!("layer sizes must be >= 1, got {:?}", self.hidden)
                })
            }
        }
    }
}

impl TrainSpec {
    fn validate(&self) -> Result<(), ConfigError> {
        positive(self.lr, "train.lr")?;
        unit_interval(self.momentum, "train.momentum")?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "train.weight-decay",
            || format!("must be >= 0, got {}", self.weight_decay),
        )?;
        unit_interval(self.beta1, "train.beta1")?;
        unit_interval(self.beta2, "train.beta2")?;
        positive(self.eps, "train.eps")?;
        check(self.batch_size >= 1, "train.batch-size", || {
            "must be >= 1".into()
        })?;
        match (self.local_steps, self.local_epochs) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "train.local-epochs",
                "give either local-steps or local-epochs, not both",
            )),
            (None, None) => Err(ConfigError::new(
                "train.local-steps",
                "give one of local-steps or local-epochs",
            )),
            (Some(0), None) => Err(ConfigError::new("train.local-steps", "must be >= 1")),
            (None, Some(0)) => Err(ConfigError::new("train.local-epochs", "must be >= 1")),
            _ => Ok(()),
        }
    }
}

impl FederationSpec {
    fn validate(&self) -> Result<(), ConfigError> {
        let s = self.strategy;
        check(self.rounds >= 1, "federation.rounds", || {
            "must be >= 1".into()
        })?;
        if let Some(k) = self.sites_per_round {
            check(k >= 1, "federation.sites-per-round", || {
                "must be >= 1".into()
            })?;
            check(
                !matches!(
                    s,
                    StrategyKind::Cyclic | StrategyKind::Pooled | StrategyKind::Local
                ),
                "federation.sites-per-round",
                || format!("does not apply to strategy \"{}\"", s.as_str()),
            )?;
        }
        match (s, self.mu) {
            (StrategyKind::Fedprox, None) => {
                return Err(ConfigError::new(
                    "federation.mu",
                    "is required for strategy \"fedprox\" (e.g. mu = 0.01)",
                ));
            }
            (StrategyKind::Fedprox, Some(mu)) => positive(mu, "federation.mu")?,
            (_, Some(_)) => {
                return Err(ConfigError::new(
                    "federation.mu",
                    format!("is only for fedprox, not \"{}\"", s.as_str()),
                ));
            }
            _ => {}
        }
        let takes_server_lr = s.is_fedopt() || s == StrategyKind::Scaffold;
        match self.server_lr {
            Some(lr) if takes_server_lr => positive(lr, "federation.server-lr")?,
            Some(_) => {
                return Err(ConfigError::new(
                    "federation.server-lr",
                    format!(
                        "is only for scaffold, fedadam, fedyogi and fedadagrad, not \"{}\"",
                        s.as_str()
                    ),
                ));
            }
            None if s.is_fedopt() => {
                return Err(ConfigError::new(
                    "federation.server-lr",
                    format!("is required for strategy \"{}\"", s.as_str()),
                ));
            }
            None => {}
        }
        unit_interval(self.beta1, "federation.beta1")?;
        unit_interval(self.beta2, "federation.beta2")?;
        positive(self.tau, "federation.tau")?;
        match (s, &self.local_site) {
            (StrategyKind::Local, None) => Err(ConfigError::new(
                "federation.local-site",
                "is required for strategy \"local\" (the name of the site that trains)",
            )),
            (StrategyKind::Local, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(ConfigError::new(
                "federation.local-site",
                format!("is only for strategy \"local\", not \"{}\"", s.as_str()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_experiment_is_valid_and_round_trips_through_toml() {
        let spec = ExperimentSpec::default_heart();
        spec.validate().unwrap();
        let text = toml::to_string(&spec).unwrap();
        let back: ExperimentSpec = toml::from_str(&text).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = toml::from_str::<ExperimentSpec>(
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlearning-rate = 0.1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("learning-rate"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let mut spec = ExperimentSpec::default_heart();
        spec.train.lr = -1.0;
        assert_eq!(spec.validate().unwrap_err().key, "train.lr");
        let mut spec = ExperimentSpec::default_heart();
        spec.federation.strategy = StrategyKind::Fedadam;
        assert_eq!(spec.validate().unwrap_err().key, "federation.server-lr");
        spec.federation.server_lr = Some(0.01);
        spec.validate().unwrap();
        spec.federation.mu = Some(0.1);
        assert_eq!(spec.validate().unwrap_err().key, "federation.mu");
        let mut spec = ExperimentSpec::default_heart();
        spec.train.local_epochs = Some(1);
        assert_eq!(spec.validate().unwrap_err().key, "train.local-epochs");
        let mut spec = ExperimentSpec::default_heart();
        spec.data.dataset = DatasetKind::BreastCancer;
        assert_eq!(spec.validate().unwrap_err().key, "data.partition");
    }
    /// Every key of the config types, as dotted paths, from a spec where every optional
    /// key is set (built without `..Default::default()`, so a new field must be added
    /// here and therefore documented).
    fn all_keys() -> Vec<String> {
        let spec = ExperimentSpec {
            name: "n".into(),
            seed: 1,
            data: DataSpec {
                dataset: DatasetKind::Csv,
                path: Some("x.csv".into()),
                numeric: vec!["a".into()],
                categorical: vec![CategoricalSpec {
                    column: "c".into(),
                    reference: "r".into(),
                    levels: vec!["l".into()],
                }],
                target: Some(TargetSpec {
                    column: "t".into(),
                    rule: "> 0".into(),
                }),
                site_column: Some("s".into()),
                missing_values: vec![String::new()],
                missing: MissingPolicy::Impute,
                test_fraction: 0.3,
                split_seed: 1,
                partition: Some(PartitionSpec {
                    kind: PartitionKind::Dirichlet,
                    sites: 2,
                    alpha: 1.0,
                    seed: 1,
                    min_rows: 1,
                }),
                standardize: StandardizeKind::Global,
            },
            model: ModelSpec {
                kind: ModelKind::Mlp,
                hidden: vec![3],
                activation: Activation::Tanh,
            },
            train: TrainSpec {
                optimizer: OptimizerKind::Adam,
                lr: 0.1,
                momentum: 0.1,
                weight_decay: 0.1,
                beta1: 0.9,
                beta2: 0.9,
                eps: 1e-8,
                batch_size: 2,
                local_steps: Some(1),
                local_epochs: Some(1),
                loss: LossKind::Bce,
            },
            federation: FederationSpec {
                strategy: StrategyKind::Fedprox,
                rounds: 2,
                sites_per_round: Some(1),
                mu: Some(0.1),
                server_lr: Some(0.1),
                beta1: 0.9,
                beta2: 0.9,
                tau: 0.1,
                local_site: Some("a".into()),
                fine_tune_steps: 1,
                eval_every: 1,
            },
        };
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        out.push(key.clone());
                        walk(&key, v, out);
                    }
                }
                toml::Value::Array(a) => {
                    if let Some(first @ toml::Value::Table(_)) = a.first() {
                        walk(prefix, first, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk("", &toml::Value::try_from(&spec).unwrap(), &mut out);
        // Sections themselves are headings of their own, not keys.
        out.retain(|k| !["data", "model", "train", "federation"].contains(&k.as_str()));
        out.sort();
        out
    }

    #[test]
    fn docs_cover_every_key() {
        let doc = include_str!("../../../docs/config.md");
        let documented: Vec<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("### `"))
            .filter_map(|l| l.strip_suffix('`'))
            .map(str::to_string)
            .collect();
        let keys = all_keys();
        assert!(keys.len() > 40, "{keys:?}");
        for k in &keys {
            assert!(
                documented.contains(k),
                "docs/config.md does not document `{k}`"
            );
        }
        for d in &documented {
            assert!(
                keys.contains(d),
                "docs/config.md documents `{d}`, which the config types do not have"
            );
        }
    }
}
