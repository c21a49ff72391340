//! Secure aggregation, SecAgg+ (Bell et al. 2020, building on Bonawitz et al. 2017).
//! (docs to come)

mod client;
mod crypto;
mod driver;
mod graph;
mod messages;
mod params;
mod quantize;
mod server;

pub use client::SecAggClient;
pub use driver::{DropPoint, RoundOptions, RoundReport, StageStats, choose_dropouts, run_round};
pub use graph::CommunicationGraph;
pub use messages::{
    AdvertiseKeys, EncryptedShares, ForwardedShares, MaskedInput, NeighbourKeys, RevealedShare,
    RingVector, ShareKeys, SiteKeys, UnmaskRequest, UnmaskResponse,
};
pub use params::{MaskPrg, SecAggParams};
pub use quantize::{Quantizer, Rounding};
pub use server::{SecAggOutput, SecAggServer};

#[cfg(test)]
mod tests;
