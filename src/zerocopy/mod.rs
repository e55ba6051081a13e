//! Zero-copy sends and their bookkeeping: the operations the C API exposes, over
//!
//! - [`registry`]: the sockets the library knows (by descriptor, checked by inode);
//! - [`send`]: the send paths (`MSG_ZEROCOPY`, splice, copy) and the choice among them;
//! - [`completions`]: reading the error queue and `SIOCOUTQ`, completing sends;
//! - [`table`]: the buffers, alive until released by the caller and done by the kernel;
//! - [`frees`]: running the callers' `free_fn`s outside every lock;
//! - the pure pieces: [`notify`] (notification ranges), [`copied_run`], [`stats`].
//!
//! Lock order, the one statement of it: a socket's `send` lock → its `state` lock → the
//! `state` lock of a live entry of the same socket (a retiring entry hands its sends
//! over) → [`table::TABLE`] → the registry's lock. Each is optional; the registry's lock is
//! the innermost: nothing is locked while it is held. Callers' `free_fn`s run after every
//! lock is dropped.
mod completions;
mod copied_run;
mod fast_hash;
mod fork;
mod fork_lock;
mod frees;
mod notify;
#[cfg(test)]
mod prop_tests;
mod registry;
mod send;
mod socket_state;
mod stats;
mod table;

pub(crate) use completions::drain_for_wait;
pub(crate) use socket_state::{CopyReason, Route, SplicePolicy};
pub(crate) use stats::{blight_zerocopy_stats, Stats, BLIGHT_ZEROCOPY_STATS_SIZE_V1};
pub(crate) use table::{FreeFn, UnknownId};

use crate::io::error;
use crate::sys;
use frees::deferring_frees;
use once_cell::sync::Lazy;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use table::TABLE;

/// Chunks smaller than this are copied. msg_zerocopy.rst: "zerocopy is generally only
/// effective at writes over around 10 KB"; page pinning and the notification cost more
/// than a copy below that.
pub(crate) const DEFAULT_THRESHOLD: usize = 10 * 1024;
/// Environment variable that sets the threshold at start-up.
pub(crate) const THRESHOLD_ENV: &str = "BLIGHT_SOCKET_ZEROCOPY_THRESHOLD";
static THRESHOLD: Lazy<AtomicUsize> = Lazy::new(|| {
    let from_env = std::env::var(THRESHOLD_ENV).ok().and_then(|v| v.trim().parse::<usize>().ok());
    AtomicUsize::new(from_env.filter(|&n| n > 0).unwrap_or(DEFAULT_THRESHOLD))
});

/// How long forgetting a socket waits for its outstanding completions.
const FORGET_WAIT: Duration = Duration::from_millis(100);

/// Runs when the library is loaded (its ELF constructor), before any thread can hold a lock
/// of it: installs the `fork()` handlers, and makes the logger and the lazily read settings
/// ready (a child forked while another thread was setting one up would wait for it forever).
extern "C" fn on_load() {
    crate::logging::init();
    Lazy::force(&THRESHOLD);
    sys::overflow_uid();
    socket_state::splice_allowed();
    fork::install_handlers();
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

pub(crate) fn threshold() -> usize {
    THRESHOLD.load(Ordering::Relaxed)
}

pub(crate) fn set_threshold(bytes: usize) {
    THRESHOLD.store(bytes, Ordering::Relaxed);
}

/// Registers `data` and sends all of it. Returns the new id (0 when nothing was
/// registered) and the outcome of the send.
pub(crate) fn send(
    fd: RawFd,
    data: &[u8],
    free_fn: Option<FreeFn>,
    user: *mut std::ffi::c_void,
) -> (u64, io::Result<()>) {
    let threshold = threshold();
    if data.len() < threshold {
        if let Some(sent) = send_small(fd, data, free_fn, user) {
            return sent;
        }
    }
    fork::install_handlers();
    // Anything that may leave a send in flight checks the descriptor's identity (an fstat,
    // about 0.45 µs here): the number may name a new socket since the last call, and a
    // send in flight must never be completed against another socket.
    let mut entry = match registry::lookup(fd, true) {
        Ok(Some(e)) => e,
        Ok(None) => unreachable!("lookup with create returns an entry"),
        Err(e) => return (0, Err(e)),
    };
    let Ok(id) = TABLE.lock().register(data.as_ptr() as *mut u8, data.len(), free_fn, user) else {
        return (0, Err(error(libc::ENOMEM))); // nothing sent, nothing taken
    };
    let result = deferring_frees(|| loop {
        match send::send_buffer(&entry, id, data, threshold) {
            // blight_forget_socket ran between the lookup and the send: nothing sent yet.
            Err(send::Retired) => match registry::lookup(fd, true) {
                Ok(Some(e)) => entry = e,
                Ok(None) => unreachable!("lookup with create returns an entry"),
                Err(e) => return Err(e),
            },
            Ok(r) => return r,
        }
    });
    (id, result)
}

/// The cheap path: a buffer under the threshold (copied whole, nothing left in flight) on
/// a registered socket with nothing in flight, when no other `blight_send_zerocopy` is in
/// progress on it: no identity read, and the socket's send lock taken with `try_lock` (an
/// atomic operation, never a wait), so that its bytes never land among another call's
/// chunks. `None` sends nothing: the caller takes the full path (unknown socket; another
/// send in progress, which the full path waits for; sends in flight, which must never be
/// completed against another socket, so the full path's identity check runs first: see
/// below; retired).
///
/// The entry is taken by descriptor number only: if the socket was closed without
/// `blight_forget_socket` and its number reused, these copies are counted on the closed
/// socket's entry (the process totals stay exact). That is safe because nothing of this
/// send is in flight, and an entry that has sends in flight takes the full path, whose
/// identity check retires it.
fn send_small(
    fd: RawFd,
    data: &[u8],
    free_fn: Option<FreeFn>,
    user: *mut std::ffi::c_void,
) -> Option<(u64, io::Result<()>)> {
    let entry = registry::registered(fd)?;
    let side = entry.send.try_lock()?;
    {
        let st = entry.state.lock();
        if st.retired || st.pending_count() > 0 {
            return None;
        }
    }
    // Registered before the copy: out of memory must mean nothing sent and nothing taken.
    let Ok(id) = TABLE.lock().register(data.as_ptr() as *mut u8, data.len(), free_fn, user) else {
        return Some((0, Err(error(libc::ENOMEM))));
    };
    let mut side = Some(side);
    let (copied, result) = match send::copy_first(fd, data) {
        Ok(n) if n == data.len() => (send::Copied { sends: 1, bytes: n as u64 }, Ok(())),
        Ok(n) => {
            // The rest waits for room, and a wait may complete sends (`drain_for_wait`):
            // their free_fns, which may send on this socket, run once the send lock is dropped.
            let (mut copied, result) = deferring_frees(|| {
                let sent = send::copy_small(fd, &data[n..]);
                side.take();
                sent
            });
            if n > 0 {
                copied.sends += 1;
                copied.bytes += n as u64;
            }
            (copied, result)
        }
        Err(e) => (send::Copied::default(), Err(e)),
    };
    drop(side);
    if let Err(e) = &result {
        if copied.sends == 0 && matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK)) {
            // The number no longer names this socket: the full path reports it with
            // nothing registered, as for any descriptor that is not a socket.
            TABLE.lock().withdraw(id);
            return None;
        }
    }
    registry::count_copies(&entry, copied.sends, copied.bytes);
    Some((id, result))
}

/// `blight_set_splice_policy`: to which peers the AF_UNIX stream socket `fd` splices.
/// `EOPNOTSUPP` for any other socket (checked before it is registered: such a call changes
/// nothing).
pub(crate) fn set_splice_policy(fd: RawFd, policy: SplicePolicy) -> io::Result<()> {
    let domain = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let kind = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    if domain != libc::AF_UNIX || kind != libc::SOCK_STREAM {
        return Err(error(libc::EOPNOTSUPP));
    }
    fork::install_handlers();
    match registry::lookup(fd, true)? {
        Some(entry) => entry.state.lock().splice_policy = policy,
        None => unreachable!("lookup with create returns an entry"),
    }
    Ok(())
}

/// `blight_process_zerocopy_completions`.
pub(crate) fn process_completions(fd: RawFd, timeout_ms: i32) -> io::Result<usize> {
    fork::run_owed_frees();
    let own = registry::lookup(fd, false)?;
    let inode = match &own {
        Some(e) => e.inode,
        None => sys::file_identity(fd)?.1,
    };
    let own = match own {
        // The socket's sends held since it was forgotten: registering this descriptor takes
        // them over (see `registry::retire`), and they complete through it.
        None if registry::holds(inode) => registry::lookup(fd, true)?,
        own => own,
    };
    let registered = own.is_some();
    let Some(entry) = registry::completing_entry(own, inode) else {
        return Ok(0);
    };
    if !registered {
        // A dup of a socket the library knows: registered (it copies), so that the sends in
        // flight can move to it if the descriptor that made them goes away (see `retire`).
        registry::lookup(fd, true)?;
    }
    // `lookup` has just read the descriptor's identity: the first pass reads without another.
    completions::complete_sends_via(&entry, fd, timeout_ms, completions::Checked::Yes)
}

/// `blight_release_buffer`.
pub(crate) fn release(id: u64) -> Result<(), UnknownId> {
    fork::run_owed_frees();
    // Never inside one of our sends (a free_fn runs after the send has returned), so the
    // free runs now, without the deferral check of `frees::run_frees`.
    let freed = TABLE.lock().release(id)?; // the lock is dropped here, before the free
    if let Some(f) = freed {
        f.run();
    }
    Ok(())
}

pub(crate) fn in_flight(id: u64) -> Option<u32> {
    TABLE.lock().in_flight(id)
}

/// `blight_forget_socket`: collects what completions it can within [`FORGET_WAIT`] (sends
/// the peer read, or whose pages it released by closing, complete), then retires the
/// socket, holding what is still in flight. Returns the number of sends held.
pub(crate) fn forget(fd: RawFd) -> io::Result<usize> {
    fork::run_owed_frees();
    let registered = registry::registered(fd);
    let (entry, open_until) = match (sys::file_identity(fd), registered) {
        (Ok((kind, inode)), Some(entry)) if kind == libc::S_IFSOCK && entry.inode == inode => {
            let deadline = Instant::now() + FORGET_WAIT;
            while entry.state.lock().pending_count() > 0 && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
                if completions::complete_sends(&entry, left.max(1)).is_err() {
                    break;
                }
            }
            (entry, Some(deadline))
        }
        // Closed, or closed and its number reused: the kernel dropped the socket's
        // notifications, and SIOCOUTQ cannot be read; what is in flight is held.
        (Ok(_), Some(entry)) => (entry, None),
        (Err(e), Some(entry)) if e.raw_os_error() == Some(libc::EBADF) => (entry, None),
        (Ok((kind, _)), None) if kind == libc::S_IFSOCK => return Ok(0),
        (Ok(_), None) => return Err(error(libc::ENOTSOCK)),
        (Err(e), _) => return Err(e),
    };
    // A send in progress in another thread holds the send lock, and may wait for the peer
    // for as long as the peer does not read (a blocking socket blocks in the kernel, also
    // after its number was closed): wait for it only until the deadline, whether the
    // socket is open or closed. No call waits on a lock held by a thread that blocks.
    let deadline = open_until.unwrap_or_else(|| Instant::now() + FORGET_WAIT);
    let side = entry.send.try_lock_until(deadline).ok_or_else(|| {
        log::debug!("fd {fd}: a send on this socket is in progress in another thread; not forgotten");
        error(libc::EBUSY)
    })?;
    Ok(deferring_frees(|| {
        if open_until.is_some() {
            // What completed while a send finished is not held.
            let _ = completions::complete_sends(&entry, 0);
        }
        if registry::remove_if(fd, &entry) {
            registry::retire_with(&entry, side)
        } else {
            0 // another thread forgot it meanwhile, or found its number reused
        }
    }))
}

/// Statistics of one socket, or of the whole process with `fd == -1`, with the route the
/// socket's large chunks take now (`None` for the totals and for unknown sockets).
pub(crate) fn stats(fd: RawFd) -> io::Result<(Stats, Option<Route>)> {
    if fd == -1 {
        return Ok((registry::totals()?, None));
    }
    Ok(match registry::lookup(fd, false)? {
        Some(e) => {
            let mut st = e.state.lock();
            let route = st.large_chunk_route(e.fd);
            (st.snapshot(), Some(route))
        }
        None => (Stats::default(), None),
    })
}
