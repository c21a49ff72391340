//! A site's endless, reshuffling batch order (FLamby's `DataLoaderWithMemory`).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Row indices in mini-batches, carrying on across rounds: a round that stops in the
/// middle of a pass resumes there in the next round, and every new pass over the data
/// is a fresh shuffle. The last batch of a pass may be smaller (no drop-last).
///
/// The whole state (RNG, permutation, position) is serialisable, so a checkpoint
/// restores the exact batch sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStream {
    rng: ChaCha8Rng,
    order: Vec<u32>,
    pos: usize,
    batch: usize,
    passes: u64,
}

impl BatchStream {
    /// A stream over `rows` rows in batches of `batch`, shuffled from `seed`.
    pub fn new(rows: usize, batch: usize, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            order: (0..rows as u32).collect(),
            pos: rows, // forces a shuffle before the first batch
            batch: batch.max(1),
            passes: 0,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.order.len()
    }

    /// Batches in one pass over the data.
    pub fn batches_per_pass(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }

    /// Completed or started passes so far.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// The next batch of row indices (never empty unless there are no rows).
    pub fn next_batch(&mut self) -> &[u32] {
        if self.order.is_empty() {
            return &[];
        }
        if self.pos >= self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
            self.passes += 1;
        }
        let start = self.pos;
        self.pos = (start + self.batch).min(self.order.len());
        &self.order[start..self.pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_cover_every_row_once_and_carry_on() {
        let mut s = BatchStream::new(10, 4, 3);
        let mut seen: Vec<u32> = Vec::new();
        let sizes: Vec<usize> = (0..3)
            .map(|_| {
                let b = s.next_batch().to_vec();
                seen.extend(&b);
                b.len()
            })
            .collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<u32>>());
        // The second pass is another permutation.
        let first: Vec<u32> = s.clone().next_batch().to_vec();
        assert_eq!(s.passes(), 1);
        let _ = s.next_batch();
        assert_eq!(s.passes(), 2);
        assert_eq!(first.len(), 4);
    }

    #[test]
    fn state_round_trips_and_repeats() {
        let mut a = BatchStream::new(7, 3, 11);
        let _ = a.next_batch();
        let mut b: BatchStream = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for _ in 0..10 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
    }
}
