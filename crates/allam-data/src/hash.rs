//! Hashing helpers: a stable hash of labels and a pass-through hasher for keys that already are
//! hashes.

/// A stable 64-bit hash of a label (source names), independent of Rust's randomised hasher.
pub fn label_hash(label: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(label.as_bytes())
}

/// A hasher for keys that are already hashes (xxh3): passes the `u64` through.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ (self.0 >> 56) ^ b as u64;
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// `BuildHasher` for [`IdentityHasher`].
pub type IdentityBuild = std::hash::BuildHasherDefault<IdentityHasher>;
