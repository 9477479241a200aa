//! Settings of the process itself, made once at the top of `main`.

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing).
///
/// The allocator (mimalloc) asks the kernel for huge pages for its arenas, and a process whose
/// memory grows quickly then spends its time in the kernel zeroing 2 MiB pages it touches only
/// in part: a third of the reservation bench's CPU samples under a rush of holds. With huge
/// pages off, holds on one hot SKU went from about 13,400 to 16,300 per second on PostgreSQL,
/// and the p99 from 16 ms to 7 ms (docs/benchmarks.md); recommendations and `/healthz` did not
/// move. The setting is inherited by child processes. Returns whether it took effect.
pub fn no_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off() {
        assert!(super::no_transparent_huge_pages());
        // PR_GET_THP_DISABLE reads it back.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }
}
