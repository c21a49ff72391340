//! The experiment file (`experiment.toml`): typed, strict, and checked before training.
//!
//! Every struct denies unknown keys and uses kebab-case names. Parsing gives the raw
//! [`ExperimentSpec`]; [`ExperimentSpec::check`] checks ranges and consistency, names
//! the offending key on error, and returns a [`CheckedSpec`], the type later code
//! takes. [`load_file`] and [`load_str`] do both and place errors in the file
//! (`file:line: key: reason`). Every key is documented in `docs/config.md`; a
//! test keeps the two in step.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

mod attack;
mod checked;
mod data;
mod evidence;
mod federation;
mod load;
mod model;
mod privacy;
mod robust;
mod tagged;
mod train;

pub use attack::*;
pub use checked::CheckedSpec;
pub use data::*;
pub use evidence::*;
pub use federation::*;
pub use model::*;
pub use privacy::*;
pub use train::*;

pub use load::{DEFAULT_SOURCE, LoadError, Loaded, default_experiment, load_file, load_str};
pub use robust::{
    AggregationRule, AggregatorKind, CenteredClippingOptions, ClippedMeanOptions, DncOptions,
    FlameOptions, FltrustOptions, GeometricMedianOptions, MultiKrumOptions, NoOptions,
    PreAggregatorSpec, RobustSpec,
};

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
    /// The aggregation rule (FedAvg unless a robust rule is chosen).
    #[serde(default)]
    pub robust: RobustSpec,
    /// A simulated poisoning attack (none unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<AttackSpec>,
    /// Differential privacy: record-level DP-SGD at the sites and/or site-level central
    /// DP at the server (none unless given).
    #[serde(default, skip_serializing_if = "PrivacySpec::is_off")]
    pub privacy: PrivacySpec,
    /// What the run measures about its predictions after training, and its
    /// calibration split (defaults unless given).
    #[serde(default, skip_serializing_if = "EvidenceSpec::is_default")]
    pub evidence: EvidenceSpec,
}

fn default_name() -> String {
    "experiment".into()
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
            robust: RobustSpec::default(),
            attack: None,
            privacy: PrivacySpec::default(),
            evidence: EvidenceSpec::default(),
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
        self.robust.validate()?;
        let image = self.data.dataset.is_image();
        check(image == self.model.is_conv(), "model.kind", || {
            if image {
                format!(
                    "{} holds images: use kind = \"cnn\" or \"resnet18\"",
                    self.data.dataset.as_str()
                )
            } else {
                format!(
                    "{} is a table: use kind = \"logistic\" or \"mlp\"",
                    self.data.dataset.as_str()
                )
            }
        })?;
        check(
            image || self.train.augment.is_off(),
            "train.augment",
            || "augmentation is for image datasets".into(),
        )?;
        if self.federation.strategy == StrategyKind::Fedbn {
            let norm = self
                .model
                .norm
                .unwrap_or(if self.model.kind == ModelKind::Resnet18 {
                    NormKind::Batch
                } else {
                    NormKind::None
                });
            check(norm == NormKind::Batch, "federation.strategy", || {
                format!(
                    "fedbn keeps BatchNorm layers at each site, but this model has {}: set model.norm = \"batch\"",
                    match norm {
                        NormKind::Group => "GroupNorm (FedBN with GroupNorm is not defined)",
                        _ => "no normalisation layers",
                    }
                )
            })?;
        }
        self.validate_qffl_combinations()?;
        check(
            self.model.dropout == 0.0 || self.privacy.dp_sgd.is_none(),
            "model.dropout",
            || {
                "DP-SGD's per-example gradient kernels have no dropout masks: set model.dropout = 0 or remove [privacy.dp-sgd]".into()
            },
        )?;
        self.privacy.validate(self)?;
        self.evidence.validate()?;
        check(
            self.evidence.group_column.is_none() || !image,
            "evidence.group-column",
            || "groups are read from a table column; this dataset holds images".into(),
        )?;
        if let Some(a) = &self.attack {
            a.validate()?;
            let rule = self.robust.aggregator();
            check(
                !(a.kind() == AttackKind::FangTrim
                    && matches!(
                        rule,
                        AggregatorKind::Krum | AggregatorKind::MultiKrum | AggregatorKind::Bulyan
                    )),
                "attack.kind",
                || {
                    format!(
                        "fang-trim is Fang et al.'s attack on trimmed mean and median; against {rule} (Krum family) it measures nothing the paper claims"
                    )
                },
            )?;
            if matches!(
                self.federation.strategy,
                StrategyKind::Pooled | StrategyKind::Local
            ) {
                return Err(ConfigError::new(
                    "attack.kind",
                    format!(
                        "attacks need a federation; strategy \"{}\" is a baseline",
                        self.federation.strategy.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl ExperimentSpec {
    /// q-FFL weighs each site's update by the site's own training loss and the update's
    /// norm, both seen by the server in the clear: refused with secure aggregation
    /// (the server sees only a sum), central DP and DP-SGD (the loss is not noised) and
    /// robust rules (they replace the aggregation q-FFL is).
    fn validate_qffl_combinations(&self) -> Result<(), ConfigError> {
        if self.federation.strategy != StrategyKind::Qffl {
            return Ok(());
        }
        check(self.privacy.secagg.is_none(), "privacy.secagg", || {
            "federation.strategy = \"qffl\" needs each site's loss and update norm, which secure aggregation hides: the two are refused together".into()
        })?;
        check(self.privacy.central.is_none(), "privacy.central", || {
            "federation.strategy = \"qffl\" weighs updates by each site's un-noised training loss, so central DP's guarantee would not hold: the two are refused together".into()
        })?;
        check(self.privacy.dp_sgd.is_none(), "privacy.dp-sgd", || {
            "federation.strategy = \"qffl\" sends each site's training loss to the server without noise, outside DP-SGD's accounting: the two are refused together".into()
        })?;
        let rule = self.robust.aggregator();
        check(
            rule == AggregatorKind::Fedavg && self.robust.pre.is_empty(),
            "robust.aggregator",
            || {
                format!(
                    "federation.strategy = \"qffl\" is its own aggregation rule; it cannot run with robust.aggregator = \"{}\"{} (use \"fedavg\")",
                    rule.as_str(),
                    if self.robust.pre.is_empty() {
                        ""
                    } else {
                        " or pre-aggregators"
                    }
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `federation.q` and `federation.qffl-lipschitz`: required / ranged / only for qffl,
    /// and qffl refused with every mechanism that hides or replaces per-site
    /// aggregation, each error naming its key.
    #[test]
    fn qffl_keys_and_refusals_name_their_key() {
        let with = |extra: &str| -> Result<ExperimentSpec, ConfigError> {
            let spec: ExperimentSpec =
                toml::from_str(&format!("[data]\ndataset = \"fed-heart-disease\"\n{extra}"))
                    .unwrap();
            spec.validate().map(|()| spec)
        };
        let key = |extra: &str| with(extra).unwrap_err().key;
        let ok = with("[federation]\nstrategy = \"qffl\"\nq = 0").unwrap();
        assert_eq!(ok.federation.qffl(0.01), Some((0.0, 100.0)));
        with("[federation]\nstrategy = \"qffl\"\nq = 2.5\nqffl-lipschitz = 3").unwrap();
        assert_eq!(key("[federation]\nstrategy = \"qffl\""), "federation.q");
        assert_eq!(
            key("[federation]\nstrategy = \"qffl\"\nq = -0.5"),
            "federation.q"
        );
        assert_eq!(
            key("[federation]\nstrategy = \"qffl\"\nq = inf"),
            "federation.q"
        );
        assert_eq!(
            key("[federation]\nstrategy = \"qffl\"\nq = nan"),
            "federation.q"
        );
        assert_eq!(
            key("[federation]\nstrategy = \"qffl\"\nq = 1\nqffl-lipschitz = 0"),
            "federation.qffl-lipschitz"
        );
        assert_eq!(key("[federation]\nq = 1"), "federation.q");
        assert_eq!(
            key("[federation]\nqffl-lipschitz = 1"),
            "federation.qffl-lipschitz"
        );
        let qffl = "[federation]\nstrategy = \"qffl\"\nq = 1\n";
        for (extra, want) in [
            ("[privacy.secagg]\n", "privacy.secagg"),
            (
                "[privacy.central]\nclip = 1.0\nnoise-multiplier = 1.0\n",
                "privacy.central",
            ),
            (
                "[privacy.dp-sgd]\nclip = 1.0\nnoise-multiplier = 1.0\n",
                "privacy.dp-sgd",
            ),
            ("[robust]\naggregator = \"median\"\n", "robust.aggregator"),
            ("[robust]\npre = [\"nnm\"]\nf = 1\n", "robust.aggregator"),
        ] {
            let e = with(&format!("{qffl}{extra}")).unwrap_err();
            assert_eq!(e.key, want, "{extra}: {e}");
            assert!(e.to_string().contains("qffl"), "{e}");
        }
    }

    #[test]
    fn default_experiment_is_valid_and_round_trips_through_toml() {
        let spec = ExperimentSpec::default_heart();
        spec.validate().unwrap();
        let text = toml::to_string(&spec).unwrap();
        let back: ExperimentSpec = toml::from_str(&text).unwrap();
        assert_eq!(back, spec);
    }

    /// `[privacy.secagg]`: defaults from an empty table, ranges named by key, and
    /// every combination that needs individual updates refused naming
    /// `privacy.secagg` and the other key.
    #[test]
    fn secagg_defaults_ranges_and_refusals_name_their_key() {
        let with = |extra: &str| -> ExperimentSpec {
            toml::from_str(&format!(
                "[data]\ndataset = \"fed-heart-disease\"\n{extra}\n[privacy.secagg]\n"
            ))
            .unwrap()
        };
        let spec = with("");
        // The library's defaults (ward_privacy::secagg::Quantizer::default: clip 8,
        // 22 bits; MaskPrg::default: ChaCha12).
        assert_eq!(spec.privacy.secagg, Some(SecAggSpec::default()));
        assert_eq!(SecAggSpec::default().clip, 8.0);
        assert_eq!(SecAggSpec::default().bits, 22);
        spec.validate().unwrap();
        let bad = |f: &dyn Fn(&mut SecAggSpec)| {
            let mut spec = with("");
            f(spec.privacy.secagg.as_mut().unwrap());
            spec.validate().unwrap_err()
        };
        assert_eq!(bad(&|s| s.clip = 0.0).key, "privacy.secagg.clip");
        assert_eq!(bad(&|s| s.clip = f64::NAN).key, "privacy.secagg.clip");
        assert_eq!(bad(&|s| s.bits = 32).key, "privacy.secagg.bits");
        assert_eq!(bad(&|s| s.bits = 0).key, "privacy.secagg.bits");
        assert_eq!(
            bad(&|s| s.neighbours = Some(0)).key,
            "privacy.secagg.neighbours"
        );
        assert_eq!(
            bad(&|s| s.threshold = Some(1)).key,
            "privacy.secagg.threshold"
        );
        let e = bad(&|s| {
            s.neighbours = Some(2);
            s.threshold = Some(4);
        });
        assert_eq!(e.key, "privacy.secagg.threshold");
        assert_eq!(bad(&|s| s.dropout = 1.0).key, "privacy.secagg.dropout");
        assert_eq!(bad(&|s| s.dropout = -0.1).key, "privacy.secagg.dropout");
        let refused = |extra: &str, want: &str| {
            let e = with(extra).validate().unwrap_err();
            assert_eq!(e.key, "privacy.secagg", "{extra}: {e}");
            assert!(e.to_string().contains(want), "{extra}: {e}");
        };
        refused(
            "[robust]\naggregator = \"krum\"\nf = 1",
            "robust.aggregator = \"krum\"",
        );
        refused(
            "[robust]\naggregator = \"mean\"",
            "robust.aggregator = \"mean\"",
        );
        refused("[robust]\npre = [\"nnm\"]\nf = 1", "pre-aggregators");
        refused("[attack]\nkind = \"sign-flip\"\nf = 1", "[attack]");
        refused(
            "[privacy.central]\nclip = 1.0\nnoise-multiplier = 1.0",
            "[privacy.central]",
        );
        refused(
            "[federation]\nstrategy = \"scaffold\"\nserver-lr = 1.0",
            "scaffold",
        );
        refused("[federation]\nstrategy = \"pooled\"", "baseline");
        refused("[federation]\nstrategy = \"cyclic\"", "at least 2 sites");
        let e = with("[federation]\nsites-per-round = 1")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "federation.sites-per-round");
        // DP-SGD at the sites with masking on top is fine.
        with("[privacy.dp-sgd]\nclip = 1.0\nnoise-multiplier = 1.0")
            .validate()
            .unwrap();
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

    #[test]
    fn robust_and_attack_settings_are_checked() {
        // Parse errors (a key of another rule) and check errors alike name the key.
        let parse = |t: &str| {
            let text = format!("[data]\ndataset = \"fed-heart-disease\"\n{t}");
            load_str("x.toml", &text, &[], ".".into())
                .map(|_| ())
                .map_err(|e| e.as_config().expect("a config error").key.clone())
        };
        assert_eq!(
            parse("[robust]\naggregator = \"krum\"\n"),
            Err("robust.f".into())
        );
        assert_eq!(parse("[robust]\naggregator = \"krum\"\nf = 1\n"), Ok(()));
        // median takes f optionally (it then refuses rounds with n < 2f+1).
        assert_eq!(parse("[robust]\naggregator = \"median\"\nf = 1\n"), Ok(()));
        assert_eq!(
            parse("[robust]\naggregator = \"mean\"\nf = 1\n"),
            Err("robust.f".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"median\"\npre = [\"bucketing:0\"]\n"),
            Err("robust.pre[0]".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"clipped-mean\"\n"),
            Err("robust.tau".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"dnc\"\n"),
            Err("robust.f".into())
        );
        assert_eq!(
            parse(
                "[robust]\naggregator = \"dnc\"\nf = 1\nsubsample-dim = 100\nfilter-fraction = 1.0\niterations = 2\nseed = 3\n"
            ),
            Ok(())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"median\"\nseed = 3\n"),
            Err("robust.seed".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"flame\"\nlambda = -1.0\n"),
            Err("robust.lambda".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"signguard\"\nlambda = 0.1\n"),
            Err("robust.lambda".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"fltrust\"\n"),
            Err("robust.root-samples".into())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"fltrust\"\nroot-samples = 50\n"),
            Ok(())
        );
        assert_eq!(
            parse("[robust]\naggregator = \"krum\"\nf = 1\nroot-samples = 50\n"),
            Err("robust.root-samples".into())
        );
        assert_eq!(
            parse("[attack]\nkind = \"alie\"\nz = 1.0\n"),
            Err("attack.f".into())
        );
        assert_eq!(
            parse("[attack]\nkind = \"alie\"\nf = 1\n"),
            Err("attack.z".into())
        );
        assert_eq!(parse("[attack]\nkind = \"alie\"\nf = 1\nz = 1.5\n"), Ok(()));
        assert_eq!(
            parse("[attack]\nkind = \"alie\"\nf = 1\nz = 1.0\nstd = 1.0\n"),
            Err("attack.std".into())
        );
        assert_eq!(
            parse("[attack]\nkind = \"gaussian\"\nf = 1\nscale = 0.0\n"),
            Err("attack.scale".into())
        );
        // Fang et al.'s trimmed-mean attack is refused against the Krum family.
        assert_eq!(parse("[attack]\nkind = \"fang-trim\"\nf = 1\n"), Ok(()));
        for rule in ["krum", "multi-krum", "bulyan"] {
            assert_eq!(
                parse(&format!(
                    "[robust]\naggregator = \"{rule}\"\nf = 1\n[attack]\nkind = \"fang-trim\"\nf = 1\n"
                )),
                Err("attack.kind".into()),
                "{rule}"
            );
        }
        assert_eq!(
            parse(
                "[attack]\nkind = \"model-replacement\"\nf = 1\ntarget = 0\nrate = 0.5\ntrigger = [{ feature = 0, value = 3.0 }]\n"
            ),
            Ok(())
        );
        assert_eq!(
            parse("[attack]\nkind = \"backdoor\"\nsites = [\"Hungary\"]\ntarget = 1\nrate = 0.5\n"),
            Err("attack.trigger".into())
        );
        assert_eq!(
            parse("[attack]\nkind = \"swap\"\nf = 1\nfrom-round = 3\n"),
            Err("attack.from-round".into())
        );
        assert_eq!(
            PreAggregatorSpec::parse("clip:2.5"),
            Ok(PreAggregatorSpec::Clip(2.5))
        );
    }
    /// Every key of the config types, as dotted paths, from a spec where every optional
    /// key is set (built without `..Default::default()`, so a new field must be added
    /// here and therefore documented).
    fn all_keys() -> Vec<String> {
        let mut out = Vec::new();
        walk("", &toml::Value::try_from(full_spec()).unwrap(), &mut out);
        // Each aggregation rule takes its own keys: walk one of each with all set.
        for rule in rule_variants() {
            let r = RobustSpec {
                rule,
                ..RobustSpec::default()
            };
            walk("robust", &toml::Value::try_from(&r).unwrap(), &mut out);
        }
        // Each attack takes its own keys too.
        for method in attack_variants() {
            let a = AttackSpec::new(method, 1);
            walk("attack", &toml::Value::try_from(&a).unwrap(), &mut out);
        }
        // Sections themselves are headings of their own, not keys.
        out.retain(|k| {
            ![
                "data",
                "model",
                "train",
                "federation",
                "robust",
                "attack",
                "privacy",
                "evidence",
            ]
            .contains(&k.as_str())
        });
        out.sort();
        out.dedup();
        out
    }

    /// An [`ExperimentSpec`] with every optional key set.
    fn full_spec() -> ExperimentSpec {
        ExperimentSpec {
            name: "n".into(),
            seed: 1,
            data: full_data_spec(),
            model: full_model_spec(),
            train: full_train_spec(),
            federation: full_federation_spec(),
            robust: full_robust_spec(),
            attack: full_attack_spec(),
            privacy: full_privacy_spec(),
            evidence: EvidenceSpec {
                calibration_fraction: Some(0.2),
                group_column: Some("sex".into()),
                ..EvidenceSpec::default()
            },
        }
    }

    /// `[data]` with every optional key set (a csv dataset with images and reader too).
    fn full_data_spec() -> DataSpec {
        DataSpec {
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
            medmnist: Some(MedmnistName::Pathmnist),
            images: Some(ImageDataSpec {
                task: ImageTaskKind::MultiClass,
                classes: Some(2),
                labels: Some(2),
                dims: Dims::D2,
                on_bad_file: BadFilePolicy::Skip,
            }),
            synth: Some(SynthDataSpec::default()),
            reader: Some(ReaderSpec {
                height: 8,
                width: 8,
                depth: Some(2),
                color: ColorKind::Rgb,
                site_folders: true,
                slices: true,
                series: true,
                root: Some("r".into()),
                resample: ResampleKind::Nearest,
                orientation: "LPS".into(),
                spacing: Some([1.0, 1.0, 2.0]),
                fit: FitKind::CropOrPad,
                antialias: false,
                slice_axis: Some(SliceAxisKind::Coronal),
                percentiles: Some([1.0, 99.0]),
                nonzero: true,
                intensity: IntensityKind::Window,
                window: Some([40.0, 400.0]),
                range: Some([0.0, 1.0]),
                window_index: 1,
                spacing_check: SpacingCheckKind::Warn,
            }),
        }
    }

    /// `[model]` with every optional key set.
    fn full_model_spec() -> ModelSpec {
        ModelSpec {
            kind: ModelKind::Mlp,
            hidden: vec![3],
            activation: Activation::Tanh,
            channels: vec![4],
            width: Some(4),
            norm: Some(NormKind::Batch),
            groups: Some(2),
            dropout: 0.25,
        }
    }

    /// `[train]` with every optional key set.
    fn full_train_spec() -> TrainSpec {
        TrainSpec {
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
            augment: AugmentSpec {
                flip: vec![ImageAxis::Width, ImageAxis::Height],
                rotate: 1.0,
                scale: 0.1,
                translate: 0.1,
                elastic: Some(ElasticSpec {
                    control_points: 6,
                    max_displacement: 2.0,
                }),
                gamma: 0.3,
                noise: 0.05,
                bias_field: 0.5,
                blur: 1.0,
                brightness: 0.1,
                contrast: 0.1,
            },
        }
    }

    /// `[federation]` with every optional key set.
    fn full_federation_spec() -> FederationSpec {
        FederationSpec {
            strategy: StrategyKind::Fedprox,
            rounds: 2,
            sites_per_round: Some(1),
            mu: Some(0.1),
            server_lr: Some(0.1),
            beta1: 0.9,
            beta2: 0.9,
            tau: 0.1,
            q: Some(1.0),
            qffl_lipschitz: Some(10.0),
            local_site: Some("a".into()),
            fine_tune_steps: 1,
            eval_every: 1,
        }
    }

    /// `[robust]` with every optional key set (multi-krum options).
    fn full_robust_spec() -> RobustSpec {
        RobustSpec {
            rule: AggregationRule::MultiKrum(MultiKrumOptions { m: Some(2) }),
            f: Some(1),
            pre: vec![PreAggregatorSpec::Nnm],
            seed: Some(1),
        }
    }

    /// `[attack]` with every optional key set (backdoor options).
    fn full_attack_spec() -> Option<AttackSpec> {
        Some(AttackSpec {
            method: AttackMethod::Backdoor(BackdoorOptions {
                target: 1,
                rate: 0.5,
                trigger: vec![TriggerFeature {
                    feature: 0,
                    value: 1.0,
                }],
                patch: Some(PatchSpec {
                    size: 3,
                    value: 1.0,
                }),
            }),
            sites: vec!["a".into()],
            f: Some(1),
            from_round: 1,
        })
    }

    /// `[privacy]` with every optional key set.
    fn full_privacy_spec() -> PrivacySpec {
        PrivacySpec {
            dp_sgd: Some(DpSgdSpec {
                clip: 1.0,
                noise_multiplier: Some(1.0),
                target_epsilon: Some(1.0),
                delta: 1e-5,
                sampling: DpSamplingKind::FixedSize,
                accountant: AccountantChoice::Prv,
                physical_batch: Some(2),
                budget: Some(1.0),
            }),
            central: Some(CentralDpSpec {
                clip: 1.0,
                adaptive: true,
                target_quantile: 0.5,
                clip_lr: 0.2,
                count_noise: Some(1.0),
                noise_multiplier: Some(1.0),
                target_epsilon: Some(1.0),
                delta: 1e-5,
                accountant: AccountantChoice::Rdp,
                budget: Some(1.0),
                site_sampling: SiteSamplingKind::Fixed,
            }),
            secagg: Some(SecAggSpec {
                neighbours: Some(2),
                threshold: Some(2),
                clip: 1.0,
                bits: 16,
                prg: SecAggPrgKind::Chacha8,
                dropout: 0.25,
                allow_minority_threshold: true,
            }),
        }
    }

    /// The aggregation rules other than the one in [`full_robust_spec`], each with all
    /// options set.
    fn rule_variants() -> Vec<AggregationRule> {
        vec![
            AggregationRule::GeometricMedian(GeometricMedianOptions {
                iterations: Some(1),
                eps: Some(1e-8),
            }),
            AggregationRule::CenteredClipping(CenteredClippingOptions {
                tau: Some(1.0),
                iterations: Some(1),
            }),
            AggregationRule::ClippedMean(ClippedMeanOptions {
                tau: 1.0,
                iterations: Some(1),
            }),
            AggregationRule::Fltrust(FltrustOptions {
                root_samples: Some(1),
            }),
            AggregationRule::Dnc(DncOptions {
                iterations: Some(1),
                subsample_dim: Some(1),
                filter_fraction: Some(1.0),
            }),
            AggregationRule::Flame(FlameOptions { lambda: Some(0.1) }),
        ]
    }

    /// The attack methods other than the one in [`full_attack_spec`], each with all
    /// options set.
    fn attack_variants() -> Vec<AttackMethod> {
        vec![
            AttackMethod::SignFlip(ScaleOptions { scale: Some(1.0) }),
            AttackMethod::Gaussian(GaussianOptions { scale: 1.0 }),
            AttackMethod::Alie(AlieOptions { z: 1.0 }),
            AttackMethod::FeatureNoise(NoiseOptions { std: 1.0 }),
            AttackMethod::Ipm(IpmOptions { epsilon: Some(1.0) }),
            AttackMethod::MinMax(PerturbationOptions {
                perturbation: PerturbationKind::Sign,
            }),
            AttackMethod::Swap(SwapOptions { swap: Some([0, 1]) }),
        ]
    }

    /// Pushes the dotted path of every key under `v` (prefixed by `prefix`) onto `out`;
    /// an array of tables is walked through its first element.
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

    /// The bottom-right 2x2 of a 3x3 image: row-major indices 4, 5, 7, 8; a second
    /// channel adds 9 to each.
    #[test]
    fn patch_features_by_hand() {
        let p = PatchSpec {
            size: 2,
            value: 1.0,
        };
        let f: Vec<usize> = p.features(2, 1, 3, 3).iter().map(|t| t.feature).collect();
        assert_eq!(f, vec![4, 5, 7, 8, 13, 14, 16, 17]);
    }

    #[test]
    fn docs_cover_every_key() {
        let doc = include_str!("../../../../docs/config.md");
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
