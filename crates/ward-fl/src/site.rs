//! The site side: [`SiteHandle`] and its in-process implementation.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ward_core::{Metrics, Params, Update};
use ward_data::SiteData;
use ward_data::augment::Augmenter;
use ward_models::dp::{DpSgd, DpSgdConfig, train_local_dp};
use ward_models::{
    BatchStream, Evaluation, GradientEngine, LocalFit, ModelArch, Optimizer, OptimizerConfig,
    evaluate, train_local_augmented,
};

use ward_secagg::{
    AdvertiseKeys, ForwardedShares, MaskedInput, NeighbourKeys, SecAggClient, ShareKeys,
    UnmaskRequest, UnmaskResponse,
};

use crate::FlError;
use crate::secagg::{SecAggFitReport, SecAggInstructions};

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
    /// q-FFL: also report the mean loss on the site's training data under the model it
    /// was sent, before local training, as the metric
    /// [`START_LOSS`](crate::strategy::START_LOSS).
    pub report_start_loss: bool,
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
    /// Switches the site to secure aggregation: from now on the coordinator asks for
    /// the protocol steps below instead of [`SiteHandle::fit`] (sites that cannot run
    /// it refuse).
    fn enable_secagg(&mut self) -> Result<(), FlError> {
        Err(refuse_secagg(self.name()))
    }
    /// Secure round, step 1: trains from `global` like [`SiteHandle::fit`], and keeps
    /// `secagg.weight * (local - global)` at the site for the masked input; answers with
    /// public facts only (examples, training loss, values clipped to the quantiser's
    /// range). Refuses an update with NaN or infinite values (it is not sent).
    fn secagg_fit(
        &mut self,
        global: &Params,
        ins: &FitInstructions,
        secagg: &SecAggInstructions,
    ) -> Result<SecAggFitReport, FlError> {
        let _ = (global, ins, secagg);
        Err(refuse_secagg(self.name()))
    }
    /// Step 2: the round's public keys (SecAgg+ stage 1).
    fn secagg_advertise_keys(&mut self) -> Result<AdvertiseKeys, FlError> {
        Err(refuse_secagg(self.name()))
    }
    /// Step 3: Shamir shares of the site's secrets, encrypted for its neighbours.
    fn secagg_share_keys(&mut self, msg: &NeighbourKeys) -> Result<ShareKeys, FlError> {
        let _ = msg;
        Err(refuse_secagg(self.name()))
    }
    /// Step 4: the kept update, quantised and masked.
    fn secagg_masked_input(&mut self, msg: &ForwardedShares) -> Result<MaskedInput, FlError> {
        let _ = msg;
        Err(refuse_secagg(self.name()))
    }
    /// Step 5: the shares the server asks for to remove the masks.
    fn secagg_unmask(&mut self, msg: &UnmaskRequest) -> Result<UnmaskResponse, FlError> {
        let _ = msg;
        Err(refuse_secagg(self.name()))
    }
}

fn refuse_secagg(site: &str) -> FlError {
    FlError::Site {
        site: site.to_string(),
        reason: "this site does not run secure aggregation".into(),
    }
}

/// A site's secure-aggregation state within one round (never checkpointed: rounds
/// are checkpointed between, and each round starts afresh).
#[derive(Default)]
struct SecAggSession {
    /// The round's settings, this site's number and weight.
    ins: Option<SecAggInstructions>,
    /// `weight * (local - global)`, kept until the masked input.
    update: Option<Vec<f32>>,
    client: Option<SecAggClient>,
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
    /// Dropout: the stream each local fit draws its mask seed from (models with
    /// dropout only).
    dropout: Option<ChaCha8Rng>,
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
    /// Seed of the site's secure-aggregation keys (drawn from the run seed's site
    /// stream; each round's key seed is a ChaCha20 stream of it, numbered by the
    /// round). A deployed site would draw its keys from the operating system.
    secagg_seed: u64,
    /// Secure aggregation, when enabled.
    secagg: Option<SecAggSession>,
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
        let secagg_seed = rand::Rng::next_u64(&mut rng);
        let dropout_seed = rand::Rng::next_u64(&mut rng);
        let state = SiteState {
            stream: BatchStream::new(data.train.y.len(), batch_size, stream_seed),
            optimizer: Optimizer::new(opt_config),
            control: None,
            augment: None,
            local_norm: None,
            dp: None,
            dropout: (arch.dropout() > 0.0).then(|| ChaCha8Rng::seed_from_u64(dropout_seed)),
        };
        Self {
            name: data.name.clone(),
            data,
            arch,
            engine,
            opt_config,
            fedbn: Vec::new(),
            dp_seed,
            secagg_seed,
            secagg: None,
            state,
        }
    }

    /// The engine that computes this site's gradients, e.g. `cpu:native`.
    pub fn backend(&self) -> String {
        self.engine.name()
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

    fn session(&mut self) -> Result<&mut SecAggSession, FlError> {
        let name = self.name.clone();
        self.secagg.as_mut().ok_or_else(|| FlError::Site {
            site: name,
            reason: "secure aggregation is not enabled at this site".into(),
        })
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
        let start_loss = if ins.report_start_loss {
            Some(
                evaluate(self.engine.as_mut(), x0, &self.data.train, self.arch.loss())
                    .map_err(|e| FlError::site(&self.name, e))?
                    .loss,
            )
        } else {
            None
        };
        let fit = LocalFit {
            steps,
            prox: ins.prox_mu.map(|mu| (mu, x0)),
            correction: correction.as_deref(),
            dropout_seed: self.state.dropout.as_mut().map(rand::Rng::next_u64),
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
        if let Some(f) = start_loss {
            metrics.insert(crate::strategy::START_LOSS.into(), f);
        }
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
                    // A copy of the stream: fine-tuning leaves the site's state as it was.
                    dropout_seed: self.state.dropout.clone().as_mut().map(rand::Rng::next_u64),
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
        if s.dropout.is_some() != self.state.dropout.is_some() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason:
                    "the checkpoint and this run differ in model.dropout (on in one, off in the other)"
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
        if self.state.dropout.is_some() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason: "DP-SGD's per-example gradient kernels carry no dropout masks: set model.dropout = 0".into(),
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

    fn enable_secagg(&mut self) -> Result<(), FlError> {
        if !self.fedbn.is_empty() {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason: "FedBN keeps layers at the site; secure aggregation sums whole updates"
                    .into(),
            });
        }
        self.secagg = Some(SecAggSession::default());
        Ok(())
    }

    fn secagg_fit(
        &mut self,
        global: &Params,
        ins: &FitInstructions,
        secagg: &SecAggInstructions,
    ) -> Result<SecAggFitReport, FlError> {
        // A new round: nothing of the last one is kept.
        *self.session()? = SecAggSession::default();
        let u = self.fit(global, ins)?;
        let w = secagg.weight;
        let update: Vec<f32> = u
            .params
            .values()
            .iter()
            .zip(global.values())
            .map(|(&x, &g)| ((f64::from(x) - f64::from(g)) * w) as f32)
            .collect();
        if let Some(i) = update.iter().position(|v| !v.is_finite()) {
            return Err(FlError::Site {
                site: self.name.clone(),
                reason: format!(
                    "the weighted update has the non-finite value {} at index {i}: not sent",
                    update[i]
                ),
            });
        }
        let clip = secagg.params.quantizer.clip;
        let clipped_values = update.iter().filter(|v| v.abs() > clip).count();
        let session = self.session()?;
        session.update = Some(update);
        session.ins = Some(secagg.clone());
        Ok(SecAggFitReport {
            num_examples: u.num_examples,
            train_loss: u.metrics.get("train_loss").copied(),
            clipped_values,
        })
    }

    fn secagg_advertise_keys(&mut self) -> Result<AdvertiseKeys, FlError> {
        let name = self.name.clone();
        let base = self.secagg_seed;
        let session = self.session()?;
        let ins = session.ins.as_ref().ok_or_else(|| FlError::Site {
            site: name.clone(),
            reason: "secure aggregation: advertise keys before the round's fit".into(),
        })?;
        // Key material: a ChaCha20 stream of the site's seed, numbered by the round.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(base);
        rng.set_stream(ins.params.round);
        let mut seed = [0u8; 32];
        rand::Rng::fill_bytes(&mut rng, &mut seed);
        let parallel = ins.params.dim >= 1 << 16;
        let mut client = SecAggClient::new(&ins.params, ins.index, seed)
            .map_err(|e| FlError::site(&name, e))?
            .parallel(parallel);
        let msg = client
            .advertise_keys()
            .map_err(|e| FlError::site(&name, e))?;
        session.client = Some(client);
        Ok(msg)
    }

    fn secagg_share_keys(&mut self, msg: &NeighbourKeys) -> Result<ShareKeys, FlError> {
        let name = self.name.clone();
        self.client()?
            .share_keys(msg)
            .map_err(|e| FlError::site(&name, e))
    }

    fn secagg_masked_input(&mut self, msg: &ForwardedShares) -> Result<MaskedInput, FlError> {
        let name = self.name.clone();
        let session = self.session()?;
        let update = session.update.take().ok_or_else(|| FlError::Site {
            site: name.clone(),
            reason: "secure aggregation: no update kept for this round".into(),
        })?;
        let client = session.client.as_mut().ok_or_else(|| FlError::Site {
            site: name.clone(),
            reason: "secure aggregation: masked input before advertising keys".into(),
        })?;
        client
            .masked_input(msg, &update)
            .map_err(|e| FlError::site(&name, e))
    }

    fn secagg_unmask(&mut self, msg: &UnmaskRequest) -> Result<UnmaskResponse, FlError> {
        let name = self.name.clone();
        self.client()?
            .unmask(msg)
            .map_err(|e| FlError::site(&name, e))
    }
}

impl InProcessSite {
    /// The round's secure-aggregation client.
    fn client(&mut self) -> Result<&mut SecAggClient, FlError> {
        let name = self.name.clone();
        self.session()?
            .client
            .as_mut()
            .ok_or_else(|| FlError::Site {
                site: name,
                reason: "secure aggregation: a protocol step before advertising keys".into(),
            })
    }
}
