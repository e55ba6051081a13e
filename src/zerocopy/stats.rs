//! Which path the bytes took: the statistics, defined once, as the C struct the exports
//! fill (cbindgen writes it into the header from here).

/// Which path the bytes given to `blight_send_zerocopy` took, on one socket or (for
/// `fd == -1`) in the whole process. Bytes sent = `zerocopy_bytes + splice_bytes +
/// copied_bytes`; `kernel_copied_bytes` is the part of `zerocopy_bytes` that the kernel
/// reported it copied after all (`SO_EE_CODE_ZEROCOPY_COPIED`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct blight_zerocopy_stats {
    /// Send calls made with `MSG_ZEROCOPY`, and the bytes they sent.
    pub zerocopy_sends: u64,
    pub zerocopy_bytes: u64,
    /// Of those, the sends (and bytes) the kernel reported it copied.
    pub kernel_copied_sends: u64,
    pub kernel_copied_bytes: u64,
    /// splice calls that moved the caller's pages into an AF_UNIX socket, and their bytes.
    pub splice_sends: u64,
    pub splice_bytes: u64,
    /// Copying sends made by this library (chunks under the threshold, sockets without a
    /// zero-copy path, ENOBUFS fallbacks), and their bytes.
    pub copied_sends: u64,
    pub copied_bytes: u64,
    /// Times `MSG_ZEROCOPY` failed with ENOBUFS (option memory full) and was retried.
    pub enobufs_retries: u64,
    /// Zero-copy and splice sends the kernel has finished with.
    pub completed_sends: u64,
    /// Sends still in flight when their socket was forgotten or found closed. Their
    /// buffers are not freed then: the kernel may still read them (an AF_UNIX peer that
    /// has not read them yet, TCP data not yet sent). They are held, see `held_sends`.
    pub abandoned_sends: u64,
    /// Sends still in flight (held ones included).
    pub pending_sends: u64,
    /// One of `BLIGHT_ZEROCOPY_PATH_*` (`NONE` for the process-wide totals).
    pub path: u32,
    /// Of `pending_sends`, those of forgotten (or closed) sockets, held after forget: their
    /// buffers are freed only if the socket is seen again through a descriptor (a `dup`, or
    /// the same number while it is still open) and the kernel then reports them complete;
    /// otherwise they are held until the process exits.
    pub held_sends: u32,
}

/// The statistics the library keeps: the C struct, whose `path` it fills only on the
/// way out.
pub(crate) type Stats = blight_zerocopy_stats;

/// Every field before `path` is a `u64` counter: [`Stats::add`] sums them as an array, so
/// that adding a counter to the struct is the whole change.
const COUNTERS: usize = std::mem::offset_of!(Stats, path) / std::mem::size_of::<u64>();
const _: () = assert!(
    std::mem::offset_of!(Stats, path) == COUNTERS * std::mem::size_of::<u64>()
        && std::mem::align_of::<Stats>() >= std::mem::align_of::<u64>()
);

impl Stats {
    fn counters(&self) -> &[u64; COUNTERS] {
        // SAFETY: repr(C), and the first COUNTERS * 8 bytes are COUNTERS u64 fields with no
        // padding between them (asserted above), so they are laid out as a [u64; COUNTERS].
        unsafe { &*(self as *const Stats).cast::<[u64; COUNTERS]>() }
    }

    fn counters_mut(&mut self) -> &mut [u64; COUNTERS] {
        // SAFETY: as in `counters`.
        unsafe { &mut *(self as *mut Stats).cast::<[u64; COUNTERS]>() }
    }

    /// Adds every counter of `o` to this one (`path` is left alone).
    pub(crate) fn add(&mut self, o: &Stats) {
        for (a, b) in self.counters_mut().iter_mut().zip(o.counters()) {
            *a += b;
        }
        self.held_sends = self.held_sends.saturating_add(o.held_sends);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sums_every_counter_and_leaves_path_alone() {
        let ones = Stats {
            zerocopy_sends: 1,
            zerocopy_bytes: 1,
            kernel_copied_sends: 1,
            kernel_copied_bytes: 1,
            splice_sends: 1,
            splice_bytes: 1,
            copied_sends: 1,
            copied_bytes: 1,
            enobufs_retries: 1,
            completed_sends: 1,
            abandoned_sends: 1,
            pending_sends: 1,
            path: 7,
            held_sends: 1,
        };
        let mut total = Stats { path: 3, ..Stats::default() };
        total.add(&ones);
        total.add(&ones);
        assert_eq!(total, Stats { path: 3, ..ones }.doubled());
    }

    impl Stats {
        fn doubled(mut self) -> Stats {
            for c in self.counters_mut() {
                *c *= 2;
            }
            self.held_sends *= 2;
            self
        }
    }
}
