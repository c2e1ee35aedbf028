//! SHA-256 digests as 64 hexadecimal digits: what manifests record of model and data files,
//! and what the crate's own files carry to detect changed bytes.

use std::fs;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoOperation, Result};

/// A SHA-256 computed piece by piece.
#[derive(Default)]
pub(crate) struct Hasher(Sha256);

impl Hasher {
    /// Adds bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Adds a length-prefixed field, so that consecutive fields cannot run into each other
    /// (`"ab" + "c"` and `"a" + "bc"` hash differently).
    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// The digest in lowercase hexadecimal.
    pub(crate) fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The SHA-256 of some bytes.
#[cfg(test)]
fn of_bytes(bytes: &[u8]) -> String {
    let mut h = Hasher::default();
    h.update(bytes);
    h.hex()
}

/// The SHA-256 of a file's bytes, read in 64 KiB pieces.
pub(crate) fn of_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|e| Error::io(IoOperation::Open, path, e))?;
    let mut h = Hasher::default();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| Error::io(IoOperation::Read, path, e))?;
        if read == 0 {
            return Ok(h.hex());
        }
        h.update(&buffer[..read]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // FIPS 180-2, appendix B.1, and the digest of no bytes.
        assert_eq!(
            of_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            of_bytes(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn fields_do_not_run_into_each_other() {
        let two = |a: &[u8], b: &[u8]| {
            let mut h = Hasher::default();
            h.field(a);
            h.field(b);
            h.hex()
        };
        assert_ne!(two(b"ab", b"c"), two(b"a", b"bc"));
    }
}
