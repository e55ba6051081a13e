//! Per-socket state: which path sends take, the notification counter, the sends in flight,
//! and the statistics that say which path every byte took.
use super::copied_run::CopiedRun;
use super::notify::{PendingSend, PendingSends};
use super::stats::Stats;
use crate::sys;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// How a socket's large chunks are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `SO_ZEROCOPY` is on: large chunks go with `MSG_ZEROCOPY`, completions come through
    /// the error queue.
    MsgZerocopy,
    /// `AF_UNIX` stream: large chunks are moved with `vmsplice` + `splice`, completions
    /// are inferred from `SIOCOUTQ`.
    Splice,
    /// Everything is copied (`SO_ZEROCOPY` refused, or a socket type neither path fits).
    Copy,
}

/// Sends moved by splice, oldest first: each is complete once the peer has consumed the
/// stream up to `end` (a position in the bytes this library wrote).
#[derive(Debug, Default)]
pub struct SplicedSends {
    pub written: u64,
    pub pending: VecDeque<(u64, PendingSend)>,
}

impl SplicedSends {
    /// Makes room for one more pending send (false: out of memory).
    pub fn reserve_one(&mut self) -> bool {
        self.pending.try_reserve(1).is_ok()
    }
}

#[derive(Debug)]
pub struct SocketState {
    pub path: Path,
    /// Set after a run of COPIED notifications: new chunks are copied, but the error queue
    /// is still read for the sends already in flight.
    pub kernel_copies: bool,
    pub copied_run: CopiedRun,
    /// `SO_ZEROCOPY` is on (an `AF_INET`/`AF_INET6` socket): its error queue holds
    /// notifications, never protocol data, and may be read.
    pub notifications: bool,
    /// The socket was forgotten (or found closed): nothing sent through this entry would
    /// ever be completed, so a send that finds it set looks the socket up again.
    pub retired: bool,
    /// A socket error read from the error queue by a `process_completions` call that also
    /// completed sends (and returned their count): the next call returns it.
    pub unreported_error: Option<i32>,
    /// The id the kernel will give the next successful `MSG_ZEROCOPY` send.
    pub next_id: u32,
    pub pending: PendingSends,
    pub spliced: SplicedSends,
    pub stats: Stats,
}

impl SocketState {
    pub fn pending_count(&self) -> usize {
        self.pending.len() + self.spliced.pending.len()
    }

    pub fn snapshot(&self) -> Stats {
        let pending = self.pending_count();
        let held = if self.retired { u32::try_from(pending).unwrap_or(u32::MAX) } else { 0 };
        Stats { pending_sends: pending as u64, held_sends: held, ..self.stats }
    }

    /// Moves the sends still in flight into `heir`, another descriptor's entry of the same
    /// socket, which stays open when this descriptor goes away: its completions still
    /// come (notifications, `SIOCOUTQ`), so the sends are not abandoned. Only into an
    /// heir that copies (as every descriptor but the first one that sent does) and has
    /// nothing in flight; returns how many sends moved.
    pub fn hand_over(&mut self, heir: &mut SocketState) -> usize {
        let moved = self.pending_count();
        if moved == 0 || heir.path != Path::Copy || heir.pending_count() > 0 {
            return 0;
        }
        // What the moved sends were counted as moves with them, so that each socket's
        // statistics stay consistent (a send's completion, COPIED report included, lands
        // on the entry that sent it: `kernel_copied_bytes` stays a part of
        // `zerocopy_bytes`, `completed_sends` of the sends). The totals do not change.
        let zc_bytes: u64 = self.pending.iter().map(|s| s.bytes as u64).sum();
        let sp_bytes: u64 = self.spliced.pending.iter().map(|(_, s)| s.bytes as u64).sum();
        let (zc, sp) = (self.pending.len() as u64, self.spliced.pending.len() as u64);
        let (from, to) = (&mut self.stats, &mut heir.stats);
        for (src, dst, n) in [
            (&mut from.zerocopy_sends, &mut to.zerocopy_sends, zc),
            (&mut from.zerocopy_bytes, &mut to.zerocopy_bytes, zc_bytes),
            (&mut from.splice_sends, &mut to.splice_sends, sp),
            (&mut from.splice_bytes, &mut to.splice_bytes, sp_bytes),
        ] {
            let n = n.min(*src);
            *src -= n;
            *dst += n;
        }
        heir.path = self.path;
        heir.kernel_copies = self.kernel_copies;
        heir.copied_run = self.copied_run;
        heir.next_id = self.next_id;
        heir.pending = std::mem::take(&mut self.pending);
        // The heir's own writes were counted in its `written` and may lie anywhere before
        // ours in the stream: shift our positions past all of them, so that
        // `written - SIOCOUTQ` still never overstates what the peer consumed.
        let before = heir.spliced.written;
        heir.spliced.written = before + self.spliced.written;
        heir.spliced.pending = self.spliced.pending.drain(..).map(|(end, s)| (end + before, s)).collect();
        heir.notifications |= self.notifications;
        moved
    }
}

/// Environment variable that turns the splice path off (`BLIGHT_SOCKET_SPLICE=0`): AF_UNIX
/// stream sockets then copy. The splice path is safe only with a peer that reads the socket
/// (`read`, `recv`, `recvmsg`): a peer that `splice(2)`s out of it keeps references to the
/// sender's pages after `SIOCOUTQ` says they were consumed, and would see what the sender
/// later writes in that memory. Turn it off when the peer is not trusted.
pub(crate) const SPLICE_ENV: &str = "BLIGHT_SOCKET_SPLICE";

pub(super) fn splice_allowed() -> bool {
    static ALLOWED: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| {
        !matches!(std::env::var(SPLICE_ENV).as_deref().map(str::trim), Ok("0" | "off" | "no" | "false"))
    });
    *ALLOWED
}

/// What only the sending thread touches; its mutex also serializes zero-copy sends on the
/// socket, so that one buffer's chunks are contiguous in the stream.
#[derive(Debug, Default)]
pub struct SendSide {
    pub pipe: Option<sys::Pipe>,
    pub pipe_capacity: usize,
    /// After a transient failure of the splice path (no descriptor for its pipe, no memory,
    /// memory vmsplice cannot pin): when to try it again.
    pub backoff: Backoff,
}

/// A retry back-off: after a failure, wait 10 ms, doubling per failure up to 5 s; a
/// success starts over.
#[derive(Debug, Default)]
pub struct Backoff {
    until: Option<std::time::Instant>,
    failures: u32,
}

impl Backoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(10);
    const MAX: std::time::Duration = std::time::Duration::from_secs(5);

    /// The wait after `failures` failures in a row (at least one).
    pub fn delay(failures: u32) -> std::time::Duration {
        Self::FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(Self::MAX)
    }

    /// Whether the back-off is still running (one clock read, only after a failure).
    pub fn waiting(&mut self) -> bool {
        match self.until {
            Some(t) if std::time::Instant::now() < t => true,
            Some(_) => {
                self.until = None;
                false
            }
            None => false,
        }
    }

    /// One more failure: returns the wait before the next try.
    pub fn failed(&mut self) -> std::time::Duration {
        self.failures = self.failures.saturating_add(1);
        let d = Self::delay(self.failures);
        self.until = Some(std::time::Instant::now() + d);
        d
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.until = None;
    }
}

/// One socket known to the library (its two locks take their place in the order stated
/// in `zerocopy`).
#[derive(Debug)]
pub struct SocketEntry {
    pub fd: RawFd,
    /// The socket's inode: a descriptor number reused by a new socket has another one.
    pub inode: u64,
    /// `SOCK_STREAM`: a failed send never leaves a numbered notification behind.
    pub stream: bool,
    pub send: Mutex<SendSide>,
    pub state: Mutex<SocketState>,
}

impl SocketEntry {
    /// [`probe`](Self::probe), shared: `None` when memory is short (never an abort).
    pub fn probe_boxed(fd: RawFd, inode: u64) -> Option<std::sync::Arc<SocketEntry>> {
        crate::fallible_alloc::arc_new(SocketEntry::probe(fd, inode))
    }

    /// Probes the socket and picks its path, enabling `SO_ZEROCOPY` where it applies.
    pub fn probe(fd: RawFd, inode: u64) -> SocketEntry {
        let domain = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1);
        let kind = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(-1);
        let inet = domain == libc::AF_INET || domain == libc::AF_INET6;
        let zerocopy_was_on =
            inet && sys::getsockopt_int(fd, libc::SOL_SOCKET, sys::SO_ZEROCOPY).is_ok_and(|on| on != 0);
        let path = if domain == libc::AF_UNIX && kind == libc::SOCK_STREAM {
            if splice_allowed() {
                Path::Splice
            } else {
                Path::Copy
            }
        } else if !inet {
            // MSG_ZEROCOPY is for TCP and UDP here: other families that accept SO_ZEROCOPY
            // (AF_VSOCK) report completions at levels this library does not read.
            Path::Copy
        } else if zerocopy_was_on {
            // Enabled before we saw the socket (by its owner, or by us before
            // blight_forget_socket): the kernel's notification counter may not be at 0, and
            // completions could not be matched to sends.
            log::debug!("fd {fd}: SO_ZEROCOPY was already on; copying on this socket");
            Path::Copy
        } else {
            match sys::setsockopt_int(fd, libc::SOL_SOCKET, sys::SO_ZEROCOPY, 1) {
                Ok(()) => Path::MsgZerocopy,
                Err(e) => {
                    // EOPNOTSUPP on AF_UNIX datagram/seqpacket, ENOPROTOOPT on old kernels.
                    log::debug!("fd {fd}: SO_ZEROCOPY refused ({e}); copying on this socket");
                    Path::Copy
                }
            }
        };
        log::debug!("fd {fd}: domain {domain} type {kind}: zero-copy path {path:?}");
        SocketEntry {
            fd,
            inode,
            stream: kind == libc::SOCK_STREAM,
            send: Mutex::new(SendSide::default()),
            state: Mutex::new(SocketState {
                path,
                kernel_copies: false,
                copied_run: CopiedRun::default(),
                retired: false,
                notifications: path == Path::MsgZerocopy || zerocopy_was_on,
                unreported_error: None,
                next_id: 0,
                pending: PendingSends::default(),
                spliced: SplicedSends::default(),
                stats: Stats::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(path: Path) -> SocketState {
        SocketState {
            path,
            kernel_copies: false,
            copied_run: CopiedRun::default(),
            notifications: path == Path::MsgZerocopy,
            retired: false,
            unreported_error: None,
            next_id: 0,
            pending: PendingSends::default(),
            spliced: SplicedSends::default(),
            stats: Stats::default(),
        }
    }

    fn send(buffer: u64) -> PendingSend {
        PendingSend { buffer, bytes: 100 }
    }

    #[test]
    fn backoff_doubles_from_10_ms_up_to_5_s_and_starts_over_after_a_success() {
        use std::time::Duration;
        assert_eq!(Backoff::delay(1), Duration::from_millis(10));
        assert_eq!(Backoff::delay(2), Duration::from_millis(20));
        assert_eq!(Backoff::delay(9), Duration::from_millis(2560));
        assert_eq!(Backoff::delay(10), Duration::from_secs(5));
        assert_eq!(Backoff::delay(u32::MAX), Duration::from_secs(5));
        let mut b = Backoff::default();
        assert!(!b.waiting());
        assert_eq!(b.failed(), Duration::from_millis(10));
        assert!(b.waiting());
        assert_eq!(b.failed(), Duration::from_millis(20));
        b.succeeded();
        assert!(!b.waiting());
        assert_eq!(b.failed(), Duration::from_millis(10));
    }

    #[test]
    fn hand_over_shifts_spliced_positions_past_the_heirs_own_writes() {
        let mut old = state(Path::Splice);
        old.spliced.written = 300;
        old.spliced.pending.extend([(200, send(1)), (300, send(2))]);
        let mut heir = state(Path::Copy);
        heir.spliced.written = 50; // copies the dup sent, somewhere in the stream
        assert_eq!(old.hand_over(&mut heir), 2);
        assert_eq!(heir.path, Path::Splice);
        assert_eq!(heir.spliced.written, 350);
        let ends: Vec<u64> = heir.spliced.pending.iter().map(|(end, _)| *end).collect();
        // written - SIOCOUTQ >= end must mean what it meant before: 300 - q >= 200.
        assert_eq!(ends, [250, 350]);
        assert_eq!(old.pending_count(), 0);
    }

    #[test]
    fn hand_over_moves_the_statistics_of_the_moved_sends() {
        let mut old = state(Path::MsgZerocopy);
        old.pending.push(0, send(1));
        old.pending.push(1, send(2));
        old.stats.zerocopy_sends = 3; // one completed before
        old.stats.zerocopy_bytes = 300;
        old.stats.completed_sends = 1;
        let mut heir = state(Path::Copy);
        heir.stats.copied_bytes = 50;
        assert_eq!(old.hand_over(&mut heir), 2);
        assert_eq!((old.stats.zerocopy_sends, old.stats.zerocopy_bytes), (1, 100));
        assert_eq!((heir.stats.zerocopy_sends, heir.stats.zerocopy_bytes), (2, 200));
        assert_eq!(heir.stats.copied_bytes, 50);
        // Completing both on the heir, COPIED: kernel_copied stays within zerocopy there.
        heir.pending.complete(0, 1, |s| {
            heir.stats.kernel_copied_bytes += s.bytes as u64;
        });
        assert!(heir.stats.kernel_copied_bytes <= heir.stats.zerocopy_bytes);
    }

    #[test]
    fn hand_over_moves_msg_zerocopy_ids_only_into_a_copying_heir_with_nothing_in_flight() {
        let make_old = || {
            let mut old = state(Path::MsgZerocopy);
            old.pending.push(5, send(1));
            old.pending.push(6, send(2));
            old.next_id = 7;
            old
        };
        let mut old = make_old();
        let mut heir = state(Path::Copy);
        heir.notifications = true;
        assert_eq!(old.hand_over(&mut heir), 2);
        assert_eq!((heir.path, heir.next_id, heir.pending.len()), (Path::MsgZerocopy, 7, 2));

        let mut zero_copy_heir = state(Path::MsgZerocopy);
        assert_eq!(make_old().hand_over(&mut zero_copy_heir), 0, "its ids would clash");
        let mut busy_heir = state(Path::Copy);
        busy_heir.spliced.pending.push_back((10, send(3)));
        assert_eq!(make_old().hand_over(&mut busy_heir), 0);
        let mut idle = state(Path::Splice);
        assert_eq!(idle.hand_over(&mut state(Path::Copy)), 0, "nothing in flight, nothing moves");
    }
}
