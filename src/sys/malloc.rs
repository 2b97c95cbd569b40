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

/// Blocks this large or larger are their own mappings, unmapped when freed: a pull's big
/// buffers (HTTP reads of ~400 KiB) never sit in an arena's heap.
pub const DAEMON_MMAP_THRESHOLD: i32 = 256 * 1024;
/// Free memory at the top of an arena's heap past this is given back at once, in every arena.
pub const DAEMON_TRIM_THRESHOLD: i32 = 1024 * 1024;

/// Fixes glibc's mmap and trim thresholds. By default glibc raises both each time a mapped block
/// is freed (up to 32 MiB and 64 MiB), after which large buffers live in the heap and a second
/// arena's freed top stays: `malloc_trim` shrinks only the main arena's top, so berthd kept up to
/// 4.5 MiB there after pulls (docs/benchmarks.md). Setting them turns that adjustment off. False
/// when glibc refused (or elsewhere than glibc).
pub fn fix_thresholds(mmap: i32, trim: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and only sets tunables of glibc's allocator under
        // its own lock.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (mmap, trim);
        false
    }
}

/// Asks glibc to release free memory of every malloc arena (whole free pages inside each heap,
/// and the main heap's top) to the kernel. True when some memory was released. A no-op elsewhere.
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
    fn glibc_accepts_fixed_thresholds() {
        assert!(
            super::fix_thresholds(super::DAEMON_MMAP_THRESHOLD, super::DAEMON_TRIM_THRESHOLD),
            "mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD) refused"
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
