//! Keeping the heap memory glibc's allocator holds small: fewer arenas, and freed memory given
//! back to the system.

/// Arenas berthd lets glibc create. glibc's default is 8 per core, one more for each thread that
/// finds the others busy; a pull's unpack threads each fill their own, and memory freed in one arena
/// cannot serve another, so idle berthd kept several half-empty arenas (docs/benchmarks.md).
pub const DAEMON_ARENAS: i32 = 2;

/// Caps the number of glibc malloc arenas at `n` (the main one included). Call it first thing in
/// `main`, before any thread starts. False when glibc refused (or elsewhere than glibc).
pub fn limit_arenas(n: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and only sets a tunable of glibc's allocator under
        // its own lock; M_ARENA_MAX affects only arenas created from now on.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        false
    }
}

/// Asks glibc to release free memory of every malloc arena (the top of each heap and whole free
/// pages inside it) to the kernel. True when some memory was released. A no-op elsewhere.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointers and has no preconditions; it walks glibc's own
        // arenas under their locks and is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_an_arena_cap() {
        assert!(
            super::limit_arenas(super::DAEMON_ARENAS),
            "mallopt(M_ARENA_MAX) refused"
        );
    }

    #[test]
    fn trimming_after_freeing_a_large_heap_releases_memory() {
        // Many small blocks (below the mmap threshold) live on the heap; freed, they stay with
        // the allocator until trimmed.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4000]).collect();
        drop(blocks);
        assert!(super::trim(), "malloc_trim released nothing");
    }
}
