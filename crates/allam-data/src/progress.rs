//! How a data build reports its progress: callbacks the CLI draws as a bar, so the library
//! stays free of any display.

/// Progress callbacks (the CLI draws a bar; the library stays UI-free).
pub trait Progress: Sync {
    /// Total input bytes about to be read.
    fn start(&self, _total_bytes: u64) {}
    /// Another `bytes` of input were read.
    fn advance(&self, _bytes: u64) {}
    /// A new stage or source.
    fn message(&self, _message: &str) {}
}

/// Progress that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
