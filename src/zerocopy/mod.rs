//! Zero-copy sends and their bookkeeping: the process-wide buffer table, the registry of
//! sockets, and the operations the C API exposes.
//!
//! Locks: a socket's `send` → `state` → [`TABLE`] → the [`REGISTRY`], each optional, in
//! that order; nothing else is locked while the registry is held. Callers' `free_fn`s run
//! after every lock is dropped.
pub mod fast_hash;
pub mod notify;
pub mod send;
pub mod socket_state;
pub mod splice;
pub mod table;

use crate::io::error;
use crate::sys;
use fast_hash::IntMap;
use notify::{Notification, QueueMessage};
use once_cell::sync::Lazy;
use parking_lot::{Mutex, MutexGuard};
use socket_state::{Path, SendSide, SocketEntry, Stats};
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::{BufferTable, Freed};

pub static TABLE: Lazy<Mutex<BufferTable>> = Lazy::new(|| Mutex::new(BufferTable::default()));
static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| Mutex::new(Registry::default()));

/// The sockets this library knows, by descriptor number, and the statistics of those it
/// no longer does. Every socket is counted in exactly one of the three places, so the
/// process totals read under this lock neither miss nor double-count a socket that is
/// being forgotten.
#[derive(Default)]
struct Registry {
    live: IntMap<RawFd, Arc<SocketEntry>>,
    /// Removed from `live`, not yet retired (that waits for the socket's send lock).
    retiring: Vec<Arc<SocketEntry>>,
    /// Statistics of sockets that were forgotten (or found closed and reused).
    retired: Stats,
}

impl Registry {
    /// Removes `fd`'s entry, which its caller must then [`retire`].
    fn remove(&mut self, fd: RawFd) -> Option<Arc<SocketEntry>> {
        let e = self.live.remove(&fd)?;
        self.retiring.push(e.clone());
        Some(e)
    }

    /// Removes `fd`'s entry if it still is `entry`: false when another thread already
    /// removed it (and retires it).
    fn remove_if(&mut self, fd: RawFd, entry: &Arc<SocketEntry>) -> bool {
        match self.live.get(&fd) {
            Some(e) if Arc::ptr_eq(e, entry) => self.remove(fd).is_some(),
            _ => false,
        }
    }
}

/// Chunks smaller than this are copied. msg_zerocopy.rst: "zerocopy is generally only
/// effective at writes over around 10 KB"; page pinning and the notification cost more
/// than a copy below that.
pub const DEFAULT_THRESHOLD: usize = 10 * 1024;
/// Environment variable that sets the threshold at start-up.
pub const THRESHOLD_ENV: &str = "BLIGHT_SOCKET_ZEROCOPY_THRESHOLD";
static THRESHOLD: Lazy<AtomicUsize> = Lazy::new(|| {
    let from_env = std::env::var(THRESHOLD_ENV).ok().and_then(|v| v.trim().parse::<usize>().ok());
    AtomicUsize::new(from_env.filter(|&n| n > 0).unwrap_or(DEFAULT_THRESHOLD))
});

/// How long forgetting a socket waits for its outstanding completions.
const FORGET_WAIT: Duration = Duration::from_millis(100);

pub fn threshold() -> usize {
    THRESHOLD.load(Ordering::Relaxed)
}

pub fn set_threshold(bytes: usize) {
    THRESHOLD.store(bytes, Ordering::Relaxed);
}

thread_local! {
    /// Set while this thread holds a socket's send lock: frees wait until it is dropped.
    static DEFERRED: RefCell<Option<Vec<Freed>>> = const { RefCell::new(None) };
}

/// Runs the callers' `free_fn`s, or, inside [`deferring_frees`], queues them until it
/// ends. Call with no lock of the registry, a socket's state or the table held.
pub(crate) fn run_frees(freed: Vec<Freed>) {
    let now = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(queue) => {
            queue.extend(freed);
            None
        }
        None => Some(freed),
    });
    for f in now.into_iter().flatten() {
        f.run();
    }
}

/// Runs `body` (which takes a socket's send lock) with every free it causes deferred until
/// it has returned and dropped its locks: a `free_fn` may send on the same socket.
pub(crate) fn deferring_frees<R>(body: impl FnOnce() -> R) -> R {
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let queued = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
            for f in queued {
                f.run();
            }
        }
    }
    if DEFERRED.with(|d| d.borrow().is_some()) {
        return body();
    }
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let _flush = Flush;
    body()
}

/// The socket behind `fd`, checked to be a socket. With `create`, unknown sockets are
/// probed and registered. A registered entry whose inode differs (or whose number now
/// names a file that is not a socket) belongs to a socket that was closed, its number
/// reused: it is retired (its pending buffers released) first.
fn lookup(fd: RawFd, create: bool) -> io::Result<Option<Arc<SocketEntry>>> {
    let (kind, inode) = sys::file_identity(fd)?;
    let (found, stale, is_socket) = {
        let mut reg = REGISTRY.lock();
        let matches = |reg: &Registry, kind, inode| {
            let e = reg.live.get(&fd).filter(|e| kind == libc::S_IFSOCK && e.inode == inode);
            e.cloned()
        };
        match matches(&reg, kind, inode) {
            Some(e) => (Some(e), None, true),
            None => {
                // Anything but the common case is decided on an identity read under the
                // lock, where no other thread can register: the number may have changed
                // hands since the fstat above, and an entry registered meanwhile for the
                // new socket must not be taken for the old socket's and retired.
                let (kind, inode) = sys::file_identity(fd)?;
                let is_socket = kind == libc::S_IFSOCK;
                match matches(&reg, kind, inode) {
                    Some(e) => (Some(e), None, true),
                    None => {
                        let stale = reg.remove(fd);
                        let found = (create && is_socket).then(|| register(&mut reg, fd, inode));
                        (found, stale, is_socket)
                    }
                }
            }
        }
    };
    if let Some(old) = stale {
        let n = retire(&old);
        log::debug!("fd {fd} now names another file; released {n} sends of the closed socket");
    }
    if !is_socket {
        return Err(error(libc::ENOTSOCK));
    }
    Ok(found)
}

/// Probes socket `fd` (`inode`, read under the registry lock) and registers it.
fn register(reg: &mut Registry, fd: RawFd, inode: u64) -> Arc<SocketEntry> {
    let mut e = SocketEntry::probe(fd, inode);
    // Another descriptor of this same socket (dup, fork) is registered: the kernel's
    // notification ids and SIOCOUTQ are per socket, so two entries sending zero-copy would
    // credit completions to the wrong sends. Only the first entry sends zero-copy; this
    // one copies.
    if reg.live.values().any(|o| o.inode == inode) {
        log::debug!("fd {fd}: its socket is registered under another descriptor; copying on this one");
        e.state.get_mut().path = Path::Copy;
    }
    let e = Arc::new(e);
    reg.live.insert(fd, e.clone());
    e
}

/// Releases every send still pending on a socket that is going away (removed from the
/// registry's `live` map) and moves its statistics into the process totals. The kernel
/// keeps its own page references, so freeing now is memory-safe. Returns the number of
/// sends abandoned.
fn retire(entry: &Arc<SocketEntry>) -> usize {
    retire_with(entry, entry.send.lock())
}

/// [`retire`], with the entry's send lock already taken.
fn retire_with(entry: &Arc<SocketEntry>, mut side: MutexGuard<'_, SendSide>) -> usize {
    let mut freed = Vec::new();
    let abandoned = {
        side.pipe = None;
        let mut st = entry.state.lock();
        st.retired = true;
        // Another descriptor of the socket (a dup) keeps it open: its sends in flight are
        // still read by the kernel and will still be reported, so they move to that
        // descriptor's entry instead of being abandoned. Lock order: this state, then the
        // heir's (never the reverse: an heir is live, this entry no longer is).
        let heir = {
            let reg = REGISTRY.lock();
            reg.live.values().find(|e| e.inode == entry.inode && !Arc::ptr_eq(e, entry)).cloned()
        };
        if let Some(heir) = heir {
            let moved = st.hand_over(&mut heir.state.lock());
            if moved > 0 {
                log::debug!("fd {}: {moved} sends in flight handed over to fd {} (same socket)", entry.fd, heir.fd);
            }
        }
        let mut table = TABLE.lock();
        let mut n = st.pending.abandon_all(|s| freed.extend(table.send_completed(s.buffer)));
        for (_, s) in st.spliced.pending.drain(..) {
            freed.extend(table.send_completed(s.buffer));
            n += 1;
        }
        st.stats.abandoned_sends += n as u64;
        let mut reg = REGISTRY.lock();
        reg.retired.add(&st.snapshot());
        reg.retiring.retain(|e| !Arc::ptr_eq(e, entry));
        n
    };
    drop(side);
    run_frees(freed);
    abandoned
}

/// Registers `data` and sends all of it. Returns the new id (0 when nothing was
/// registered) and the outcome of the send.
pub fn send(
    fd: RawFd,
    data: &[u8],
    free_fn: Option<table::FreeFn>,
    user: *mut std::ffi::c_void,
) -> (u64, io::Result<()>) {
    // Every call checks the descriptor's identity (an fstat, about 0.45 µs here): the
    // number may name a new socket since the last call, whose sends and statistics must
    // not mix with the old one's. No cheaper exact check exists (SO_COOKIE and statx cost
    // the same), and skipping it for small copies misattributed their statistics.
    let threshold = threshold();
    let mut entry = match lookup(fd, true) {
        Ok(Some(e)) => e,
        Ok(None) => unreachable!("lookup with create returns an entry"),
        Err(e) => return (0, Err(e)),
    };
    let id = TABLE.lock().register(data.as_ptr() as *mut u8, data.len(), free_fn, user);
    let result = deferring_frees(|| loop {
        match send::send_buffer(&entry, id, data, threshold) {
            // blight_forget_socket ran between the lookup and the send: nothing sent yet.
            Err(send::Retired) => match lookup(fd, true) {
                Ok(Some(e)) => entry = e,
                Ok(None) => unreachable!("lookup with create returns an entry"),
                Err(e) => return Err(e),
            },
            Ok(r) => return r,
        }
    });
    (id, result)
}

/// What one pass over a socket's error queue found.
#[derive(Debug, Default)]
pub(crate) struct Drained {
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
pub(crate) fn drain_error_queue_of(entry: &SocketEntry) -> io::Result<(usize, usize)> {
    drain_error_queue_via(entry, entry.fd)?.into_result()
}

/// Drains the error queue of `entry`'s socket, reading through `fd`: any descriptor of it.
fn drain_error_queue_via(entry: &SocketEntry, fd: RawFd) -> io::Result<Drained> {
    let mut d = Drained::default();
    let mut notes: Vec<Notification> = Vec::new();
    loop {
        notes.clear();
        let flags = sys::recv_error_queue(fd, |level, kind, ee| match QueueMessage::classify(level, kind, ee) {
            QueueMessage::Completion(n) => notes.push(n),
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

/// Completes the sends `notes` cover, frees what became free, and applies the COPIED rule.
pub(crate) fn apply_notifications(entry: &SocketEntry, notes: &[Notification]) -> usize {
    let mut freed = Vec::new();
    let mut completed = 0;
    {
        let mut st = entry.state.lock();
        let mut table = TABLE.lock();
        let st = &mut *st;
        for n in notes {
            let (mut sends, mut bytes) = (0u64, 0u64);
            st.pending.complete(n.first, n.last, |s| {
                sends += 1;
                bytes += s.bytes as u64;
                freed.extend(table.send_completed(s.buffer));
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
/// (`-1`: forever) for the first one when some are pending.
fn complete_sends(entry: &SocketEntry, timeout_ms: i32) -> io::Result<usize> {
    complete_sends_via(entry, entry.fd, timeout_ms)
}

/// [`complete_sends`], reading the socket through `fd` (any descriptor of it).
fn complete_sends_via(entry: &SocketEntry, fd: RawFd, timeout_ms: i32) -> io::Result<usize> {
    let (spliced, notifications) = {
        let st = entry.state.lock();
        (!st.spliced.pending.is_empty(), st.notifications)
    };
    // Whatever the path now: a socket that fell back to copying mid-buffer (vmsplice
    // refused) still has the sends it spliced before, and one that copies with SO_ZEROCOPY
    // on (used again after blight_forget_socket) still gets notifications.
    if spliced {
        return splice::complete_consumed(entry, fd, timeout_ms);
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
        let n = settle(entry, drain_error_queue_via(entry, fd)?)?;
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
        match sys::poll(fd, 0, slice) {
            Ok(r) if r & libc::POLLNVAL != 0 => return Err(error(libc::EBADF)),
            Ok(r) if r & libc::POLLERR == 0 && r != 0 => {
                // Hung up with nothing queued: nothing more will come.
                return settle(entry, drain_error_queue_via(entry, fd)?);
            }
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `blight_process_zerocopy_completions`.
pub fn process_completions(fd: RawFd, timeout_ms: i32) -> io::Result<usize> {
    let own = lookup(fd, false)?;
    let inode = match &own {
        Some(e) => e.inode,
        None => sys::file_identity(fd)?.1,
    };
    let registered = own.is_some();
    let Some(entry) = completing_entry(own, inode) else {
        return Ok(0);
    };
    if !registered {
        // A dup of a socket the library knows: registered (it copies), so that the sends in
        // flight can move to it if the descriptor that made them goes away (see `retire`).
        lookup(fd, true)?;
    }
    complete_sends_via(&entry, fd, timeout_ms)
}

/// Whose sends are completed by what is read through a descriptor of socket `inode` whose
/// own entry is `own`: that entry, unless it copies (or there is none): then the entry of
/// another descriptor of the socket (`dup`, `fork`) that sends `MSG_ZEROCOPY` on it or has
/// spliced sends in flight, also after that descriptor was closed. The scan for it runs
/// only then, off the zero-copy paths.
fn completing_entry(own: Option<Arc<SocketEntry>>, inode: u64) -> Option<Arc<SocketEntry>> {
    if let Some(e) = &own {
        if e.state.lock().path != Path::Copy {
            return own;
        }
    }
    let same_socket: Vec<_> = REGISTRY.lock().live.values().filter(|e| e.inode == inode).cloned().collect();
    same_socket
        .into_iter()
        .find(|e| {
            let st = e.state.lock();
            st.path == Path::MsgZerocopy || !st.spliced.pending.is_empty()
        })
        .or(own)
}

/// For [`crate::io::wait_for`]: reads the notifications in the error queue of `fd`, if it
/// is a socket of ours with `SO_ZEROCOPY` on, and completes the sends they cover (see
/// [`completing_entry`]; a socket that copies gets only late notifications of abandoned
/// sends, which complete nothing). Returns false if nothing was read: `POLLERR` has
/// another cause; an error if a real error was in it (see [`drain_error_queue_of`]).
/// Never retires a stale entry (that takes the entry's send lock, which the caller may
/// hold: this runs inside sends).
pub fn drain_error_queue(fd: RawFd) -> io::Result<bool> {
    let Ok((_, inode)) = sys::file_identity(fd) else {
        return Ok(false);
    };
    let own = REGISTRY.lock().live.get(&fd).filter(|e| e.inode == inode).cloned();
    match completing_entry(own, inode) {
        Some(e) if e.state.lock().notifications => {
            drain_error_queue_via(&e, fd)?.into_result().map(|(read, _)| read > 0)
        }
        _ => Ok(false),
    }
}

/// `blight_release_buffer`.
pub fn release(id: u64) -> Result<(), table::UnknownId> {
    let freed = TABLE.lock().release(id)?;
    if let Some(f) = freed {
        f.run();
    }
    Ok(())
}

pub fn in_flight(id: u64) -> Option<u32> {
    TABLE.lock().in_flight(id)
}

/// `blight_forget_socket`: collects what completions it can within [`FORGET_WAIT`], then
/// releases the rest. Returns the number of sends abandoned.
pub fn forget(fd: RawFd) -> io::Result<usize> {
    let registered = REGISTRY.lock().live.get(&fd).cloned();
    let (entry, open_until) = match (sys::file_identity(fd), registered) {
        (Ok((kind, inode)), Some(entry)) if kind == libc::S_IFSOCK && entry.inode == inode => {
            let deadline = Instant::now() + FORGET_WAIT;
            while entry.state.lock().pending_count() > 0 && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
                if complete_sends(&entry, left.max(1)).is_err() {
                    break;
                }
            }
            (entry, Some(deadline))
        }
        // Closed, or closed and its number reused: the kernel dropped the socket's
        // notifications; release what we held.
        (Ok(_), Some(entry)) => (entry, None),
        (Err(e), Some(entry)) if e.raw_os_error() == Some(libc::EBADF) => (entry, None),
        (Ok((kind, _)), None) if kind == libc::S_IFSOCK => return Ok(0),
        (Ok(_), None) => return Err(error(libc::ENOTSOCK)),
        (Err(e), _) => return Err(e),
    };
    let side = match open_until {
        // A send in progress in another thread holds the send lock, and may wait for the
        // peer for as long as the peer does not read: wait for it only until the deadline.
        Some(deadline) => entry.send.try_lock_until(deadline).ok_or_else(|| {
            log::debug!("fd {fd}: a send on this socket is in progress in another thread; not forgotten");
            error(libc::EBUSY)
        })?,
        None => entry.send.lock(),
    };
    Ok(deferring_frees(|| {
        if open_until.is_some() {
            // What completed while a send finished is not abandoned.
            let _ = complete_sends(&entry, 0);
        }
        let removed = REGISTRY.lock().remove_if(fd, &entry);
        if removed {
            retire_with(&entry, side)
        } else {
            0 // another thread forgot it meanwhile, or found its number reused
        }
    }))
}

/// Statistics of one socket, or of the whole process with `fd == -1`, with the path the
/// socket's large chunks take now (`None` for the totals and for unknown sockets).
pub fn stats(fd: RawFd) -> io::Result<(Stats, Option<Path>)> {
    if fd == -1 {
        let (mut total, known) = {
            let reg = REGISTRY.lock();
            let known: Vec<_> = reg.live.values().chain(&reg.retiring).cloned().collect();
            (reg.retired, known)
        };
        // An entry retired from here on adds to `retired` after the copy above: it is
        // counted once, by its own (final) statistics.
        for e in known {
            total.add(&e.state.lock().snapshot());
        }
        return Ok((total, None));
    }
    Ok(match lookup(fd, false)? {
        Some(e) => {
            let st = e.state.lock();
            let path = if st.kernel_copies { Path::Copy } else { st.path };
            (st.snapshot(), Some(path))
        }
        None => (Stats::default(), None),
    })
}
