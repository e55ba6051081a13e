//! Which path the bytes took: the statistics, defined once, as the C struct the exports
//! fill (cbindgen writes it into the header from here).

/// Which path the bytes given to `blight_send_zerocopy` took, on one socket or (for
/// `fd == -1`) in the whole process. Bytes sent = `zerocopy_bytes + splice_bytes +
/// copied_bytes`; `kernel_copied_bytes` is the part of `zerocopy_bytes` that the kernel
/// reported it copied after all (`SO_EE_CODE_ZEROCOPY_COPIED`).
///
/// The struct grows: later versions only append fields. Read it with
/// `blight_get_zerocopy_stats(fd, &stats)`, a macro that passes the size of the struct
/// this header declares: the library fills the fields both know, and zeros those it does
/// not know yet.
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

/// The size of `blight_zerocopy_stats` in 1.0, the first release: what
/// `blight_get_zerocopy_stats` (the function) fills, and the smallest size
/// `blight_get_zerocopy_stats_sized` accepts.
pub const BLIGHT_ZEROCOPY_STATS_SIZE_V1: usize = 104;

// The ABI: fields are only ever appended, and the struct has no padding (its bytes are
// copied out whole, as far as the caller's size goes): u64 counters, u32 ones in pairs.
// The C test stats_abi_test checks every 1.0 field's offset against a frozen copy.
const _: () = {
    use std::mem::{offset_of, size_of};
    // The 1.0 fields end where they did.
    assert!(offset_of!(blight_zerocopy_stats, held_sends) + size_of::<u32>() == BLIGHT_ZEROCOPY_STATS_SIZE_V1);
    // The struct ends with its last field (no tail padding): name the new last field here
    // when appending one.
    assert!(size_of::<blight_zerocopy_stats>() == offset_of!(blight_zerocopy_stats, held_sends) + size_of::<u32>());
};

/// The statistics the library keeps: the C struct, whose `path` it fills only on the
/// way out.
pub(crate) type Stats = blight_zerocopy_stats;

impl Stats {
    /// Adds every counter of `o` to this one (`path` is left alone). Field by field, and
    /// `o` taken apart whole: a field added to the struct does not compile until it is
    /// summed here (or said not to be).
    pub(crate) fn add(&mut self, o: &Stats) {
        let Stats {
            zerocopy_sends,
            zerocopy_bytes,
            kernel_copied_sends,
            kernel_copied_bytes,
            splice_sends,
            splice_bytes,
            copied_sends,
            copied_bytes,
            enobufs_retries,
            completed_sends,
            abandoned_sends,
            pending_sends,
            path: _,
            held_sends,
        } = *o;
        self.zerocopy_sends += zerocopy_sends;
        self.zerocopy_bytes += zerocopy_bytes;
        self.kernel_copied_sends += kernel_copied_sends;
        self.kernel_copied_bytes += kernel_copied_bytes;
        self.splice_sends += splice_sends;
        self.splice_bytes += splice_bytes;
        self.copied_sends += copied_sends;
        self.copied_bytes += copied_bytes;
        self.enobufs_retries += enobufs_retries;
        self.completed_sends += completed_sends;
        self.abandoned_sends += abandoned_sends;
        self.pending_sends += pending_sends;
        self.held_sends = self.held_sends.saturating_add(held_sends);
    }

    /// Copies the first `size` bytes of these statistics to `out`, and zeros what the
    /// caller's struct has beyond this library's (fields of a newer header read 0).
    ///
    /// # Safety
    /// `out` points to `size` writable bytes.
    pub(crate) unsafe fn copy_out(&self, out: *mut u8, size: usize) {
        let n = size.min(std::mem::size_of::<Stats>());
        // SAFETY: `self` is `size_of::<Stats>()` bytes of plain integers without padding
        // (asserted above), so its first `n` bytes are initialized; the caller gives `size`
        // writable bytes at `out`, which cannot overlap `self` (a local copy).
        unsafe {
            std::ptr::copy_nonoverlapping((self as *const Stats).cast::<u8>(), out, n);
            std::ptr::write_bytes(out.add(n), 0, size - n);
        }
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
        let twos = Stats {
            zerocopy_sends: 2,
            zerocopy_bytes: 2,
            kernel_copied_sends: 2,
            kernel_copied_bytes: 2,
            splice_sends: 2,
            splice_bytes: 2,
            copied_sends: 2,
            copied_bytes: 2,
            enobufs_retries: 2,
            completed_sends: 2,
            abandoned_sends: 2,
            pending_sends: 2,
            path: 3,
            held_sends: 2,
        };
        assert_eq!(total, twos);
    }

    #[test]
    fn copy_out_fills_what_both_know_and_zeros_the_rest() {
        let s = Stats { zerocopy_sends: 7, held_sends: 9, path: 2, ..Stats::default() };
        let mut small = [0xA5u8; 24]; // an older, smaller struct (three fields)
                                      // SAFETY: 16 writable bytes; the last 8 must stay untouched.
        unsafe { s.copy_out(small.as_mut_ptr(), 16) };
        assert_eq!(u64::from_ne_bytes(small[..8].try_into().unwrap()), 7);
        assert_eq!(&small[16..], &[0xA5; 8]);
        let size = std::mem::size_of::<Stats>();
        let mut big = vec![0xA5u8; size + 16]; // a newer, bigger one
                                               // SAFETY: size + 16 writable bytes.
        unsafe { s.copy_out(big.as_mut_ptr(), size + 16) };
        assert_eq!(&big[size..], &[0; 16]);
        // SAFETY: the first `size` bytes are a Stats.
        assert_eq!(unsafe { std::ptr::read_unaligned(big.as_ptr().cast::<Stats>()) }, s);
    }
}
