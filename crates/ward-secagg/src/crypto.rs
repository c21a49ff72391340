//! The primitives, all from audited crates: X25519 (`x25519-dalek`), HKDF-SHA256
//! (`hkdf`, `sha2`), ChaCha20-Poly1305 (`chacha20poly1305`), Shamir sharing over the
//! scalar field of Curve25519 (`vsss-rs` with `curve25519-dalek`'s `Scalar`), and the
//! ChaCha mask generator (`rand_chacha`). This file only wires them together: key
//! derivation labels, nonces, associated data and the blocked mask expansion.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use curve25519_dalek::Scalar;
use hkdf::Hkdf;
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha12Rng, ChaCha20Rng};
use rayon::prelude::*;
use sha2::Sha256;
use vsss_rs::{IdentifierPrimeField, PrimeFieldShare, ReadableShareSet, Share};
use x25519_dalek::{PublicKey, StaticSecret};

use super::params::MaskPrg;
use crate::SecAggError;

/// Domain separation for every derived key and every associated data.
const DOMAIN: &[u8] = b"ward-secagg/v1";

/// HKDF-SHA256 of `ikm` (no salt) to 32 bytes, with info
/// `DOMAIN / label || round || a || b` (little-endian).
fn hkdf32(ikm: &[u8], label: &[u8], round: u64, a: u32, b: u32) -> [u8; 32] {
    let mut info = Vec::with_capacity(DOMAIN.len() + label.len() + 17);
    info.extend_from_slice(DOMAIN);
    info.push(b'/');
    info.extend_from_slice(label);
    info.extend_from_slice(&round.to_le_bytes());
    info.extend_from_slice(&a.to_le_bytes());
    info.extend_from_slice(&b.to_le_bytes());
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit (255 * 32): expand cannot fail.
    let _ = Hkdf::<Sha256>::new(None, ikm).expand(&info, &mut okm);
    okm
}

/// A uniform scalar: 64 random bytes reduced modulo the group order.
pub(crate) fn random_scalar<R: Rng + ?Sized>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A fresh X25519 secret from 32 random bytes.
pub(crate) fn random_secret<R: Rng + ?Sized>(rng: &mut R) -> StaticSecret {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    StaticSecret::from(b)
}

/// The X25519 mask-key secret of `site`, derived from the shared field element `m`
/// (so that rebuilding `m` from Shamir shares rebuilds the key).
pub(crate) fn mask_secret(m: &Scalar, round: u64, site: u32) -> StaticSecret {
    StaticSecret::from(hkdf32(m.as_bytes(), b"mask-key", round, site, 0))
}

/// The seed of `site`'s self mask, derived from its field element `b`.
pub(crate) fn self_mask_seed(b: &Scalar, round: u64, site: u32) -> [u8; 32] {
    hkdf32(b.as_bytes(), b"self-mask", round, site, 0)
}

/// X25519 of `secret` with `peer`'s public key, refusing low-order points (a
/// non-contributory result).
pub(crate) fn agree(
    secret: &StaticSecret,
    public: &[u8; 32],
    peer: u32,
    which: &str,
) -> Result<[u8; 32], SecAggError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(SecAggError::protocol(format!(
            "the {which} public key of site {peer} is a low-order point: refused"
        )));
    }
    Ok(shared.to_bytes())
}

/// The seed of the pairwise mask of sites `u` and `v` (the same for both orders).
pub(crate) fn pair_mask_seed(shared: &[u8; 32], round: u64, u: u32, v: u32) -> [u8; 32] {
    hkdf32(shared, b"pair-mask", round, u.min(v), u.max(v))
}

/// Associated data of the share ciphertext from `from` to `to`.
fn aad(round: u64, from: u32, to: u32) -> Vec<u8> {
    let mut a = DOMAIN.to_vec();
    a.extend_from_slice(b"/shares");
    a.extend_from_slice(&round.to_le_bytes());
    a.extend_from_slice(&from.to_le_bytes());
    a.extend_from_slice(&to.to_le_bytes());
    a
}

/// The AEAD cipher for the shares sent from `from` to `to`: one key per direction
/// (HKDF of the X25519 secret with both ids in order), each encrypting one message, so
/// the all-zero nonce is never reused with a key.
fn share_cipher(shared: &[u8; 32], round: u64, from: u32, to: u32) -> ChaCha20Poly1305 {
    let key = hkdf32(shared, b"share-key", round, from, to);
    ChaCha20Poly1305::new(&key.into())
}

/// Encrypts `plaintext` from `from` to `to`.
pub(crate) fn seal(
    shared: &[u8; 32],
    round: u64,
    from: u32,
    to: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>, SecAggError> {
    let aad = aad(round, from, to);
    share_cipher(shared, round, from, to)
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SecAggError::protocol(format!("encrypting shares for site {to} failed")))
}

/// Decrypts and authenticates the ciphertext from `from` to `to`.
///
/// # Errors
/// [`SecAggError::Authentication`] naming the sender.
pub(crate) fn open(
    shared: &[u8; 32],
    round: u64,
    from: u32,
    to: u32,
    ciphertext: &[u8],
) -> Result<Vec<u8>, SecAggError> {
    let aad = aad(round, from, to);
    share_cipher(shared, round, from, to)
        .decrypt(
            &[0u8; 12].into(),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| SecAggError::Authentication { from, to })
}

/// The Shamir identifier (x-coordinate) of `site`: `site + 1` (0 is the secret).
fn identifier(site: u32) -> IdentifierPrimeField<Scalar> {
    IdentifierPrimeField(Scalar::from(u64::from(site) + 1))
}

/// Splits `secret` into one share per holder (sorted, distinct), `threshold` of which
/// rebuild it: `(holder, share value)`.
pub(crate) fn split<R: CryptoRng + ?Sized>(
    secret: &Scalar,
    threshold: u32,
    holders: &[u32],
    rng: &mut R,
) -> Result<Vec<(u32, Scalar)>, SecAggError> {
    let shares = vsss_rs::shamir::split_secret_with_ids::<PrimeFieldShare<Scalar>>(
        threshold as usize,
        holders.len(),
        &IdentifierPrimeField(*secret),
        rng,
        holders.iter().map(|&h| identifier(h)),
    )
    .map_err(|e| SecAggError::protocol(format!("Shamir split: {e}")))?;
    Ok(holders
        .iter()
        .zip(shares)
        .map(|(&h, s)| (h, s.value().0))
        .collect())
}

/// Rebuilds a secret from shares `(holder, value)` (distinct holders; at least the
/// threshold of them).
pub(crate) fn combine(shares: &[(u32, Scalar)]) -> Result<Scalar, SecAggError> {
    let set: Vec<PrimeFieldShare<Scalar>> = shares
        .iter()
        .map(|&(h, v)| {
            PrimeFieldShare::with_identifier_and_value(identifier(h), IdentifierPrimeField(v))
        })
        .collect();
    set.combine()
        .map(|s| s.0)
        .map_err(|e| SecAggError::protocol(format!("Shamir combine: {e}")))
}

/// A share value from the wire: a canonical scalar (below the group order).
pub(crate) fn scalar_from_wire(bytes: [u8; 32], what: &str) -> Result<Scalar, SecAggError> {
    Option::from(Scalar::from_canonical_bytes(bytes)).ok_or_else(|| {
        SecAggError::protocol(format!(
            "{what}: not a field element (a share value must be below the order of Curve25519's group)"
        ))
    })
}

/// One mask to add to (`negate = false`) or subtract from a vector: the expansion of
/// `seed` into 32-bit words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mask {
    /// The 32-byte seed.
    pub(crate) seed: [u8; 32],
    /// Subtract instead of add.
    pub(crate) negate: bool,
}

/// Coordinates per block: 16 Ki words (64 KiB of the vector and 64 KiB of key stream),
/// so a block stays in cache while every mask is applied to it.
const BLOCK: usize = 1 << 14;

/// Adds (or subtracts) the words `start..start + acc.len()` of the `R` stream of `seed`.
fn apply_one<R: Rng + SeedableRng<Seed = [u8; 32]>>(
    seed: [u8; 32],
    start: usize,
    negate: bool,
    acc: &mut [u32],
    buf: &mut [u8],
    set_pos: fn(&mut R, u128),
) {
    let mut rng = R::from_seed(seed);
    set_pos(&mut rng, start as u128);
    let bytes = &mut buf[..acc.len() * 4];
    rng.fill_bytes(bytes);
    let words = bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    if negate {
        for (a, w) in acc.iter_mut().zip(words) {
            *a = a.wrapping_sub(w);
        }
    } else {
        for (a, w) in acc.iter_mut().zip(words) {
            *a = a.wrapping_add(w);
        }
    }
}

/// Applies every mask to `acc` (mod `2^32`), block by block; blocks run on the rayon
/// pool when `parallel`. Word `i` of a mask is word `i` of its ChaCha stream, however
/// the vector is split.
pub(crate) fn apply_masks(prg: MaskPrg, masks: &[Mask], acc: &mut [u32], parallel: bool) {
    let block = |(b, chunk): (usize, &mut [u32])| {
        let mut buf = vec![0u8; BLOCK * 4];
        let start = b * BLOCK;
        for m in masks {
            match prg {
                MaskPrg::ChaCha8 => apply_one::<ChaCha8Rng>(
                    m.seed,
                    start,
                    m.negate,
                    chunk,
                    &mut buf,
                    ChaCha8Rng::set_word_pos,
                ),
                MaskPrg::ChaCha12 => apply_one::<ChaCha12Rng>(
                    m.seed,
                    start,
                    m.negate,
                    chunk,
                    &mut buf,
                    ChaCha12Rng::set_word_pos,
                ),
                MaskPrg::ChaCha20 => apply_one::<ChaCha20Rng>(
                    m.seed,
                    start,
                    m.negate,
                    chunk,
                    &mut buf,
                    ChaCha20Rng::set_word_pos,
                ),
            }
        }
    };
    if parallel {
        acc.par_chunks_mut(BLOCK).enumerate().for_each(block);
    } else {
        acc.chunks_mut(BLOCK).enumerate().for_each(block);
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    #[test]
    fn blocked_masks_equal_one_sequential_stream() {
        // The blocked, seeked expansion must equal reading the stream from its start.
        let seed = [7u8; 32];
        let d = 3 * BLOCK + 123;
        let mut acc = vec![5u32; d];
        apply_masks(
            MaskPrg::ChaCha12,
            &[Mask {
                seed,
                negate: false,
            }],
            &mut acc,
            true,
        );
        let mut rng = ChaCha12Rng::from_seed(seed);
        for (i, &a) in acc.iter().enumerate() {
            assert_eq!(a, 5u32.wrapping_add(rng.random::<u32>()), "word {i}");
        }
        // Adding then subtracting the same mask gives the vector back.
        apply_masks(
            MaskPrg::ChaCha12,
            &[Mask { seed, negate: true }],
            &mut acc,
            false,
        );
        assert!(acc.iter().all(|&a| a == 5));
    }

    #[test]
    fn prgs_differ_and_chacha20_matches_rfc_8439() {
        let run = |p, seed| {
            let mut a = vec![0u32; 8];
            apply_masks(
                p,
                &[Mask {
                    seed,
                    negate: false,
                }],
                &mut a,
                false,
            );
            a
        };
        let s = [1u8; 32];
        let (a, b, c) = (
            run(MaskPrg::ChaCha8, s),
            run(MaskPrg::ChaCha12, s),
            run(MaskPrg::ChaCha20, s),
        );
        assert!(a != b && b != c && a != c);
        // RFC 8439 (and RFC 7539) appendix A.1, test vector 1: key and nonce all zero,
        // block counter 0; key stream 76 b8 e0 ad a0 f1 3d 90 ... read as little-endian
        // words.
        let z = run(MaskPrg::ChaCha20, [0u8; 32]);
        assert_eq!(&z[..2], &[0xade0_b876, 0x903d_f1a0]);
    }

    #[test]
    fn shamir_round_trip_and_threshold() {
        let mut rng = ChaCha20Rng::from_seed([3u8; 32]);
        let secret = random_scalar(&mut rng);
        let shares = split(&secret, 3, &[0, 4, 9, 11, 20], &mut rng).unwrap();
        assert_eq!(combine(&shares[1..4]).unwrap(), secret);
        assert_eq!(combine(&[shares[0], shares[2], shares[4]]).unwrap(), secret);
        // Two shares of a degree-2 polynomial give some other value.
        assert_ne!(combine(&shares[..2]).unwrap(), secret);
    }

    #[test]
    fn aead_binds_sender_and_receiver() {
        let shared = [9u8; 32];
        let ct = seal(&shared, 1, 2, 3, b"shares").unwrap();
        assert_eq!(open(&shared, 1, 2, 3, &ct).unwrap(), b"shares");
        assert_eq!(
            open(&shared, 1, 3, 2, &ct).unwrap_err(),
            SecAggError::Authentication { from: 3, to: 2 }
        );
        assert_eq!(
            open(&shared, 2, 2, 3, &ct).unwrap_err(),
            SecAggError::Authentication { from: 2, to: 3 },
            "another round"
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(
            open(&shared, 1, 2, 3, &bad).unwrap_err(),
            SecAggError::Authentication { from: 2, to: 3 }
        );
    }

    #[test]
    fn low_order_keys_are_refused() {
        let mut rng = ChaCha20Rng::from_seed([4u8; 32]);
        let s = random_secret(&mut rng);
        // The all-zero u-coordinate is a point of order 4 on Curve25519.
        let e = agree(&s, &[0u8; 32], 5, "mask").unwrap_err().to_string();
        assert!(e.contains("site 5") && e.contains("low-order"), "{e}");
    }
}
