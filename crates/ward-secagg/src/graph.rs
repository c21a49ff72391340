//! [`CommunicationGraph`]: who talks to whom in SecAgg+.
//!
//! Bell et al. 2020 (section 3) take a Harary graph `H(n, k)` with its nodes relabelled
//! by a random permutation: put the sites on a ring in a random order and join each to
//! the `k/2` nearest on either side, and, for odd `k` (then `n` is even), to the site
//! opposite. `k = n - 1` gives the complete graph of Bonawitz et al. 2017. The
//! permutation comes from the public `graph_seed` (ChaCha20), so every party builds the
//! same graph.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

use super::params::SecAggParams;
use crate::SecAggError;

/// The `k`-regular communication graph of one round: each site's neighbours, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunicationGraph {
    neighbours: Vec<Vec<u32>>,
}

/// The random ring order: `order[p]` is the site at position `p`.
fn ring_order(params: &SecAggParams) -> Vec<u32> {
    let mut order: Vec<u32> = (0..params.sites).collect();
    if !params.is_complete() {
        let mut rng = ChaCha20Rng::seed_from_u64(params.graph_seed);
        order.shuffle(&mut rng);
    }
    order
}

/// The neighbours of the site at ring position `p`, sorted.
fn neighbours_at(params: &SecAggParams, order: &[u32], p: usize) -> Vec<u32> {
    let n = order.len();
    let k = params.neighbours as usize;
    let mut out = Vec::with_capacity(k);
    for j in 1..=k / 2 {
        out.push(order[(p + j) % n]);
        out.push(order[(p + n - j) % n]);
    }
    if k % 2 == 1 {
        out.push(order[(p + n / 2) % n]);
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl CommunicationGraph {
    /// The graph of `params`.
    ///
    /// # Errors
    /// The parameter errors of [`SecAggParams::validate`].
    pub fn new(params: &SecAggParams) -> Result<Self, SecAggError> {
        params.validate()?;
        let order = ring_order(params);
        let mut neighbours = vec![Vec::new(); order.len()];
        for (p, &site) in order.iter().enumerate() {
            neighbours[site as usize] = neighbours_at(params, &order, p);
        }
        Ok(Self { neighbours })
    }

    /// The neighbours of `site` alone (what a site computes; the same as
    /// [`CommunicationGraph::neighbours`] of the whole graph).
    ///
    /// # Errors
    /// The parameter errors of [`SecAggParams::validate`], or `site` out of range.
    pub fn neighbours_of(params: &SecAggParams, site: u32) -> Result<Vec<u32>, SecAggError> {
        params.validate()?;
        check_site(params, site)?;
        let order = ring_order(params);
        let p = order.iter().position(|&s| s == site).unwrap_or(0);
        Ok(neighbours_at(params, &order, p))
    }

    /// Number of sites.
    pub fn sites(&self) -> u32 {
        self.neighbours.len() as u32
    }

    /// The neighbours of `site`, sorted (empty for a site out of range).
    pub fn neighbours(&self, site: u32) -> &[u32] {
        self.neighbours
            .get(site as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the sites not in `removed` form one connected graph (true when none is
    /// left). A round whose survivors split must not be unmasked: within each piece the
    /// pairwise masks cancel, so the server would learn each piece's partial sum.
    pub fn connected_without(&self, removed: &std::collections::BTreeSet<u32>) -> bool {
        let n = self.neighbours.len() as u32;
        let Some(first) = (0..n).find(|v| !removed.contains(v)) else {
            return true;
        };
        let mut seen = vec![false; n as usize];
        seen[first as usize] = true;
        let mut todo = vec![first];
        let mut reached = 1;
        while let Some(v) = todo.pop() {
            for &w in self.neighbours(v) {
                if !removed.contains(&w) && !seen[w as usize] {
                    seen[w as usize] = true;
                    reached += 1;
                    todo.push(w);
                }
            }
        }
        reached == (0..n).filter(|v| !removed.contains(v)).count()
    }
}

/// `site` is one of `params.sites`.
pub(crate) fn check_site(params: &SecAggParams, site: u32) -> Result<(), SecAggError> {
    if site >= params.sites {
        return Err(SecAggError::protocol(format!(
            "site {site} is out of range: the round has sites 0..{}",
            params.sites
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: u32, k: u32) -> SecAggParams {
        SecAggParams::complete(n, 4)
            .with_neighbours(k)
            .with_round(0, 7)
    }

    #[test]
    fn regular_symmetric_and_matching_per_site() {
        for (n, k) in [(10, 2), (10, 3), (11, 4), (50, 6), (8, 7), (9, 8)] {
            let p = params(n, k);
            let g = CommunicationGraph::new(&p).unwrap();
            for s in 0..n {
                let nb = g.neighbours(s);
                assert_eq!(nb.len(), k as usize, "n={n} k={k} site {s}");
                assert!(!nb.contains(&s));
                for &v in nb {
                    assert!(g.neighbours(v).contains(&s), "n={n} k={k}: {s}-{v} one-way");
                }
                assert_eq!(CommunicationGraph::neighbours_of(&p, s).unwrap(), nb);
            }
        }
    }

    #[test]
    fn complete_graph_is_everyone_else() {
        let g = CommunicationGraph::new(&SecAggParams::complete(5, 1)).unwrap();
        assert_eq!(g.neighbours(2), &[0, 1, 3, 4]);
    }

    #[test]
    fn the_seed_relabels_the_ring() {
        let a = CommunicationGraph::new(&params(20, 2)).unwrap();
        let b = CommunicationGraph::new(&params(20, 2).with_round(0, 8)).unwrap();
        assert_ne!(a, b);
        // Not the identity ring 0-1-2-...: some site has a neighbour not next to it.
        assert!((0..20u32).any(|s| a.neighbours(s).iter().any(|&v| v.abs_diff(s) % 19 > 1)));
    }

    #[test]
    fn odd_degree_on_odd_sites_is_refused() {
        let e = CommunicationGraph::new(&params(9, 3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("neighbours = 3"), "{e}");
    }
}
