//! [`Bucketing`] (Karimireddy, He & Jaggi 2022).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use ward_core::{Metrics, Update};
use ward_fl::RoundContext;

use super::{PreAggregator, PreOutput};
use crate::RobustError;
use crate::common::{like, mean_of, rows};
use crate::error::bad_param;

/// Bucketing (Karimireddy, He & Jaggi 2022, "Byzantine-Robust Learning on
/// Heterogeneous Datasets via Bucketing", Algorithm 1): shuffle the `n` updates, split
/// them into `ceil(n/s)` buckets of `s` consecutive ones (the last may be smaller), and
/// hand on each bucket's mean. It reduces the heterogeneity the rule sees; with `f`
/// Byzantine updates at most `f` buckets are touched, so the rule keeps its `f`.
///
/// The permutation is a ChaCha8 stream of `seed`, stream number = the round, so a run
/// repeats exactly and each round shuffles differently. A bucket's update carries the
/// site of its first member and the sum of its members' `num_examples`.
///
/// # Shapes
/// - `n` updates of length `d` in; `ceil(n/s)` updates of length `d` out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketing {
    s: usize,
    seed: u64,
}

impl Bucketing {
    /// Buckets of size `s >= 1`, shuffled from `seed`.
    pub fn new(s: usize, seed: u64) -> Result<Self, RobustError> {
        if s == 0 {
            return Err(bad_param(
                "bucketing",
                "s",
                0,
                "the bucket size must be >= 1",
            ));
        }
        Ok(Self { s, seed })
    }

    /// The bucket size.
    pub fn size(&self) -> usize {
        self.s
    }

    /// The buckets (input indices) of round `round` for `n` updates.
    pub fn buckets(&self, n: usize, round: usize) -> Vec<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(round as u64);
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut rng);
        perm.chunks(self.s).map(<[usize]>::to_vec).collect()
    }
}

impl PreAggregator for Bucketing {
    fn name(&self) -> String {
        "bucketing".into()
    }

    fn inputs_for(&self, k: usize) -> usize {
        if k == 0 { 0 } else { (k - 1) * self.s + 1 }
    }

    fn apply(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<PreOutput, RobustError> {
        let rows = rows(updates, ctx)?;
        let buckets = self.buckets(rows.len(), ctx.round);
        let out = buckets
            .iter()
            .map(|b| {
                Ok(Update {
                    site: updates[b[0]].site,
                    params: like(ctx.global, mean_of(&rows, b))?,
                    num_examples: b.iter().map(|&i| updates[i].num_examples).sum(),
                    metrics: Metrics::new(),
                    control_delta: None,
                })
            })
            .collect::<Result<Vec<_>, RobustError>>()?;
        Ok(PreOutput {
            updates: out,
            sources: buckets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{upds, zeros};

    #[test]
    fn buckets_partition_the_updates_and_depend_on_seed_and_round() {
        let b = Bucketing::new(3, 1).unwrap();
        let k = b.buckets(7, 1);
        // ceil(7 / 3) = 3 buckets of sizes 3, 3, 1
        assert_eq!(k.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
        let mut all: Vec<usize> = k.concat();
        all.sort_unstable();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        assert_eq!(b.buckets(7, 1), k, "same seed and round, same buckets");
        let others = [b.buckets(7, 2), Bucketing::new(3, 2).unwrap().buckets(7, 1)];
        assert!(others.iter().any(|o| *o != k));
    }

    #[test]
    fn bucket_means_by_hand() {
        // s = 2 over [0], [2], [4], [6]: every bucket is a pair, the means are the pairs'
        // midpoints; whatever the shuffle, they sum to (0 + 2 + 4 + 6) / 2 = 6.
        let g = zeros(1);
        let out = Bucketing::new(2, 3)
            .unwrap()
            .apply(
                &upds(&[vec![0.], vec![2.], vec![4.], vec![6.]]),
                &RoundContext::new(1, &g),
            )
            .unwrap();
        assert_eq!(out.updates.len(), 2);
        let s: f32 = out.updates.iter().map(|u| u.params.values()[0]).sum();
        assert_eq!(s, 6.0);
        for (u, src) in out.updates.iter().zip(&out.sources) {
            let want = src.iter().map(|&i| 2.0 * i as f32).sum::<f32>() / 2.0;
            assert_eq!(u.params.values()[0], want);
            assert_eq!(u.num_examples, 2);
        }
        assert_eq!(
            Bucketing::new(0, 1).unwrap_err().to_string(),
            "bucketing: s = 0: the bucket size must be >= 1"
        );
    }
}
