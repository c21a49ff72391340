//! From an experiment's `[attack]` section to a running attack: which sites are
//! compromised, the data poisoner for their training splits, and the update attack the
//! round engine runs.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ward_core::config::{AttackMethod, AttackSpec, PerturbationKind};
use ward_core::{Params, Update};
use ward_data::SiteData;
use ward_fl::{FlError, UpdateAttack};

use super::data::{DataAttack, Trigger};
use super::model::{AttackInput, ModelAttack, Omniscience, Perturbation};

/// ChaCha stream of the run seed reserved for attacks (site choice and attack noise).
const ATTACK_STREAM: u64 = 0x00A7_7AC4;

/// The compromised sites: `spec.sites` by name, or `spec.f` drawn from the run seed
/// among the training sites. One flag per site, in site order.
pub fn choose_compromised(
    spec: &AttackSpec,
    site_names: &[String],
    trains: &[bool],
    seed: u64,
) -> Result<Vec<bool>, FlError> {
    let mut flags = vec![false; site_names.len()];
    if spec.sites.is_empty() {
        let f = spec.f.unwrap_or(0);
        let candidates: Vec<usize> = (0..site_names.len()).filter(|&i| trains[i]).collect();
        if f == 0 || f >= candidates.len() {
            return Err(FlError::Config(format!(
                "attack.f = {f}: needs 1 <= f < {} (the training sites; at least one must stay honest)",
                candidates.len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(ATTACK_STREAM);
        for i in rand::seq::index::sample(&mut rng, candidates.len(), f) {
            flags[candidates[i]] = true;
        }
    } else {
        for name in &spec.sites {
            let i = site_names.iter().position(|s| s == name).ok_or_else(|| {
                FlError::Config(format!(
                    "attack.sites: {name:?} is not a site of this dataset; its sites are {site_names:?}"
                ))
            })?;
            if !trains[i] {
                return Err(FlError::Config(format!(
                    "attack.sites: {name:?} does not train in this experiment"
                )));
            }
            flags[i] = true;
        }
        if flags
            .iter()
            .zip(trains)
            .filter(|(c, t)| **t && !**c)
            .count()
            == 0
        {
            return Err(FlError::Config(
                "attack.sites: every training site is compromised; at least one must stay honest"
                    .into(),
            ));
        }
    }
    Ok(flags)
}

/// The data attack of a `[attack]` section (None for model attacks).
pub fn data_attack(spec: &AttackSpec) -> Option<DataAttack> {
    use AttackMethod as M;
    Some(match &spec.method {
        M::AllToOne(o) => DataAttack::AllToOne { target: o.target },
        M::RandomFlip => DataAttack::RandomFlip,
        M::Swap(o) => {
            let [a, b] = o.swap.unwrap_or([0, 1]);
            DataAttack::Swap { a, b }
        }
        M::NoisyLabels(o) => DataAttack::NoisyLabels { rate: o.rate },
        M::FeatureNoise(o) => DataAttack::FeatureNoise { std: o.std as f32 },
        M::Backdoor(o) | M::ModelReplacement(o) => DataAttack::Backdoor {
            trigger: trigger(spec)?,
            rate: o.rate,
        },
        _ => return None,
    })
}

/// The backdoor trigger of a `[attack]` section, if it is a backdoor.
pub fn trigger(spec: &AttackSpec) -> Option<Trigger> {
    match &spec.method {
        AttackMethod::Backdoor(o) | AttackMethod::ModelReplacement(o) => Some(Trigger {
            pattern: o
                .trigger
                .iter()
                .map(|t| (t.feature, t.value as f32))
                .collect(),
            target: o.target,
        }),
        _ => None,
    }
}

/// The model attack of a `[attack]` section (None for data attacks; model replacement
/// has both halves). `weighted`: whether the server weights updates by examples
/// (FedAvg), which sets model replacement's boost.
pub fn model_attack(spec: &AttackSpec, weighted: bool) -> Option<ModelAttack> {
    use AttackMethod as M;
    let perturbation = |p: PerturbationKind| match p {
        PerturbationKind::Std => Perturbation::Std,
        PerturbationKind::UnitVector => Perturbation::UnitVector,
        PerturbationKind::Sign => Perturbation::Sign,
    };
    Some(match &spec.method {
        M::SignFlip(o) => ModelAttack::SignFlip {
            scale: o.scale.unwrap_or(1.0) as f32,
        },
        M::Scale(o) => ModelAttack::Scale {
            factor: o.scale.map(|s| s as f32),
        },
        M::Gaussian(o) => ModelAttack::Gaussian {
            scale: o.scale as f32,
        },
        M::ModelReplacement(_) => ModelAttack::Replacement { weighted },
        M::Alie(o) => ModelAttack::Alie { z: o.z },
        M::Ipm(o) => ModelAttack::Ipm {
            epsilon: o.epsilon.unwrap_or(0.5) as f32,
        },
        M::MinMax(o) => ModelAttack::MinMax {
            perturbation: perturbation(o.perturbation),
        },
        M::MinSum(o) => ModelAttack::MinSum {
            perturbation: perturbation(o.perturbation),
        },
        M::FangTrim => ModelAttack::FangTrim { b: 2.0 },
        M::Mimic => ModelAttack::Mimic,
        _ => return None,
    })
}

/// Poisons the training splits of the compromised sites (seeded per site).
pub fn poison_site(
    attack: &DataAttack,
    compromised: &[bool],
    seed: u64,
    site: usize,
    data: &mut SiteData,
    num_classes: usize,
) -> Result<(), FlError> {
    if !compromised.get(site).copied().unwrap_or(false) {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(ATTACK_STREAM + 1 + site as u64);
    attack
        .apply(&mut data.train, num_classes, &mut rng)
        .map(|_| ())
        .map_err(|e| FlError::Config(format!("attack on site {}: {e}", data.name)))
}

/// A model attack run by the compromised sites from `from_round` on: the round engine's
/// [`UpdateAttack`]. Its RNG is checkpointed with the federation.
#[derive(Debug, Clone)]
pub struct ModelPoisoning {
    attack: ModelAttack,
    from_round: usize,
    rng: ChaCha8Rng,
}

impl ModelPoisoning {
    /// The attack, active from `from_round`, with noise from the run seed.
    pub fn new(attack: ModelAttack, from_round: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(ATTACK_STREAM + 0x1000);
        Self {
            attack,
            from_round,
            rng,
        }
    }
}

impl UpdateAttack for ModelPoisoning {
    fn name(&self) -> String {
        self.attack.name().into()
    }

    fn rewrite(
        &mut self,
        round: usize,
        global: &Params,
        updates: &mut [Update],
        compromised: &[bool],
    ) -> Result<(), FlError> {
        if round < self.from_round {
            return Ok(());
        }
        let delta = |u: &Update| -> Vec<f32> {
            u.params
                .values()
                .iter()
                .zip(global.values())
                .map(|(a, g)| a - g)
                .collect()
        };
        let honest: Vec<Vec<f32>> = updates
            .iter()
            .zip(compromised)
            .filter(|(_, c)| !**c)
            .map(|(u, _)| delta(u))
            .collect();
        let total_weight: f64 = updates.iter().map(|u| u.num_examples as f64).sum();
        let attackers_weight: f64 = updates
            .iter()
            .zip(compromised)
            .filter(|(_, c)| **c)
            .map(|(u, _)| u.num_examples as f64)
            .sum();
        let f = compromised.iter().filter(|c| **c).count();
        let n = updates.len();
        for (u, _) in updates.iter_mut().zip(compromised).filter(|(_, c)| **c) {
            let own = delta(u);
            let input = AttackInput {
                own: &own,
                omniscience: Some(Omniscience { honest: &honest }),
                n,
                f,
                total_weight,
                attackers_weight,
            };
            let malicious = self
                .attack
                .craft(&input, &mut self.rng)
                .map_err(|e| FlError::Config(format!("attack {}: {e}", self.attack.name())))?;
            for ((p, g), m) in u
                .params
                .values_mut()
                .iter_mut()
                .zip(global.values())
                .zip(malicious)
            {
                *p = g + m;
            }
        }
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>, FlError> {
        postcard::to_stdvec(&self.rng).map_err(|e| FlError::Checkpoint(e.to_string()))
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), FlError> {
        self.rng = postcard::from_bytes(state)
            .map_err(|e| FlError::Checkpoint(format!("attack state: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_core::Metrics;

    fn upd(site: usize, v: Vec<f32>, n: usize) -> Update {
        Update {
            site,
            params: Params::from_flat(v),
            num_examples: n,
            metrics: Metrics::new(),
            control_delta: None,
        }
    }

    fn spec(kind: ward_core::config::AttackKind) -> AttackSpec {
        AttackSpec::new(AttackMethod::defaults(kind).unwrap(), 1)
    }

    #[test]
    fn compromised_sites_by_name_or_drawn_from_the_seed() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let trains = [true; 4];
        let mut s = spec(ward_core::config::AttackKind::SignFlip);
        let a = choose_compromised(&s, &names, &trains, 7).unwrap();
        assert_eq!(a.iter().filter(|c| **c).count(), 1);
        assert_eq!(a, choose_compromised(&s, &names, &trains, 7).unwrap());
        s.f = Some(4);
        let e = choose_compromised(&s, &names, &trains, 7)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "federation config: attack.f = 4: needs 1 <= f < 4 (the training sites; at least one must stay honest)"
        );
        s.f = None;
        s.sites = vec!["c".into()];
        assert_eq!(
            choose_compromised(&s, &names, &trains, 7).unwrap(),
            vec![false, false, true, false]
        );
        s.sites = vec!["z".into()];
        let e = choose_compromised(&s, &names, &trains, 7)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"z\""), "{e}");
    }

    /// The default boost under example-weighted FedAvg: with the attacker's weight 1 of
    /// 4, its delta is scaled by 4, so the FedAvg of (honest, attacker) moves the global
    /// model by 3/4 * honest + 1/4 * 4 * attacker.
    #[test]
    fn boost_through_the_update_attack() {
        let global = Params::from_flat(vec![1.0, 1.0]);
        let mut updates = vec![upd(0, vec![1.0, 1.0], 3), upd(1, vec![2.0, 0.0], 1)];
        let mut a = ModelPoisoning::new(
            model_attack(&spec(ward_core::config::AttackKind::Scale), true).unwrap(),
            1,
            0,
        );
        a.rewrite(1, &global, &mut updates, &[false, true]).unwrap();
        // Attacker delta [1, -1] scaled by 4/1 → [4, -4]; params = global + delta.
        assert_eq!(updates[1].params.values(), &[5.0, -3.0]);
        assert_eq!(updates[0].params.values(), &[1.0, 1.0]);
        // Before from_round nothing changes.
        let mut b = ModelPoisoning::new(ModelAttack::SignFlip { scale: 1.0 }, 3, 0);
        let mut u2 = vec![upd(0, vec![2.0, 2.0], 1), upd(1, vec![2.0, 2.0], 1)];
        b.rewrite(2, &global, &mut u2, &[false, true]).unwrap();
        assert_eq!(u2[1].params.values(), &[2.0, 2.0]);
        b.rewrite(3, &global, &mut u2, &[false, true]).unwrap();
        assert_eq!(u2[1].params.values(), &[0.0, 0.0]);
    }

    #[test]
    fn attack_state_round_trips() {
        let mut a = ModelPoisoning::new(ModelAttack::Gaussian { scale: 1.0 }, 1, 5);
        let state = a.save_state().unwrap();
        let global = Params::from_flat(vec![0.0; 4]);
        let mut u1 = vec![upd(0, vec![0.0; 4], 1), upd(1, vec![0.0; 4], 1)];
        a.rewrite(1, &global, &mut u1, &[false, true]).unwrap();
        let mut b = ModelPoisoning::new(ModelAttack::Gaussian { scale: 1.0 }, 1, 99);
        b.load_state(&state).unwrap();
        let mut u2 = vec![upd(0, vec![0.0; 4], 1), upd(1, vec![0.0; 4], 1)];
        b.rewrite(1, &global, &mut u2, &[false, true]).unwrap();
        assert_eq!(u1, u2);
    }
}
