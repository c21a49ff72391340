//! Data poisoning: what a compromised site does to its own training split.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use ward_data::Split;

use super::{AttackError, setting};

/// A data-poisoning attack on a training split.
#[derive(Debug, Clone, PartialEq)]
pub enum DataAttack {
    /// Every label becomes `target`.
    AllToOne {
        /// The target class.
        target: u32,
    },
    /// Every label becomes a uniformly random other class.
    RandomFlip,
    /// Classes `a` and `b` swap labels (binary: 0 ↔ 1).
    Swap {
        /// First class.
        a: u32,
        /// Second class.
        b: u32,
    },
    /// Each label, with probability `rate`, becomes a uniformly random other class
    /// (noisy, low-quality labelling).
    NoisyLabels {
        /// Probability in [0, 1].
        rate: f64,
    },
    /// Every feature gets i.i.d. `N(0, std^2)` noise (in the split's units).
    FeatureNoise {
        /// Standard deviation (> 0).
        std: f32,
    },
    /// Backdoor (tabular trigger): a share `rate` of the rows get the trigger (features
    /// set to fixed values) and the label `target`.
    Backdoor {
        /// The trigger.
        trigger: Trigger,
        /// Share of rows poisoned, in (0, 1].
        rate: f64,
    },
}

/// A tabular backdoor trigger: feature index → value, and the target label.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `(feature index, value)` pairs set on triggered rows.
    pub pattern: Vec<(usize, f32)>,
    /// The label the backdoor should produce.
    pub target: u32,
}

impl Trigger {
    /// Sets the pattern on row `r` of `split`.
    fn stamp(&self, split: &mut Split, r: usize) {
        let cols = split.x.cols;
        for &(j, v) in &self.pattern {
            split.x.data[r * cols + j] = v;
        }
    }

    /// Checks the pattern against the number of features and classes.
    pub fn validate(&self, cols: usize, num_classes: usize) -> Result<(), AttackError> {
        if self.pattern.is_empty() {
            return Err(setting("trigger", "the pattern is empty"));
        }
        if let Some(&(j, _)) = self.pattern.iter().find(|(j, _)| *j >= cols) {
            return Err(setting(
                "trigger",
                format!("feature {j} does not exist (the data has {cols})"),
            ));
        }
        if let Some(&(_, v)) = self.pattern.iter().find(|(_, v)| !v.is_finite()) {
            return Err(setting("trigger", format!("value {v} is not finite")));
        }
        if self.target as usize >= num_classes {
            return Err(setting(
                "target",
                format!(
                    "class {} does not exist ({num_classes} classes)",
                    self.target
                ),
            ));
        }
        Ok(())
    }

    /// The test rows whose true label is not the target, with the trigger stamped: the
    /// inputs on which a backdoor's attack success rate is measured (the share predicted
    /// as `target`).
    pub fn triggered_test_set(&self, test: &Split) -> Split {
        let keep: Vec<usize> = (0..test.y.len())
            .filter(|&i| test.y[i] != self.target)
            .collect();
        let mut s = test.select(&keep);
        for r in 0..s.y.len() {
            self.stamp(&mut s, r);
        }
        s
    }
}

fn other_class(y: u32, num_classes: usize, rng: &mut impl Rng) -> u32 {
    // Uniform over the num_classes - 1 other classes.
    let k = rng.random_range(0..num_classes as u32 - 1);
    if k >= y { k + 1 } else { k }
}

impl DataAttack {
    /// Name as written in configs (kebab-case).
    pub fn name(&self) -> &'static str {
        match self {
            Self::AllToOne { .. } => "all-to-one",
            Self::RandomFlip => "random-flip",
            Self::Swap { .. } => "swap",
            Self::NoisyLabels { .. } => "noisy-labels",
            Self::FeatureNoise { .. } => "feature-noise",
            Self::Backdoor { .. } => "backdoor",
        }
    }

    /// Checks the settings against the data.
    pub fn validate(&self, cols: usize, num_classes: usize) -> Result<(), AttackError> {
        if num_classes < 2 {
            return Err(setting("data", "label attacks need at least 2 classes"));
        }
        let class = |c: u32, s: &str| {
            if (c as usize) < num_classes {
                Ok(())
            } else {
                Err(setting(
                    s,
                    format!("class {c} does not exist ({num_classes} classes)"),
                ))
            }
        };
        match self {
            Self::AllToOne { target } => class(*target, "target"),
            Self::Swap { a, b } => class(*a, "a").and(class(*b, "b")),
            Self::NoisyLabels { rate } if !(0.0..=1.0).contains(rate) => {
                Err(setting("rate", format!("must be in [0, 1], got {rate}")))
            }
            Self::FeatureNoise { std } if !(std.is_finite() && *std > 0.0) => {
                Err(setting("std", format!("must be > 0, got {std}")))
            }
            Self::Backdoor { trigger, rate } => {
                if !(*rate > 0.0 && *rate <= 1.0) {
                    return Err(setting("rate", format!("must be in (0, 1], got {rate}")));
                }
                trigger.validate(cols, num_classes)
            }
            _ => Ok(()),
        }
    }

    /// Poisons `split` in place; returns the number of rows changed.
    pub fn apply(
        &self,
        split: &mut Split,
        num_classes: usize,
        rng: &mut impl Rng,
    ) -> Result<usize, AttackError> {
        self.validate(split.x.cols, num_classes)?;
        let n = split.y.len();
        let mut changed = 0;
        match self {
            Self::AllToOne { target } => {
                for y in &mut split.y {
                    changed += usize::from(*y != *target);
                    *y = *target;
                }
            }
            Self::RandomFlip => {
                for y in &mut split.y {
                    *y = other_class(*y, num_classes, rng);
                }
                changed = n;
            }
            Self::Swap { a, b } => {
                for y in &mut split.y {
                    if *y == *a {
                        *y = *b;
                        changed += 1;
                    } else if *y == *b {
                        *y = *a;
                        changed += 1;
                    }
                }
            }
            Self::NoisyLabels { rate } => {
                for y in &mut split.y {
                    if rng.random_bool(*rate) {
                        *y = other_class(*y, num_classes, rng);
                        changed += 1;
                    }
                }
            }
            Self::FeatureNoise { std } => {
                let normal =
                    Normal::new(0.0f32, *std).map_err(|e| setting("std", e.to_string()))?;
                for v in &mut split.x.data {
                    *v += normal.sample(rng);
                }
                changed = n;
            }
            Self::Backdoor { trigger, rate } => {
                let k = ((*rate * n as f64).round() as usize).clamp(1, n.max(1));
                let mut rows: Vec<usize> = (0..n).collect();
                rand::seq::SliceRandom::shuffle(rows.as_mut_slice(), rng);
                for &r in rows.iter().take(k.min(n)) {
                    trigger.stamp(split, r);
                    split.y[r] = trigger.target;
                }
                changed = k.min(n);
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use ward_data::Matrix;

    fn split() -> Split {
        Split {
            x: Matrix {
                rows: 4,
                cols: 2,
                data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            },
            y: vec![0, 1, 2, 1],
        }
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(3)
    }

    #[test]
    fn label_flips_do_what_their_names_say() {
        let mut s = split();
        assert_eq!(
            DataAttack::AllToOne { target: 2 }
                .apply(&mut s, 3, &mut rng())
                .unwrap(),
            3
        );
        assert_eq!(s.y, vec![2, 2, 2, 2]);
        let mut s = split();
        DataAttack::Swap { a: 0, b: 1 }
            .apply(&mut s, 3, &mut rng())
            .unwrap();
        assert_eq!(s.y, vec![1, 0, 2, 0]);
        let mut s = split();
        DataAttack::RandomFlip.apply(&mut s, 3, &mut rng()).unwrap();
        // Every label changed, each to an existing class.
        for (a, b) in s.y.iter().zip(split().y) {
            assert_ne!(*a, b);
            assert!(*a < 3);
        }
        assert_eq!(
            DataAttack::AllToOne { target: 3 }
                .apply(&mut split(), 3, &mut rng())
                .unwrap_err()
                .to_string(),
            "attack setting target: class 3 does not exist (3 classes)"
        );
    }

    #[test]
    fn noisy_labels_flip_about_rate_of_the_rows() {
        let n = 10_000;
        let mut s = Split {
            x: Matrix {
                rows: n,
                cols: 1,
                data: vec![0.0; n],
            },
            y: vec![0; n],
        };
        let changed = DataAttack::NoisyLabels { rate: 0.3 }
            .apply(&mut s, 2, &mut rng())
            .unwrap();
        // Binomial(10000, 0.3): sd 46; allow 5 sd.
        assert!((changed as f64 - 3000.0).abs() < 230.0, "{changed}");
        assert_eq!(s.y.iter().filter(|&&y| y == 1).count(), changed);
    }

    #[test]
    fn backdoor_stamps_the_trigger_and_the_target() {
        let trigger = Trigger {
            pattern: vec![(1, 9.0)],
            target: 0,
        };
        let mut s = split();
        let k = DataAttack::Backdoor {
            trigger: trigger.clone(),
            rate: 0.5,
        }
        .apply(&mut s, 3, &mut rng())
        .unwrap();
        assert_eq!(k, 2);
        let stamped: Vec<usize> = (0..4).filter(|&r| s.x.data[r * 2 + 1] == 9.0).collect();
        assert_eq!(stamped.len(), 2);
        assert!(stamped.iter().all(|&r| s.y[r] == 0));
        // Test-time: only rows whose label is not the target, all stamped.
        let t = trigger.triggered_test_set(&split());
        assert_eq!(t.y, vec![1, 2, 1]);
        assert!((0..3).all(|r| t.x.data[r * 2 + 1] == 9.0));
        let bad = Trigger {
            pattern: vec![(5, 1.0)],
            target: 0,
        };
        assert_eq!(
            DataAttack::Backdoor {
                trigger: bad,
                rate: 0.5
            }
            .apply(&mut split(), 3, &mut rng())
            .unwrap_err()
            .to_string(),
            "attack setting trigger: feature 5 does not exist (the data has 2)"
        );
    }

    #[test]
    fn feature_noise_is_seeded_and_keeps_labels() {
        let (mut a, mut b) = (split(), split());
        DataAttack::FeatureNoise { std: 0.1 }
            .apply(&mut a, 3, &mut rng())
            .unwrap();
        DataAttack::FeatureNoise { std: 0.1 }
            .apply(&mut b, 3, &mut rng())
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.y, split().y);
        assert_ne!(a.x.data, split().x.data);
    }
}
