//! The site side: [`SiteHandle`] and its in-process implementation.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ward_core::{Metrics, Params, Update};
use ward_data::SiteData;
use ward_models::{
    BatchStream, DenseArch, Evaluation, GradientEngine, LocalFit, Optimizer, OptimizerConfig,
    evaluate, train_local,
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
    /// Everything the site keeps between rounds, serialised, for the checkpoint.
    fn save_state(&self) -> Result<Vec<u8>, FlError>;
    /// Restores what [`SiteHandle::save_state`] wrote.
    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError>;
}

/// Site state that survives rounds (and is checkpointed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SiteState {
    stream: BatchStream,
    optimizer: Optimizer,
    /// SCAFFOLD control variate `c_i`.
    control: Option<Vec<f32>>,
}

/// A site living in this process (simulation): its data, a gradient engine, and its
/// persistent state (batch order, optimizer state, SCAFFOLD control).
pub struct InProcessSite {
    name: String,
    data: SiteData,
    arch: DenseArch,
    engine: Box<dyn GradientEngine>,
    opt_config: OptimizerConfig,
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
        arch: DenseArch,
        engine: Box<dyn GradientEngine>,
        opt_config: OptimizerConfig,
        batch_size: usize,
        seed: u64,
        stream: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let stream_seed = rand::Rng::next_u64(&mut rng);
        let state = SiteState {
            stream: BatchStream::new(data.train.y.len(), batch_size, stream_seed),
            optimizer: Optimizer::new(opt_config),
            control: None,
        };
        Self {
            name: data.name.clone(),
            data,
            arch,
            engine,
            opt_config,
            state,
        }
    }

    fn steps(&self, work: LocalWork) -> usize {
        match work {
            LocalWork::Steps(n) => n,
            LocalWork::Epochs(e) => e * self.state.stream.batches_per_pass(),
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
        let mut params = global.clone();
        let x0 = global.values();
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
        let stats = train_local(
            self.engine.as_mut(),
            params.values_mut(),
            &self.data.train,
            &mut self.state.stream,
            &mut self.state.optimizer,
            &fit,
        )
        .map_err(|e| FlError::site(&self.name, e))?;
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
        evaluate(
            self.engine.as_mut(),
            params.values(),
            &self.data.test,
            self.arch.loss,
        )
        .map_err(|e| FlError::site(&self.name, e))
    }

    fn fine_tune_and_evaluate(
        &mut self,
        global: &Params,
        steps: usize,
    ) -> Result<Evaluation, FlError> {
        self.arch
            .check(global)
            .map_err(|e| FlError::site(&self.name, e))?;
        let mut params = global.clone();
        if steps > 0 && self.num_train() > 0 {
            let mut stream = self.state.stream.clone();
            let mut opt = Optimizer::new(self.opt_config);
            train_local(
                self.engine.as_mut(),
                params.values_mut(),
                &self.data.train,
                &mut stream,
                &mut opt,
                &LocalFit {
                    steps,
                    ..LocalFit::default()
                },
            )
            .map_err(|e| FlError::site(&self.name, e))?;
        }
        self.evaluate(&params)
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
        self.state = s;
        Ok(())
    }
}
