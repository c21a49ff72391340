//! [`SecAggParams`]: the public settings of one secure-aggregation round, known to every
//! site and to the server.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::quantize::Quantizer;
use crate::SecAggError;

/// The stream cipher that expands a 32-byte seed into a mask (one 32-bit word per
/// coordinate), from `rand_chacha`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MaskPrg {
    /// ChaCha with 8 rounds (the fastest; Aumasson's "Too Much Crypto" argues 8 rounds
    /// suffice).
    #[serde(rename = "chacha8")]
    ChaCha8,
    /// ChaCha with 12 rounds (`rand`'s `StdRng`; the best published attack reaches 7
    /// rounds). The default.
    #[default]
    #[serde(rename = "chacha12")]
    ChaCha12,
    /// ChaCha20 (RFC 8439's round count; the slowest).
    #[serde(rename = "chacha20")]
    ChaCha20,
}

impl MaskPrg {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaCha8 => "chacha8",
            Self::ChaCha12 => "chacha12",
            Self::ChaCha20 => "chacha20",
        }
    }
}

impl fmt::Display for MaskPrg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MaskPrg {
    type Err = SecAggError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chacha8" => Ok(Self::ChaCha8),
            "chacha12" => Ok(Self::ChaCha12),
            "chacha20" => Ok(Self::ChaCha20),
            other => Err(SecAggError::parameter(
                "prg",
                other,
                "expected chacha8, chacha12 or chacha20",
            )),
        }
    }
}

/// The public settings of one round of SecAgg+: who takes part, the communication
/// graph, the threshold, the vector length and its quantisation. Every site and the
/// server hold the same value.
///
/// Each site `i` talks to `neighbours` other sites (its neighbourhood is those and
/// itself; `neighbours = sites - 1` is the complete graph of Bonawitz et al. 2017). It
/// splits its secrets into one Shamir share per member of its neighbourhood, `threshold`
/// of which rebuild them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecAggParams {
    /// Number of sites `n`, numbered `0..n`.
    pub sites: u32,
    /// Neighbours `k` of each site (not counting itself), `1..=n-1`; `n * k` must be
    /// even (a `k`-regular graph).
    pub neighbours: u32,
    /// Shamir threshold `t`, `2..=k+1`: shares needed to rebuild a secret.
    pub threshold: u32,
    /// Length of each site's vector.
    pub dim: usize,
    /// Quantisation of the `f32` updates to the ring `Z_{2^32}`.
    pub quantizer: Quantizer,
    /// The mask generator.
    pub prg: MaskPrg,
    /// The round this session belongs to: bound into every derived key and ciphertext,
    /// so messages of one round are useless in another.
    pub round: u64,
    /// Public seed of the random relabelling of the communication graph.
    pub graph_seed: u64,
    /// Accept a threshold with `2t <= k + 1` (refused by default): safe only against a
    /// server that follows the protocol. A server that lies about who dropped can ask
    /// one half of a site's neighbourhood for its mask-key shares ("it dropped") and the
    /// other half for its self-mask shares ("it survived"); with `2t <= k + 1` both
    /// halves can hold `t` shares, and the site's update is unmasked.
    #[serde(default)]
    pub minority_threshold: bool,
}

impl SecAggParams {
    /// The complete graph (every site talks to every other) for `sites` vectors of
    /// length `dim`, with the majority threshold `floor(n/2) + 1`, the default
    /// quantiser, ChaCha12 masks, round 0 and graph seed 0.
    pub fn complete(sites: u32, dim: usize) -> Self {
        let k = sites.saturating_sub(1);
        Self {
            sites,
            neighbours: k,
            threshold: Self::majority(k),
            dim,
            quantizer: Quantizer::default(),
            prg: MaskPrg::default(),
            round: 0,
            graph_seed: 0,
            minority_threshold: false,
        }
    }

    /// The majority of a neighbourhood of `k` neighbours and the site itself:
    /// `floor((k + 1) / 2) + 1`.
    pub fn majority(k: u32) -> u32 {
        k.div_ceil(2) + 1
    }

    /// These settings with `k` neighbours per site (SecAgg+) and the majority threshold
    /// of that neighbourhood.
    #[must_use]
    pub fn with_neighbours(mut self, k: u32) -> Self {
        self.neighbours = k;
        self.threshold = Self::majority(k);
        self
    }

    /// These settings with threshold `t`.
    #[must_use]
    pub fn with_threshold(mut self, t: u32) -> Self {
        self.threshold = t;
        self
    }

    /// These settings accepting `2t <= k + 1` (see [`SecAggParams::minority_threshold`]).
    #[must_use]
    pub fn allowing_minority_threshold(mut self, allow: bool) -> Self {
        self.minority_threshold = allow;
        self
    }

    /// These settings with quantiser `q`.
    #[must_use]
    pub fn with_quantizer(mut self, q: Quantizer) -> Self {
        self.quantizer = q;
        self
    }

    /// These settings with mask generator `prg`.
    #[must_use]
    pub fn with_prg(mut self, prg: MaskPrg) -> Self {
        self.prg = prg;
        self
    }

    /// These settings for round `round` with graph seed `graph_seed`.
    #[must_use]
    pub fn with_round(mut self, round: u64, graph_seed: u64) -> Self {
        self.round = round;
        self.graph_seed = graph_seed;
        self
    }

    /// The fewest neighbours `k` (with the majority threshold) that keep every
    /// neighbourhood of `sites` at the threshold when each site drops independently
    /// with probability `dropout`, except with probability at most `2^-bits` for the
    /// whole round; `None` if even the complete graph does not.
    ///
    /// The rule, after Bell et al. 2020 ("Secure single-server aggregation with
    /// (poly)logarithmic overhead", Section 4: choose `k` so that every neighbourhood
    /// keeps `t` live members with overwhelming probability): a union bound over the
    /// `n` sites of the binomial tail `P[Bin(k + 1, 1 - dropout) < t] <= 2^-bits / n`.
    /// It is this simple bound, not the paper's table (which also budgets for corrupt
    /// sites); `k` is only raised to keep `n k` even. Sites that join at random
    /// (Bell et al.'s random graph) are not modelled: Ward relabels a Harary graph.
    pub fn recommended_neighbours(sites: u32, dropout: f64, bits: u32) -> Option<u32> {
        if sites < 3 {
            return Some(sites.saturating_sub(1));
        }
        let target = (-f64::from(bits) * std::f64::consts::LN_2).exp() / f64::from(sites);
        let live = 1.0 - dropout.clamp(0.0, 1.0);
        (2..sites).find(|&k| {
            if (u64::from(sites) * u64::from(k)) % 2 == 1 {
                return false;
            }
            let t = Self::majority(k);
            binomial_cdf_below(k + 1, live, t) <= target
        })
    }

    /// True for the complete graph.
    pub fn is_complete(&self) -> bool {
        self.neighbours + 1 == self.sites
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`SecAggError::Parameter`] naming the setting and the reason.
    pub fn validate(&self) -> Result<(), SecAggError> {
        let n = self.sites;
        if n < 2 {
            return Err(SecAggError::parameter(
                "sites",
                n,
                "secure aggregation needs at least 2 sites",
            ));
        }
        if !(1..n).contains(&self.neighbours) {
            return Err(SecAggError::parameter(
                "neighbours",
                self.neighbours,
                &format!("must be in 1..={} for {n} sites", n - 1),
            ));
        }
        // One neighbour pairs the sites off: every pair's masks cancel within the pair,
        // so the server could unmask each pair's sum (only 2 sites may, the complete graph).
        if self.neighbours == 1 && n > 2 {
            return Err(SecAggError::parameter(
                "neighbours",
                1,
                &format!(
                    "one neighbour splits {n} sites into pairs whose sums the server could unmask: give at least 2"
                ),
            ));
        }
        if (u64::from(n) * u64::from(self.neighbours)) % 2 == 1 {
            return Err(SecAggError::parameter(
                "neighbours",
                self.neighbours,
                &format!("an odd number of neighbours needs an even number of sites ({n})"),
            ));
        }
        if !(2..=self.neighbours + 1).contains(&self.threshold) {
            return Err(SecAggError::parameter(
                "threshold",
                self.threshold,
                &format!(
                    "must be in 2..={} (the neighbourhood: {} neighbours and the site itself)",
                    self.neighbours + 1,
                    self.neighbours
                ),
            ));
        }
        if 2 * self.threshold <= self.neighbours + 1 && !self.minority_threshold {
            return Err(SecAggError::parameter(
                "threshold",
                self.threshold,
                &format!(
                    "2 * threshold must exceed neighbours + 1 = {} (else a server that lies about who dropped can collect both kinds of share of one site from two halves of its neighbourhood and unmask its update); use at least {}, or allow a minority threshold explicitly",
                    self.neighbours + 1,
                    Self::majority(self.neighbours)
                ),
            ));
        }
        if self.dim == 0 {
            return Err(SecAggError::parameter("dim", 0, "must be at least 1"));
        }
        self.quantizer.validate(n)
    }
}

/// `P[Bin(n, p) < t]`, summed in log space (exact for the small `n` of a neighbourhood).
fn binomial_cdf_below(n: u32, p: f64, t: u32) -> f64 {
    if p >= 1.0 {
        return if t == 0 {
            0.0
        } else {
            f64::from(u8::from(t > n))
        };
    }
    if p <= 0.0 {
        return if t > 0 { 1.0 } else { 0.0 };
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_choose = 0.0f64; // ln C(n, 0)
    let mut total = 0.0;
    for i in 0..t.min(n + 1) {
        if i > 0 {
            log_choose += f64::from(n - i + 1).ln() - f64::from(i).ln();
        }
        total += (log_choose + f64::from(i) * lp + f64::from(n - i) * lq).exp();
    }
    total.min(1.0)
}
