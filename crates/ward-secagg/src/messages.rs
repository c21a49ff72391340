//! The messages of one round, in protocol order. All are `serde` types (the in-process
//! driver sends them as `postcard`); a site's identity comes from the transport (an
//! authenticated channel), not from the message, so client-to-server messages do not
//! name their sender.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Stage 1, site to server: the site's two X25519 public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertiseKeys {
    /// Key agreement for encrypting Shamir shares (`c_u^PK` in Bonawitz et al.).
    pub enc_key: [u8; 32],
    /// Key agreement for pairwise masks (`s_u^PK`).
    pub mask_key: [u8; 32],
}

/// One site's advertised keys, as the server forwards them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteKeys {
    /// The site.
    pub site: u32,
    /// Its share-encryption public key.
    pub enc_key: [u8; 32],
    /// Its mask public key.
    pub mask_key: [u8; 32],
}

/// Stage 1, server to site: the keys of the site's neighbours that advertised them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourKeys {
    /// One entry per neighbour that advertised keys.
    pub keys: Vec<SiteKeys>,
}

/// An encrypted bundle of Shamir shares between two sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedShares {
    /// The other site: the receiver in [`ShareKeys`], the sender in
    /// [`ForwardedShares`].
    pub peer: u32,
    /// ChaCha20-Poly1305 ciphertext of the shares (with its tag).
    pub ciphertext: Vec<u8>,
}

/// Stage 2, site to server: for each neighbour, the neighbour's shares of this site's
/// mask-key secret and self-mask seed, encrypted for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareKeys {
    /// One ciphertext per neighbour that advertised keys.
    pub shares: Vec<EncryptedShares>,
}

/// Stage 2, server to site: the ciphertexts the site's neighbours made for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedShares {
    /// One ciphertext per neighbour that shared keys.
    pub shares: Vec<EncryptedShares>,
}

/// The plaintext inside an [`EncryptedShares`]: the receiver's share (x-coordinate
/// `to + 1`) of each of the sender's two secrets, as canonical scalars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharePayload {
    /// The sender.
    pub(crate) from: u32,
    /// The receiver.
    pub(crate) to: u32,
    /// Share of the sender's mask-key secret.
    pub(crate) key_share: [u8; 32],
    /// Share of the sender's self-mask seed.
    pub(crate) seed_share: [u8; 32],
}

/// A vector over the ring `Z_{2^32}`, sent as its little-endian bytes (4 per value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RingVector(pub Vec<u32>);

impl Serialize for RingVector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut b = Vec::with_capacity(self.0.len() * 4);
        for v in &self.0 {
            b.extend_from_slice(&v.to_le_bytes());
        }
        s.serialize_bytes(&b)
    }
}

struct RingVisitor;

impl RingVisitor {
    fn words<E: de::Error>(v: &[u8]) -> Result<RingVector, E> {
        if !v.len().is_multiple_of(4) {
            return Err(E::invalid_length(v.len(), &"a multiple of 4 bytes"));
        }
        Ok(RingVector(
            v.chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect(),
        ))
    }
}

impl<'de> Visitor<'de> for RingVisitor {
    type Value = RingVector;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the little-endian bytes of 32-bit words")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RingVector, E> {
        Self::words(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<RingVector, E> {
        Self::words(&v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RingVector, A::Error> {
        let mut b = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(x) = seq.next_element::<u8>()? {
            b.push(x);
        }
        Self::words(&b)
    }
}

impl<'de> Deserialize<'de> for RingVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(RingVisitor)
    }
}

/// Stage 3, site to server: the quantised update plus the self mask and the pairwise
/// masks, mod `2^32`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedInput {
    /// The masked vector (length `dim`).
    pub masked: RingVector,
}

/// Stage 4, server to a surviving site: which of its neighbours survived (send their
/// self-mask-seed shares) and which dropped (send their mask-key shares). Never both
/// for one site: the client refuses such a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    /// Sites (the receiver included) whose masked input arrived.
    pub survivors: Vec<u32>,
    /// Neighbours that shared keys but whose masked input did not arrive.
    pub dropped: Vec<u32>,
}

/// One Shamir share revealed to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedShare {
    /// Whose secret this is a share of.
    pub site: u32,
    /// The share value (a canonical scalar).
    pub value: [u8; 32],
}

/// Stage 4, site to server: the shares the request asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskResponse {
    /// Shares of the survivors' self-mask seeds.
    pub seed_shares: Vec<RevealedShare>,
    /// Shares of the dropped sites' mask-key secrets.
    pub key_shares: Vec<RevealedShare>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_vector_is_four_bytes_a_value_on_the_wire() {
        let v = MaskedInput {
            masked: RingVector(vec![1, 0xdead_beef, u32::MAX]),
        };
        let b = postcard::to_allocvec(&v).unwrap();
        // One varint length byte (12), then 12 raw bytes.
        assert_eq!(b.len(), 13);
        assert_eq!(&b[1..5], &[1, 0, 0, 0]);
        assert_eq!(postcard::from_bytes::<MaskedInput>(&b).unwrap(), v);
    }

    #[test]
    fn a_ragged_ring_vector_is_an_error() {
        // Length 5: not a whole number of words.
        let b = [5u8, 1, 2, 3, 4, 5];
        let e = postcard::from_bytes::<MaskedInput>(&b).unwrap_err();
        assert!(matches!(e, postcard::Error::SerdeDeCustom), "{e:?}");
        // A truncated message.
        let e = postcard::from_bytes::<MaskedInput>(&[9, 1, 2]).unwrap_err();
        assert_eq!(e, postcard::Error::DeserializeUnexpectedEnd, "{e}");
    }
}
