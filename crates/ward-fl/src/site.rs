//! The site side: [`SiteHandle`] and its in-process implementation.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ward_core::{Metrics, Params, Update};
use ward_data::SiteData;
use ward_models::dp::{DpSgd, DpSgdConfig, train_local_dp};
use ward_models::{
    Augmenter, BatchStream, Evaluation, GradientEngine, LocalFit, ModelArch, Optimizer,
    OptimizerConfig, evaluate, train_local_augmented,
};

use crate::FlError;

/// How much local work a round asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalWork {
    /// This many optimizer steps.
    Steps(usize),
    /// This many passes over the site's training data.
    Epochs(usize),
}

/// What the coordinator asks of a site in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct FitInstructions {
    /// The round (from 1).
    pub round: usize,
    /// Local work.
    pub work: LocalWork,
    /// FedProx: the proximal weight mu.
    pub prox_mu: Option<f32>,
    /// SCAFFOLD: the server control variate `c`.
    pub server_control: Option<Params>,
}

/// What the coordinator can ask of a site. Strategies never know whether a site is in
/// this process ([`InProcessSite`]) or behind the network.
pub trait SiteHandle {
    /// The site's name as in the data (e.g. `Cleveland`).
    fn name(&self) -> &str;
    /// Number of training examples (FedAvg's weight; 0 for evaluation-only sites).
    fn num_train(&self) -> usize;
    /// Number of test examples (0: the site is not scored).
    fn num_test(&self) -> usize;
    /// Local training from `global`.
    fn fit(&mut self, global: &Params, ins: &FitInstructions) -> Result<Update, FlError>;
    /// Scores `params` on the site's test split.
    fn evaluate(&mut self, params: &Params) -> Result<Evaluation, FlError>;
    /// Fine-tunes a copy of `global` for `steps` local steps (fresh optimizer, the
    /// site's batch order continued on a copy, so the site's state is untouched) and
    /// scores it on the site's test split.
    fn fine_tune_and_evaluate(
        &mut self,
        global: &Params,
        steps: usize,
    ) -> Result<Evaluation, FlError>;
    /// The model this site uses for `global`: `global` itself, or with the site's own
    /// layers where it keeps some (FedBN).
    fn personalised(&self, global: &Params) -> Params {
        global.clone()
    }
    /// Whether the site keeps some layers of its own (FedBN), so that its model differs
    /// from the global one.
    fn keeps_local_layers(&self) -> bool {
        false
    }
    /// Everything the site keeps between rounds, serialised, for the checkpoint.
    fn save_state(&self) -> Result<Vec<u8>, FlError>;
    /// Restores what [`SiteHandle::save_state`] wrote.
    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError>;
    /// Switches local training to record-level DP-SGD with `config` (sites that
    /// cannot run it refuse).
    fn enable_dp_sgd(&mut self, config: DpSgdConfig) -> Result<(), FlError> {
        let _ = config;
        Err(FlError::Site {
            site: self.name().to_string(),
            reason: "this site does not run DP-SGD".into(),
        })
    }
    /// The site's DP-SGD state (settings, steps taken), if it trains with DP-SGD.
    fn dp_sgd(&self) -> Option<&DpSgd> {
        None
    }
}

/// Site state that survives rounds (and is checkpointed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SiteState {
    stream: BatchStream,
    optimizer: Optimizer,
    /// SCAFFOLD control variate `c_i`.
    control: Option<Vec<f32>>,
    /// Image augmentation and its random stream.
    augment: Option<Augmenter>,
    /// FedBN: this site's normalisation layers (values of `fedbn` ranges, in order),
    /// once it has trained.
    local_norm: Option<Vec<f32>>,
    /// Record-level DP-SGD: its sampling/noise stream and steps taken.
    dp: Option<DpSgd>,
}

/// A site living in this process (simulation): its data, a gradient engine, and its
/// persistent state (batch order, optimizer state, SCAFFOLD control).
pub struct InProcessSite {
    name: String,
    data: SiteData,
    arch: ModelArch,
    engine: Box<dyn GradientEngine>,
    opt_config: OptimizerConfig,
    /// FedBN: value ranges kept at the site (empty: none).
    fedbn: Vec<(usize, usize)>,
    /// Seed of the site's DP-SGD stream (drawn from the run seed's site stream).
    dp_seed: u64,
    state: SiteState,
}

impl std::fmt::Debug for InProcessSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessSite")
            .field("name", &self.name)
            .field("train", &self.data.train.y.len())
            .field("test", &self.data.test.y.len())
            .field("engine", &self.engine.name())
            .finish()
    }
}

impl InProcessSite {
    /// A site over `data`. Its batch order is seeded from `(seed, stream)`: each site of
    /// a run gets its own ChaCha stream of the run seed.
    pub fn new(
        data: SiteData,
        arch: ModelArch,
        engine: Box<dyn GradientEngine>,
        opt_config: OptimizerConfig,
        batch_size: usize,
        seed: u64,
        stream: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let stream_seed = rand::Rng::next_u64(&mut rng);
        let dp_seed = rand::Rng::next_u64(&mut rng);
        let state = SiteState {
            stream: BatchStream::new(data.train.y.len(), batch_size, stream_seed),
            optimizer: Optimizer::new(opt_config),
            control: None,
            augment: None,
            local_norm: None,
            dp: None,
        };
        Self {
            name: data.name.clone(),
            data,
            arch,
            engine,
            opt_config,
            fedbn: Vec::new(),
            dp_seed,
            state,
        }
    }

    /// Augments every training batch with `augment` (images).
    pub fn with_augmenter(mut self, augment: Augmenter) -> Self {
        self.state.augment = (!augment.is_off()).then_some(augment);
        self
    }

    /// FedBN (Li et al. 2021): the values in `ranges` (the model's normalisation
    /// layers) stay at this site. After its first fit the site trains and is scored
    /// with its own values there, whatever the global model holds.
    pub fn with_fedbn(mut self, ranges: Vec<(usize, usize)>) -> Self {
        self.fedbn = ranges;
        self
    }

    /// `params` with this site's FedBN layers, if it keeps any.
    fn personalise(&self, params: &mut Params) {
        if let Some(local) = &self.state.local_norm {
            let v = params.values_mut();
            let mut at = 0;
            for &(a, b) in &self.fedbn {
                v[a..b].copy_from_slice(&local[at..at + (b - a)]);
                at += b - a;
            }
        }
    }

    /// Scores `params` as they are on the test split.
    fn score(&mut self, params: &Params) -> Result<Evaluation, FlError> {
        evaluate(
            self.engine.as_mut(),
            params.values(),
            &self.data.test,
            self.arch.loss(),
        )
        .map_err(|e| FlError::site(&self.name, e))
    }

    fn steps(&self, work: LocalWork) -> usize {
        match work {
            LocalWork::Steps(n) => n,
            LocalWork::Epochs(e) => match &self.state.dp {
                Some(dp) => e * dp.steps_per_pass(),
                None => e * self.state.stream.batches_per_pass(),
            },
        }
    }
}

impl SiteHandle for InProcessSite {
    fn name(&self) -> &str {
        &self.name
    }

    fn num_train(&self) -> usize {
        self.data.train.y.len()
    }

    fn num_test(&self) -> usize {
        self.data.test.y.len()
    }

    fn fit(&mut self, global: &Params, ins: &FitInstructions) -> Result<Update, FlError> {
        self.arch
            .check(global)
            .map_err(|e| FlError::site(&self.name, e))?;
        let steps = self.steps(ins.work);
        let mut params = self.personalised(global);
        let start = params.clone();
        let x0 = start.values();
        let correction: Option<Vec<f32>> = match &ins.server_control {
            Some(c) => {
                if c.len() != global.len() {
                    return Err(FlError::Site {
                        site: self.name.clone(),
                        reason: format!(
                            "server control has {} values, the model {}",
                            c.len(),
                            global.len()
                        ),
                    });
                }
                let ci = self
                    .state
                    .control
                    .get_or_insert_with(|| vec![0.0; global.len()]);
                Some(
                    c.values()
                        .iter()
                        .zip(ci.iter())
                        .map(|(c, ci)| c - ci)
                        .collect(),
                )
            }
            None => None,
        };
        let fit = LocalFit {
            steps,
            prox: ins.prox_mu.map(|mu| (mu, x0)),
            correction: correction.as_deref(),
        };
        let stats = match self.state.dp.as_mut() {
            Some(dp) => train_local_dp(
                self.engine.as_mut(),
                params.values_mut(),
                &self.data.train,
                dp,
                &mut self.state.optimizer,
                &fit,
            ),
            None => train_local_augmented(
                self.engine.as_mut(),
                params.values_mut(),
                &self.data.train,
                &mut self.state.stream,
                &mut self.state.optimizer,
                &fit,
                self.state.augment.as_mut(),
            ),
        }
        .map_err(|e| FlError::site(&self.name, e))?;
        if !self.fedbn.is_empty() {
            let v = params.values();
            self.state.local_norm = Some(
                self.fedbn
                    .iter()
                    .flat_map(|&(a, b)| v[a..b].iter().copied())
                    .collect(),
            );
        }
        // SCAFFOLD option II: c_i+ = c_i - c + (x - y_i) / (K * lr).
        let control_delta = match (&ins.server_control, &mut self.state.control) {
            (Some(c), Some(ci)) => {
                let scale = 1.0 / (steps as f32 * self.opt_config.lr);
                let mut delta = Vec::with_capacity(ci.len());
                for (((ci, &c), &x), &y) in
                    ci.iter_mut().zip(c.values()).zip(x0).zip(params.values())
                {
                    let new = *ci - c + (x - y) * scale;
                    delta.push(new - *ci);
                    *ci = new;
                }
                Some(
                    Params::new(global.layout().clone(), delta)
                        .map_err(|e| FlError::site(&self.name, e))?,
                )
            }
            _ => None,
        };
        let mut metrics = Metrics::new();
        metrics.insert("train_loss".into(), stats.mean_loss);
        metrics.insert("steps".into(), stats.steps as f64);
        Ok(Update {
            site: 0,
            params,
            num_examples: self.num_train(),
            metrics,
            control_delta,
        })
    }

    fn evaluate(&mut self, params: &Params) -> Result<Evaluation, FlError> {
        self.arch
            .check(params)
            .map_err(|e| FlError::site(&self.name, e))?;
        let params = self.personalised(params);
        self.score(&params)
    }

    fn fine_tune_and_evaluate(
        &mut self,
        global: &Params,
        steps: usize,
    ) -> Result<Evaluation, FlError> {
        self.arch
            .check(global)
            .map_err(|e| FlError::site(&self.name, e))?;
        let mut params = self.personalised(global);
        if steps > 0 && self.num_train() > 0 {
            let mut stream = self.state.stream.clone();
            let mut augment = self.state.augment.clone();
            let mut opt = Optimizer::new(self.opt_config);
            train_local_augmented(
                self.engine.as_mut(),
                params.values_mut(),
                &self.data.train,
                &mut stream,
                &mut opt,
                &LocalFit {
                    steps,
                    ..LocalFit::default()
                },
                augment.as_mut(),
            )
            .map_err(|e| FlError::site(&self.name, e))?;
        }
        self.score(&params)
    }

    fn personalised(&self, global: &Params) -> Params {
        let mut p = global.clone();
        self.personalise(&mut p);
        p
    }

    fn keeps_local_layers(&self) -> bool {
        !self.fedbn.is_empty()
    }

    fn save_state(&self) -> Result<Vec<u8>, FlError> {
        postcard::to_stdvec(&self.state).map_err(|e| FlError::site(&self.name, e))
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError> {
        let s: SiteState = postcard::from_bytes(state).map_err(|e| FlError::Site {
            site: self.name.clone(),
            reason: format!("checkpointed site state does not decode: {e}"),
        })?;
        if s.stream.rows() != self.num_train() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason: format!(
                    "checkpointed batch order covers {} rows, the site has {} training rows (different data?)",
                    s.stream.rows(),
                    self.num_train()
                ),
            });
        }
        if s.dp.is_some() != self.state.dp.is_some() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason:
                    "the checkpoint and this run differ in DP-SGD (on in one, off in the other)"
                        .into(),
            });
        }
        self.state = s;
        Ok(())
    }

    fn enable_dp_sgd(&mut self, config: DpSgdConfig) -> Result<(), FlError> {
        if self.arch.has_batch_norm() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason: format!(
                    "DP-SGD clips each example's gradient, but the model {} has BatchNorm, whose batch statistics mix examples: use model.norm = \"group\" or \"none\"",
                    self.arch.describe()
                ),
            });
        }
        if self.state.augment.is_some() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason: "DP-SGD with train.augment is not supported".into(),
            });
        }
        let dp = DpSgd::new(config, self.num_train(), self.dp_seed)
            .map_err(|e| FlError::site(&self.name, e))?;
        self.state.dp = Some(dp);
        Ok(())
    }

    fn dp_sgd(&self) -> Option<&DpSgd> {
        self.state.dp.as_ref()
    }
}
