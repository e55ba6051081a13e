//! Completing sends: reading the error queue (`MSG_ZEROCOPY` notifications) and
//! `SIOCOUTQ` (spliced sends), and applying what they say to the buffer table.
use super::frees::run_frees;
use super::notify::{Notification, QueueMessage};
use super::registry;
use super::socket_state::SocketEntry;
use super::table::TABLE;
use crate::io::error;
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// What one pass over a socket's error queue found.
#[derive(Debug, Default)]
pub(super) struct Drained {
    /// Messages read.
    pub read: usize,
    /// Sends their notifications completed (their frees have run).
    pub completed: usize,
    /// The first real socket error among them (`ee_errno != 0`: an ICMP error with
    /// `IP_RECVERR`, ...). Reading it cleared the socket's `SO_ERROR`, so whoever drained
    /// the queue is the only one left who can report it.
    pub error: Option<i32>,
}

impl Drained {
    /// The error as `Err`, for callers that report it at once (sends, waits).
    fn into_result(self) -> io::Result<(usize, usize)> {
        match self.error {
            Some(code) => Err(error(code)),
            None => Ok((self.read, self.completed)),
        }
    }
}

/// Reads every message waiting in the error queue and completes the sends their
/// notifications cover. Returns how many messages it read and how many sends completed,
/// or the real error found in the queue (see [`Drained::error`]) once it is drained.
pub(super) fn drain_error_queue_of(entry: &SocketEntry) -> io::Result<(usize, usize)> {
    drain_error_queue_via(entry, entry.fd)?.into_result()
}

/// Drains the error queue of `entry`'s socket, reading through `fd`: any descriptor of it.
fn drain_error_queue_via(entry: &SocketEntry, fd: RawFd) -> io::Result<Drained> {
    let mut d = Drained::default();
    // Room made before anything is read (out of memory reads nothing): one message carries
    // at most a few control messages (the control buffer of `recv_error_queue`).
    let mut notes: Vec<Notification> = Vec::new();
    notes.try_reserve(NOTES_PER_MESSAGE).map_err(|_| error(libc::ENOMEM))?;
    loop {
        notes.clear();
        let flags = sys::recv_error_queue(fd, |level, kind, ee| match QueueMessage::classify(level, kind, ee) {
            QueueMessage::Completion(n) if notes.len() < notes.capacity() => notes.push(n),
            QueueMessage::Completion(_) => {
                log::warn!("fd {fd}: more notifications in one message than expected; one is lost")
            }
            QueueMessage::Error(code) => {
                log::debug!("fd {fd}: error queue holds a socket error (origin {}, errno {code})", ee.ee_origin);
                d.error.get_or_insert(code);
            }
            QueueMessage::Other => {
                log::trace!("fd {fd}: error queue message (level {level}, type {kind}) that is not ours")
            }
        });
        match flags {
            Ok(flags) => {
                d.read += 1;
                if flags & libc::MSG_CTRUNC != 0 {
                    log::warn!("fd {fd}: error queue control data truncated; a notification may be lost");
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(d),
            Err(e) if d.read > 0 => {
                log::debug!("fd {fd}: error queue read failed after {} messages: {e}", d.read);
                return Ok(d);
            }
            Err(e) => return Err(e),
        }
        d.completed += apply_notifications(entry, &notes);
    }
}

/// For `process_completions`: the sends completed, or the socket error found with them.
/// When a pass found both, the count is returned now and the error by the next call, so
/// that neither is lost.
fn settle(entry: &SocketEntry, d: Drained) -> io::Result<usize> {
    match d.error {
        None => Ok(d.completed),
        Some(code) if d.completed == 0 => Err(error(code)),
        Some(code) => {
            log::debug!("fd {}: {} sends completed; socket error {code} reported next call", entry.fd, d.completed);
            entry.state.lock().unreported_error = Some(code);
            Ok(d.completed)
        }
    }
}

/// Room for the notifications of one error-queue message.
const NOTES_PER_MESSAGE: usize = 8;

/// Completes the sends `notes` cover, frees what became free, and applies the COPIED rule.
fn apply_notifications(entry: &SocketEntry, notes: &[Notification]) -> usize {
    let mut freed = Vec::new();
    let mut completed = 0;
    {
        let mut st = entry.state.lock();
        // Every buffer it frees had a send pending here: room for all of them, made before
        // anything completes. Out of memory: the notes are lost and their buffers kept (a
        // leak, never an early free).
        if freed.try_reserve(st.pending.len()).is_err() {
            log::error!("fd {}: out of memory; {} notifications dropped, their buffers kept", entry.fd, notes.len());
            return 0;
        }
        let mut table = TABLE.lock();
        let st = &mut *st;
        for n in notes {
            let (mut sends, mut bytes) = (0u64, 0u64);
            st.pending.complete(n.first, n.last, |s| {
                sends += 1;
                bytes += s.bytes as u64;
                if let Some(f) = table.send_completed(s.buffer) {
                    freed.push(f); // within the room made above
                }
            });
            completed += sends as usize;
            st.stats.completed_sends += sends;
            if n.copied {
                st.stats.kernel_copied_sends += sends;
                st.stats.kernel_copied_bytes += bytes;
            }
            if st.copied_run.note(sends, bytes, n.copied) && !st.kernel_copies {
                st.kernel_copies = true;
                log::info!(
                    "fd {}: the kernel copied {} zero-copy sends ({} bytes) in a row (loopback or no scatter-gather); copying from now on",
                    entry.fd,
                    st.copied_run.sends,
                    st.copied_run.bytes
                );
            }
        }
    }
    run_frees(freed);
    completed
}

/// The longest single wait for a notification; the pending sends are checked again after
/// each.
const POLL_SLICE_MS: i32 = 20;

/// Completes the sends of `entry` that the kernel is done with, waiting up to `timeout_ms`
/// (`-1`: forever) for the first one when some are pending. Checks before every read that
/// the entry's number still names its socket (`EBADF` if not).
pub(super) fn complete_sends(entry: &SocketEntry, timeout_ms: i32) -> io::Result<usize> {
    complete_sends_via(entry, entry.fd, timeout_ms, Checked::No)
}

/// Whether the caller has just read the identity of the descriptor (no wait since).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Checked {
    Yes,
    No,
}

/// Before a read that follows a wait: fails with `EBADF` unless `fd` still names the
/// socket of `entry` (another thread may have closed the number and opened something else
/// under it; its counters and error queue are not ours to read). `checked` skips the first
/// check when the caller has just made it.
fn still_ours(entry: &SocketEntry, fd: RawFd, checked: &mut Checked) -> io::Result<()> {
    if std::mem::replace(checked, Checked::No) == Checked::Yes {
        return Ok(());
    }
    if registry::names_socket(fd, entry.inode)? {
        Ok(())
    } else {
        log::debug!("fd {fd}: closed and reused while waiting for its completions; nothing read");
        Err(error(libc::EBADF))
    }
}

/// [`complete_sends`], reading the socket through `fd` (any descriptor of it).
///
/// A call that waits reads through a private duplicate of `fd`, made (and checked) once:
/// another thread may close the number and open something else under it between a check
/// and a read, and the duplicate names this socket whatever happens to the number. The
/// number itself is still checked after every wake-up, and the call ends with `EBADF` once
/// it names something else. Without a descriptor to spare (`EMFILE`) it reads through `fd`.
pub(super) fn complete_sends_via(
    entry: &SocketEntry,
    fd: RawFd,
    timeout_ms: i32,
    checked: Checked,
) -> io::Result<usize> {
    let private = if timeout_ms == 0 { None } else { sys::dup_cloexec(fd).ok() };
    let read_fd = match &private {
        Some(dup) => {
            let read_fd = dup.as_raw_fd();
            if !registry::names_socket(read_fd, entry.inode)? {
                return Err(error(libc::EBADF)); // the number was reused before the dup
            }
            read_fd
        }
        None => fd,
    };
    complete_sends_reading(entry, fd, read_fd, timeout_ms, checked)
}

/// [`complete_sends_via`], watching the number `fd` and reading through `read_fd`.
fn complete_sends_reading(
    entry: &SocketEntry,
    fd: RawFd,
    read_fd: RawFd,
    timeout_ms: i32,
    mut checked: Checked,
) -> io::Result<usize> {
    let (spliced, notifications) = {
        let st = entry.state.lock();
        (!st.spliced.pending.is_empty(), st.notifications)
    };
    // Whatever the path now: a socket that fell back to copying mid-buffer (vmsplice
    // refused) still has the sends it spliced before, and one that copies with SO_ZEROCOPY
    // on (used again after blight_forget_socket) still gets notifications.
    if spliced {
        return complete_spliced(entry, fd, read_fd, timeout_ms, checked);
    }
    if !notifications {
        // SO_ZEROCOPY is off: nothing to read, and on AF_UNIX the error queue is the data.
        return Ok(0);
    }
    if let Some(code) = entry.state.lock().unreported_error.take() {
        return Err(error(code));
    }
    let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    let left_ms = || deadline.map_or(-1, |d| d.saturating_duration_since(Instant::now()).as_millis() as i32);
    loop {
        still_ours(entry, fd, &mut checked)?;
        let n = settle(entry, drain_error_queue_via(entry, read_fd)?)?;
        if n > 0 || timeout_ms == 0 || entry.state.lock().pending.is_empty() {
            return Ok(n);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(0);
        }
        // With no events asked for, poll still reports POLLERR: a notification arrived.
        // In slices: another thread (a send while the socket is full, a wait_for) may
        // drain the last notification between the check above and this poll, and then
        // no POLLERR would ever come.
        let slice = match left_ms() {
            ms if ms < 0 => POLL_SLICE_MS,
            ms => ms.min(POLL_SLICE_MS),
        };
        match sys::poll(read_fd, 0, slice) {
            Ok(r) if r & libc::POLLNVAL != 0 => return Err(error(libc::EBADF)),
            Ok(r) if r & libc::POLLERR == 0 && r != 0 => {
                // Hung up with nothing queued: nothing more will come.
                still_ours(entry, fd, &mut checked)?;
                return settle(entry, drain_error_queue_via(entry, read_fd)?);
            }
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `POLLERR` hook of every wait ([`crate::io::PollErrHook`]): reads the notifications in the error queue of `fd`, if it
/// is a socket of ours with `SO_ZEROCOPY` on, and completes the sends they cover (see
/// [`registry::completing_entry`]; a socket that copies gets only late notifications of abandoned
/// sends, which complete nothing). Returns false if nothing was read: `POLLERR` has
/// another cause; an error if a real error was in it (see [`drain_error_queue_of`]).
/// Never retires a stale entry (that takes the entry's send lock, which the caller may
/// hold: this runs inside sends).
pub(crate) fn drain_for_wait(fd: RawFd) -> io::Result<bool> {
    let Ok((_, inode)) = sys::file_identity(fd) else {
        return Ok(false);
    };
    match registry::completing_entry(registry::registered_as(fd, inode), inode) {
        Some(e) if e.state.lock().notifications => {
            drain_error_queue_via(&e, fd)?.into_result().map(|(read, _)| read > 0)
        }
        _ => Ok(false),
    }
}

/// Completes the spliced sends the peer has consumed; while some are pending and none is
/// consumed yet, waits up to `timeout_ms` (0: not at all, -1: forever) for the first.
///
/// There is no event for "the peer consumed bytes" that the sender can poll for, so the
/// wait re-reads `SIOCOUTQ` with a back-off from 50 µs doubling up to 2 ms.
///
/// `fd` is any descriptor of the entry's socket (`SIOCOUTQ` is per socket): the entry's
/// own, or a dup's when the entry's descriptor was closed; it is checked after every
/// wake-up, and `read_fd` (the same, or a private duplicate) is read.
fn complete_spliced(
    entry: &SocketEntry,
    fd: RawFd,
    read_fd: RawFd,
    timeout_ms: i32,
    mut checked: Checked,
) -> std::io::Result<usize> {
    let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    let mut backoff = Duration::from_micros(50);
    loop {
        // SIOCOUTQ of another file would complete our sends on its word.
        still_ours(entry, fd, &mut checked)?;
        let mut freed = Vec::new();
        let (completed, pending) = {
            let mut st = entry.state.lock();
            if st.spliced.pending.is_empty() {
                return Ok(0);
            }
            // Read `written` before SIOCOUTQ, under the lock: every byte counted in it is
            // already in the socket, so `written - outq` never overstates consumption.
            // Room first (out of memory completes nothing, and SIOCOUTQ can be read again).
            freed.try_reserve(st.spliced.pending.len()).map_err(|_| error(libc::ENOMEM))?;
            let written = st.spliced.written;
            let outq = sys::ioctl_int(read_fd, sys::SIOCOUTQ)?.max(0) as u64;
            let consumed = written.saturating_sub(outq);
            let mut table = TABLE.lock();
            let mut n = 0;
            while st.spliced.pending.front().is_some_and(|(end, _)| *end <= consumed) {
                let (_, s) = st.spliced.pending.pop_front().expect("front exists");
                if let Some(f) = table.send_completed(s.buffer) {
                    freed.push(f); // within the room made above
                }
                n += 1;
            }
            st.stats.completed_sends += n as u64;
            (n, st.spliced.pending.len())
        };
        run_frees(freed);
        let now = Instant::now();
        match deadline {
            _ if completed > 0 || pending == 0 => return Ok(completed),
            Some(d) if now >= d => return Ok(0),
            Some(d) => std::thread::sleep(backoff.min(d - now)),
            None => std::thread::sleep(backoff),
        }
        backoff = (backoff * 2).min(Duration::from_millis(2));
    }
}
