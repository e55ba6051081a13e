//! Per-socket state: which path sends take, the notification counter, the sends in flight,
//! and the statistics that say which path every byte took.
use super::copied_run::CopiedRun;
use super::notify::{PendingSend, PendingSends};
use super::stats::Stats;
use crate::sys;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// The zero-copy path a socket has (chosen when it is registered): whether a chunk takes
/// it is decided by [`SocketState::route`].
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
    /// To which peers large chunks may be spliced (with `path == Splice`), and what the
    /// peer's credentials said.
    pub splice_policy: SplicePolicy,
    pub peer: PeerUser,
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
/// stream sockets then copy, whatever their [`SplicePolicy`] (the operator's switch wins).
pub(crate) const SPLICE_ENV: &str = "BLIGHT_SOCKET_SPLICE";

pub(super) fn splice_allowed() -> bool {
    static ALLOWED: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| {
        !matches!(std::env::var(SPLICE_ENV).as_deref().map(str::trim), Ok("0" | "off" | "no" | "false"))
    });
    *ALLOWED
}

/// To which peers a socket's large chunks may be spliced (`blight_set_splice_policy`).
///
/// A peer that `splice(2)`s or `tee(2)`s out of its end of the socket keeps references to
/// the sender's pages after `SIOCOUTQ` says they were consumed: the send completes, the
/// caller's `free_fn` runs, and what the caller writes there later is what the peer's pipe
/// delivers. Nothing in the kernel reports it. A peer of the same user is in the sender's
/// own trust domain; any other peer gets copies unless the caller says otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplicePolicy {
    /// Copy on this socket.
    Never,
    /// Splice only to a peer whose effective uid (`SO_PEERCRED`) is ours; copy otherwise.
    #[default]
    SameUser,
    /// Splice to any peer: the caller trusts it not to splice out of the socket.
    AnyPeer,
}

/// What `SO_PEERCRED` said about a socket's peer, read once, the first time a chunk could
/// go by splice under [`SplicePolicy::SameUser`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerUser {
    /// Not read yet, or the socket had no peer then (not connected): read again next time.
    #[default]
    Unchecked,
    Same,
    Other(libc::uid_t),
}

/// How one chunk goes, as [`SocketState::route`] decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    MsgZerocopy,
    Splice,
    Copy(CopyReason),
}

/// Why a chunk is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyReason {
    /// Under the threshold.
    Small,
    /// The socket has no zero-copy path: another kind of socket, `SO_ZEROCOPY` refused, the
    /// kernel refused splice, `BLIGHT_SOCKET_SPLICE=0`, or another descriptor of the same
    /// socket sends zero-copy.
    NoPath,
    /// `MSG_ZEROCOPY` sends were reported copied by the kernel too often (loopback).
    KernelCopies,
    /// [`SplicePolicy::Never`].
    SpliceNever,
    /// [`SplicePolicy::SameUser`], and the peer is another user.
    PeerOtherUser,
    /// [`SplicePolicy::SameUser`], and the socket has no peer to check (not connected).
    NoPeer,
}

impl SocketState {
    /// The one place that decides how a chunk of `len` bytes of a zero-copy send goes
    /// (`threshold`: the size under which chunks are copied; a `len` of `usize::MAX` asks
    /// how large chunks go). Reads the peer's credentials the first time it matters, with
    /// `fd` (the entry's descriptor, checked by the caller's lookup).
    pub fn route(&mut self, fd: RawFd, len: usize, threshold: usize) -> Route {
        if len < threshold.max(1) {
            return Route::Copy(CopyReason::Small);
        }
        match self.path {
            Path::Copy => Route::Copy(CopyReason::NoPath),
            Path::MsgZerocopy if self.kernel_copies => Route::Copy(CopyReason::KernelCopies),
            Path::MsgZerocopy => Route::MsgZerocopy,
            Path::Splice => match self.splice_policy {
                SplicePolicy::Never => Route::Copy(CopyReason::SpliceNever),
                SplicePolicy::AnyPeer => Route::Splice,
                SplicePolicy::SameUser => match self.peer_user(fd) {
                    PeerUser::Same => Route::Splice,
                    PeerUser::Other(_) => Route::Copy(CopyReason::PeerOtherUser),
                    PeerUser::Unchecked => Route::Copy(CopyReason::NoPeer),
                },
            },
        }
    }

    /// [`Self::route`] of a large chunk.
    pub fn large_chunk_route(&mut self, fd: RawFd) -> Route {
        self.route(fd, usize::MAX, 1)
    }

    fn peer_user(&mut self, fd: RawFd) -> PeerUser {
        if self.peer == PeerUser::Unchecked {
            match sys::peer_euid(fd) {
                // The overflow uid stands for any user unmapped in our user namespace: a
                // sender running as that uid cannot tell such a peer from itself.
                Ok(Some(uid)) if uid == sys::geteuid() && uid != sys::overflow_uid() => self.peer = PeerUser::Same,
                Ok(Some(uid)) => {
                    log::info!("fd {fd}: the peer is another user (uid {uid}): copying, not splicing, on this socket");
                    self.peer = PeerUser::Other(uid);
                }
                Ok(None) => log::debug!("fd {fd}: no peer yet; copying until there is one"),
                Err(e) => log::debug!("fd {fd}: SO_PEERCRED: {e}; copying"),
            }
        }
        self.peer
    }
}

/// What only the sending thread touches. Its mutex also serializes the
/// `blight_send_zerocopy` calls on the descriptor, the cheap path of small buffers included
/// (`zerocopy::send_small` takes it with `try_lock`), so that each call's bytes are
/// contiguous in the stream.
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
                splice_policy: SplicePolicy::default(),
                peer: PeerUser::default(),
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
            splice_policy: SplicePolicy::default(),
            peer: PeerUser::default(),
            pending: PendingSends::default(),
            spliced: SplicedSends::default(),
            stats: Stats::default(),
        }
    }

    fn send(buffer: u64) -> PendingSend {
        PendingSend { buffer, bytes: 100 }
    }

    fn socketpair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        use std::os::fd::FromRawFd;
        let mut sv = [-1; 2];
        // SAFETY: sv has room for the two descriptors socketpair writes.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) }, 0);
        // SAFETY: both were just opened and are owned by nobody else.
        unsafe { (std::os::fd::OwnedFd::from_raw_fd(sv[0]), std::os::fd::OwnedFd::from_raw_fd(sv[1])) }
    }

    #[test]
    fn route_is_the_one_choice_of_path() {
        use std::os::fd::AsRawFd;
        let (a, _b) = socketpair();
        let fd = a.as_raw_fd();
        let mut st = state(Path::Splice);
        assert_eq!(st.route(fd, 100, 101), Route::Copy(CopyReason::Small));
        assert_eq!(st.route(fd, 0, 0), Route::Copy(CopyReason::Small), "threshold 0 acts as 1");
        assert_eq!(st.peer, PeerUser::Unchecked, "a small chunk reads no credentials");
        // A socketpair's peer is this process: the same user.
        assert_eq!(st.route(fd, 101, 101), Route::Splice);
        assert_eq!(st.peer, PeerUser::Same);
        st.splice_policy = SplicePolicy::Never;
        assert_eq!(st.large_chunk_route(fd), Route::Copy(CopyReason::SpliceNever));
        st.splice_policy = SplicePolicy::SameUser;
        st.peer = PeerUser::Other(65534); // as read for a peer of another user, once
        assert_eq!(st.large_chunk_route(fd), Route::Copy(CopyReason::PeerOtherUser));
        st.splice_policy = SplicePolicy::AnyPeer;
        assert_eq!(st.large_chunk_route(fd), Route::Splice);

        let mut zc = state(Path::MsgZerocopy);
        assert_eq!(zc.large_chunk_route(fd), Route::MsgZerocopy);
        zc.kernel_copies = true;
        assert_eq!(zc.large_chunk_route(fd), Route::Copy(CopyReason::KernelCopies));
        assert_eq!(state(Path::Copy).large_chunk_route(fd), Route::Copy(CopyReason::NoPath));
    }

    #[test]
    fn a_socket_without_a_peer_copies_and_is_asked_again() {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: no pointers.
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        assert!(raw >= 0);
        // SAFETY: a new socket, owned by nobody else.
        let s = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut st = state(Path::Splice);
        assert_eq!(st.large_chunk_route(s.as_raw_fd()), Route::Copy(CopyReason::NoPeer));
        assert_eq!(st.peer, PeerUser::Unchecked, "nothing cached for a socket with no peer yet");
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
