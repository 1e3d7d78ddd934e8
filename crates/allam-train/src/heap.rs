//! Keeping freed memory in the process between training steps.
//!
//! glibc's malloc gives every block above its mmap threshold back to the operating system when it
//! is freed, and trims the heap's top above 128 KiB. A training step frees and allocates the same
//! activation and gradient buffers (4–17 MB each at the 56M shape) again and again, so each step
//! faulted in fresh pages that the kernel had to zero: `clear_page_erms` alone was 11 % of a
//! step's CPU samples on the 2-core development machine (docs/PERFORMANCE.md). With the largest
//! mmap threshold glibc accepts (32 MiB), a 1 GiB trim threshold and a 256 MiB top pad, those
//! buffers are reused from the heap: +7–9 % tokens/s for +3–6 % peak RSS (`allam bench train`,
//! alternated three times).
//!
//! A process-wide setting, so the binaries call it first thing; a library user may too.

/// Tunes glibc's malloc as the module describes; on other platforms it does nothing. Returns
/// whether every setting was accepted.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's parameters; called once at start-up.
        unsafe {
            [
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20),
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30),
                libc::mallopt(libc::M_TOP_PAD, 256 << 20),
            ]
            .iter()
            .all(|&accepted| accepted == 1)
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_every_setting() {
        assert!(super::keep_freed_memory());
    }
}
