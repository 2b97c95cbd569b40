//! Giving the heap memory the allocator holds but no longer uses back to the system.

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
    fn trimming_after_freeing_a_large_heap_releases_memory() {
        // Many small blocks (below the mmap threshold) live on the heap; freed, they stay with
        // the allocator until trimmed.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4000]).collect();
        drop(blocks);
        assert!(super::trim(), "malloc_trim released nothing");
    }
}
