//! The COPIED rule: after a run of sends that the kernel reported it copied anyway
//! (`SO_EE_CODE_ZEROCOPY_COPIED`), a socket stops using `MSG_ZEROCOPY`. Pure logic.

/// After this many sends in a row that the kernel reported COPIED, the socket stops using
/// `MSG_ZEROCOPY` (msg_zerocopy.rst: "copied ... the process may want to stop passing
/// MSG_ZEROCOPY"): the pinning and the notification cost CPU and bring nothing.
pub(crate) const COPIED_RUN_LIMIT: u32 = 8;
/// ... or after this many bytes in a row reported COPIED, over at least two sends: one send
/// call on a stream can carry megabytes, and eight of them would be tens of megabytes
/// pinned, copied anyway and notified for nothing (measured on TCP loopback with 10 MiB
/// messages: eight sends were about 11 MB, four messages, on every new connection).
pub(crate) const COPIED_RUN_BYTES: u64 = 2 << 20;

/// The completed sends since the last one the kernel did not copy.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopiedRun {
    pub sends: u32,
    pub bytes: u64,
}

impl CopiedRun {
    /// Records `sends` completed sends of `bytes` in all, `copied` or not; true once the run
    /// is long enough to stop using `MSG_ZEROCOPY`.
    pub fn note(&mut self, sends: u64, bytes: u64, copied: bool) -> bool {
        if sends == 0 {
            return false;
        }
        if !copied {
            *self = CopiedRun::default();
            return false;
        }
        self.sends = self.sends.saturating_add(u32::try_from(sends).unwrap_or(u32::MAX));
        self.bytes = self.bytes.saturating_add(bytes);
        self.sends >= COPIED_RUN_LIMIT || (self.sends >= 2 && self.bytes >= COPIED_RUN_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_small_copied_sends_end_zero_copy() {
        let mut run = CopiedRun::default();
        for _ in 0..COPIED_RUN_LIMIT - 1 {
            assert!(!run.note(1, 16 << 10, true));
        }
        assert!(run.note(1, 16 << 10, true));
    }

    #[test]
    fn two_large_copied_sends_end_zero_copy_but_one_does_not() {
        let mut run = CopiedRun::default();
        assert!(!run.note(1, 64 << 20, true), "one send, however large, is not a run");
        assert!(run.note(1, 1, true));
        let mut run = CopiedRun::default();
        assert!(run.note(2, COPIED_RUN_BYTES, true), "one notification may cover two sends");
    }

    #[test]
    fn a_send_the_kernel_did_not_copy_starts_the_run_again() {
        let mut run = CopiedRun::default();
        for _ in 0..COPIED_RUN_LIMIT - 1 {
            assert!(!run.note(1, 1000, true));
        }
        assert!(!run.note(1, 1000, false));
        assert_eq!(run, CopiedRun::default());
        assert!(!run.note(COPIED_RUN_LIMIT as u64 - 1, 1000, true));
        assert!(run.note(1, 1000, true));
    }

    #[test]
    fn a_notification_that_completed_nothing_changes_nothing() {
        let mut run = CopiedRun { sends: 3, bytes: 300 };
        assert!(!run.note(0, 0, false));
        assert_eq!(run, CopiedRun { sends: 3, bytes: 300 });
    }

    #[test]
    fn counts_saturate() {
        let mut run = CopiedRun::default();
        assert!(run.note(u64::MAX, u64::MAX, true));
        assert!(run.note(u64::MAX, u64::MAX, true));
        assert_eq!(run, CopiedRun { sends: u32::MAX, bytes: u64::MAX });
    }
}
