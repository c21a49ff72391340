//! Checkpoints: the whole federation state, written atomically after every round.
//!
//! File format: the magic `WARDCKPT`, a format version (u32 LE), an FNV-1a 64-bit
//! checksum of the body (u64 LE), then the body in `postcard` encoding. A checkpoint
//! is written to a temporary file in the same directory, flushed to disk, and renamed
//! over the old one (then the directory is synced), so a crash at any moment leaves
//! either the old or the new checkpoint, never a torn one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::FlError;
use crate::federation::ServerState;

const MAGIC: &[u8; 8] = b"WARDCKPT";
/// Format version. 2 adds secure aggregation's round records to the server state; 3
/// the hash of the experiment the run was started with; 4 each site's dropout stream; 5
/// the previous aggregate update (centered clipping's centre).
const VERSION: u32 = 5;

/// The federation's state after a round: global model, server optimizer state, SCAFFOLD
/// control, selection RNG, and every site's state (batch order, RNG, optimizer state,
/// control variate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    state: ServerState,
    sites: Vec<Vec<u8>>,
    /// Length in bytes of the run's `metrics.jsonl` when this checkpoint was taken; a
    /// resume truncates the log there, so rows of a half-finished round are not doubled.
    pub metrics_len: u64,
    /// The gradient engine that produced the state (e.g. `cpu:native`); a resume on
    /// another engine would not continue bit-identically, so it is refused.
    pub backend: String,
    /// SHA-256 (hex) of the run's resolved `config.toml` when the run started; a resume
    /// whose config differs is refused (it would run other settings than those the
    /// directory's results came from). Empty where the caller keeps no config file.
    pub config_hash: String,
}

impl Checkpoint {
    pub(crate) fn new(state: ServerState, sites: Vec<Vec<u8>>) -> Self {
        Self {
            state,
            sites,
            metrics_len: 0,
            backend: String::new(),
            config_hash: String::new(),
        }
    }

    pub(crate) fn parts(&self) -> (&ServerState, &[Vec<u8>]) {
        (&self.state, &self.sites)
    }

    /// Rounds completed at this checkpoint.
    pub fn round(&self) -> usize {
        self.state.round
    }

    /// The global model at this checkpoint.
    pub fn global(&self) -> &ward_core::Params {
        &self.state.global
    }

    /// Encodes the checkpoint (header, checksum, body).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FlError> {
        let body = postcard::to_stdvec(self)
            .map_err(|e| FlError::Checkpoint(format!("encoding failed: {e}")))?;
        let mut out = Vec::with_capacity(body.len() + 20);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&fnv1a(&body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes what [`Checkpoint::to_bytes`] wrote; a wrong magic, version or checksum
    /// is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FlError> {
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(FlError::Checkpoint(
                "not a Ward checkpoint (bad magic or truncated header)".into(),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(FlError::Checkpoint(format!(
                "checkpoint format version {version}, this Ward reads version {VERSION} only{}",
                if version < VERSION {
                    ": it was written by an older Ward and cannot be resumed; rerun the experiment without --resume"
                } else {
                    ": it was written by a newer Ward"
                }
            )));
        }
        let sum = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let body = &bytes[20..];
        if fnv1a(body) != sum {
            return Err(FlError::Checkpoint(
                "checksum mismatch: the checkpoint is corrupt".into(),
            ));
        }
        postcard::from_bytes(body)
            .map_err(|e| FlError::Checkpoint(format!("body does not decode: {e}")))
    }

    /// Writes the checkpoint to `path` atomically (temp file, fsync, rename, dir fsync).
    pub fn write_atomic(&self, path: &Path) -> Result<(), FlError> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint; errors name the file.
    pub fn read(path: &Path) -> Result<Self, FlError> {
        let bytes = fs_err::read(path)?;
        Self::from_bytes(&bytes)
            .map_err(|e| FlError::Checkpoint(format!("{}: {e}", path.display())))
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one:
/// [`ward_core::fsutil::write_atomic`] (temporary file in the same directory, synced,
/// renamed over `path`, directory synced), its error as [`FlError::Io`] naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FlError> {
    ward_core::fsutil::write_atomic(path, bytes).map_err(FlError::from)
}

/// FNV-1a, 64 bit: a checksum against torn or flipped bytes (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // Reference values of FNV-1a 64 from the FNV authors' test suite
        // (http://www.isthe.com/chongo/tech/comp/fnv/): "" and "a".
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn corrupt_or_foreign_bytes_are_errors() {
        let err = Checkpoint::from_bytes(b"hello").unwrap_err().to_string();
        assert!(
            err.contains("not a Ward checkpoint (bad magic or truncated header)"),
            "{err}"
        );
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&VERSION.to_le_bytes());
        bad.extend_from_slice(&0u64.to_le_bytes());
        bad.extend_from_slice(b"body");
        let err = Checkpoint::from_bytes(&bad).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn an_older_version_says_it_cannot_be_resumed() {
        let mut old = MAGIC.to_vec();
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&fnv1a(b"body").to_le_bytes());
        old.extend_from_slice(b"body");
        let err = Checkpoint::from_bytes(&old).unwrap_err().to_string();
        assert!(
            err.contains(&format!("version 1, this Ward reads version {VERSION}"))
                && err.contains("without --resume"),
            "{err}"
        );
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs_err::read(&p).unwrap(), b"second");
        // No temporary files left behind.
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 1);
        // A missing directory is an I/O error naming the path.
        let missing = dir.path().join("gone").join("f.bin");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert!(
            matches!(&e, FlError::Io(m) if m.contains(&missing.display().to_string())),
            "{e}"
        );
    }
}
