//! Pre-aggregators: transformations of the round's updates applied before a rule, and
//! [`Composed`], which chains them with any [`Aggregator`].

mod bucketing;
mod nnm;
mod norm_clip;

use std::fmt;

pub use bucketing::Bucketing;
pub use nnm::Nnm;
pub use norm_clip::NormClip;
use ward_core::Update;
use ward_fl::{Aggregate, Aggregator, FlError, RoundContext};

use crate::RobustError;
use crate::error::need_updates;

/// What a pre-aggregator hands on: the new updates and, for each, the indices of the
/// input updates it stands for (so a rule's selection and weights can be traced back
/// to the sites).
#[derive(Debug, Clone, PartialEq)]
pub struct PreOutput {
    /// The transformed updates (complete models, like the inputs).
    pub updates: Vec<Update>,
    /// For each output, the input indices it stands for: `[i]` for the 1-to-1
    /// pre-aggregators (clipping, NNM: output `i` is input `i` transformed), a bucket's
    /// members for bucketing.
    pub sources: Vec<Vec<usize>>,
}

/// A transformation of the round's updates before aggregation (clipping, nearest
/// neighbour mixing, bucketing). Composes with any rule through [`Composed`].
pub trait PreAggregator: fmt::Debug {
    /// Name as written in configs (`nnm`, `bucketing`, `clip`).
    fn name(&self) -> String;

    /// The fewest inputs it accepts (its own assumption, e.g. `n >= f+1` for NNM).
    fn min_inputs(&self) -> usize {
        1
    }

    /// The fewest inputs that give at least `k` outputs (`k` for the 1-to-1 ones).
    fn inputs_for(&self, k: usize) -> usize {
        k
    }

    /// Transforms `updates` (complete models; the deltas are `x_i - ctx.global`).
    ///
    /// # Shapes
    /// - `updates`: `n` vectors of length `d`; returns vectors of length `d`.
    fn apply(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<PreOutput, RobustError>;
}

/// Pre-aggregators applied in order, then a rule; itself an [`Aggregator`] named
/// `pre1+pre2+rule` (e.g. `nnm+krum`).
///
/// `min_updates` is the rule's, carried back through the pre-aggregators (bucketing
/// with size `s` needs `(k-1)s+1` updates for `k` buckets) and at least each
/// pre-aggregator's own minimum. The rule's `selected` and `weights` are mapped back to
/// the input updates: a selected output selects every input it stands for, and an
/// output's weight is shared equally among them.
pub struct Composed {
    pre: Vec<Box<dyn PreAggregator>>,
    rule: Box<dyn Aggregator>,
}

impl fmt::Debug for Composed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Composed")
            .field("pre", &self.pre)
            .field("rule", &self.rule.name())
            .finish()
    }
}

impl Composed {
    /// `pre` (applied in order) followed by `rule`.
    pub fn new(pre: Vec<Box<dyn PreAggregator>>, rule: Box<dyn Aggregator>) -> Self {
        Self { pre, rule }
    }

    /// Checks that `n` updates are enough for the whole chain.
    pub fn check(&self, n: usize) -> Result<(), RobustError> {
        need_updates(&self.name(), None, "", self.min_updates(), n)
    }

    fn run(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.check(updates.len())?;
        let n = updates.len();
        let mut current: Option<Vec<Update>> = None;
        let mut sources: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
        for p in &self.pre {
            let input = current.as_deref().unwrap_or(updates);
            let out = p.apply(input, ctx)?;
            sources = out
                .sources
                .iter()
                .map(|s| {
                    let mut all: Vec<usize> =
                        s.iter().flat_map(|&k| sources[k].iter().copied()).collect();
                    all.sort_unstable();
                    all.dedup();
                    all
                })
                .collect();
            current = Some(out.updates);
        }
        let input = current.as_deref().unwrap_or(updates);
        let agg = self.rule.aggregate(input, ctx)?;
        let selected = agg.selected.map(|sel| {
            let mut all: Vec<usize> = sel
                .iter()
                .flat_map(|&k| sources[k].iter().copied())
                .collect();
            all.sort_unstable();
            all.dedup();
            all
        });
        let weights = agg.weights.map(|w| {
            let mut out = vec![0f64; n];
            for (k, &wk) in w.iter().enumerate() {
                let share = wk / sources[k].len() as f64;
                for &i in &sources[k] {
                    out[i] += share;
                }
            }
            out
        });
        Ok(Aggregate {
            params: agg.params,
            selected,
            weights,
        })
    }
}

impl Aggregator for Composed {
    fn name(&self) -> String {
        let mut parts: Vec<String> = self.pre.iter().map(|p| p.name()).collect();
        parts.push(self.rule.name());
        parts.join("+")
    }

    fn uses_history(&self) -> bool {
        self.rule.uses_history()
    }

    fn min_updates(&self) -> usize {
        let mut need = self.rule.min_updates();
        for p in self.pre.iter().rev() {
            need = p.inputs_for(need).max(p.min_inputs());
        }
        need
    }

    fn aggregate(&self, updates: &[Update], ctx: &RoundContext<'_>) -> Result<Aggregate, FlError> {
        self.run(updates, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::{upds, zeros};
    use crate::{Krum, Mean};

    #[test]
    fn composed_names_and_minimum_counts() {
        let c = Composed::new(vec![Box::new(Nnm::new(1))], Box::new(Krum::new(1)));
        assert_eq!(c.name(), "nnm+krum");
        assert_eq!(c.min_updates(), 5);
        // Buckets of 2 for Krum with f = 1 (5 buckets): (5 - 1) * 2 + 1 = 9 updates.
        let c = Composed::new(
            vec![Box::new(Bucketing::new(2, 0).unwrap())],
            Box::new(Krum::new(1)),
        );
        assert_eq!(c.name(), "bucketing+krum");
        assert_eq!(c.min_updates(), 9);
        assert_eq!(
            c.check(8).unwrap_err().to_string(),
            "bucketing+krum needs n >= 9 updates, got 8"
        );
    }

    /// Buckets of size 3 over 6 updates averaged by `Mean`: the mean of bucket means
    /// equals the plain mean; Krum's one selected bucket maps to its 3 members.
    #[test]
    fn bucketing_then_rules_map_back_to_sites() {
        let g = zeros(1);
        let ctx = RoundContext::new(4, &g);
        let u = upds(&[vec![1.], vec![2.], vec![3.], vec![4.], vec![5.], vec![100.]]);
        let c = Composed::new(
            vec![Box::new(Bucketing::new(3, 7).unwrap())],
            Box::new(Mean),
        );
        let a = c.aggregate(&u, &ctx).unwrap();
        // (1 + 2 + 3 + 4 + 5 + 100) / 6 = 115 / 6
        assert!((a.params.values()[0] - 115.0 / 6.0).abs() < 1e-5);
        // Buckets of 1 are the updates, shuffled: Krum with f = 1 (k = 3 nearest) on
        // 1, 2, 3, 4.5, 6, 100: 1 -> 1+4+12.25 = 17.25, 2 -> 1+1+6.25 = 8.25,
        // 3 -> 1+2.25+4 = 7.25, 4.5 -> 2.25+2.25+6.25 = 10.75, 6 -> 2.25+9+16 = 27.25:
        // the unique minimum is 3, input index 2, wherever the shuffle put it.
        let u = upds(&[
            vec![1.],
            vec![2.],
            vec![3.],
            vec![4.5],
            vec![6.],
            vec![100.],
        ]);
        let c = Composed::new(
            vec![Box::new(Bucketing::new(1, 7).unwrap())],
            Box::new(Krum::new(1)),
        );
        let a = c.aggregate(&u, &ctx).unwrap();
        assert_eq!(a.params.values(), &[3.0]);
        assert_eq!(a.selected, Some(vec![2]));
    }
}
