//! The ground floor every allam crate stands on: how a file the user keeps is written, how input
//! that may be compressed is read, and the one seeded random number generator.
//!
//! [`AtomicFile`] is the one way the project writes checkpoints, exports, metrics summaries,
//! reports, plots, tokenizers and data shards: a temporary sibling, fsync, rename, fsync of the
//! directory. A reader (or a crash) sees the old file or the whole new one, never half of it, and
//! the file gets the mode `File::create` would give under the user's umask — not the owner-only
//! mode of a private temporary file.
//!
//! [`decoded`] reads plain, gzip and zstd input alike, telling them apart by content;
//! [`rng::SplitMix64`] is the serialisable generator behind every seeded draw.
mod atomic;
pub mod decoded;
pub mod rng;

pub use atomic::{AtomicFile, copy_atomic, write_atomic};
pub use decoded::{Compression, decoded_reader, open_decoded};
pub use rng::SplitMix64;
