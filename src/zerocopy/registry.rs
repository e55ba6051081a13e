//! The sockets this library knows, by descriptor number, checked by inode on every lookup,
//! and the retiring of those it stops knowing.
use super::fast_hash::IntMap;
use super::socket_state::{Path, SendSide, SocketEntry};
use super::stats::Stats;
use crate::io::error;
use crate::sys;
use once_cell::sync::Lazy;
use parking_lot::{Mutex, MutexGuard};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| Mutex::new(Registry::default()));

/// For the `fork()` handlers: holds the registry's lock across the fork, with the list of
/// the sockets the child inherits made ready (in the parent, where allocating is safe).
pub(super) fn lock_for_fork() {
    let mut reg = REGISTRY.lock();
    let reg_ref = &mut *reg;
    let known: usize = reg_ref.live.len() + reg_ref.retiring.len() + reg_ref.held.len() + reg_ref.inherited.len();
    reg_ref.at_fork.clear();
    if reg_ref.at_fork.try_reserve(known).is_ok() {
        let inodes = reg_ref.live.values().chain(&reg_ref.retiring).chain(&reg_ref.held).map(|e| e.inode);
        reg_ref.at_fork.extend(inodes.chain(reg_ref.inherited.iter().copied()));
        reg_ref.at_fork_incomplete = reg_ref.inherit_unknown;
    } else {
        // Out of memory: the child treats every socket found with SO_ZEROCOPY on as inherited.
        reg_ref.at_fork_incomplete = true;
    }
    std::mem::forget(reg);
}

/// For the `fork()` handlers, after [`lock_for_fork`] in the same thread.
///
/// # Safety
/// The lock must have been taken by [`lock_for_fork`] and not released since.
pub(super) unsafe fn unlock_after_fork() {
    REGISTRY.force_unlock();
}

/// For the child's `fork()` handler, instead of [`unlock_after_fork`]: see
/// `fork::reinit_in_child`.
///
/// # Safety
/// Only in the child's handler, whose thread is the only one of the process.
pub(super) unsafe fn reinit_lock_in_child() {
    super::fork_lock::reinit_in_child(&REGISTRY);
}

/// For the child's `fork()` handler, with the lock held by [`lock_for_fork`]: forgets every
/// socket (their sends in flight are the parent's). The entries' pipes are closed (the
/// child's copies).
pub(super) fn reset_in_child() {
    // SAFETY: the child's only thread holds the lock (taken in `lock_for_fork`).
    let reg = unsafe { &mut *REGISTRY.data_ptr() };
    let inherited = std::mem::take(&mut reg.at_fork);
    let inherit_unknown = reg.at_fork_incomplete;
    *reg = Registry { inherited, inherit_unknown, ..Registry::default() };
}

/// For the parent's `fork()` handler, with the lock held by [`lock_for_fork`].
pub(super) fn after_fork_in_parent() {
    // SAFETY: this thread holds the lock (taken in `lock_for_fork`).
    let reg = unsafe { &mut *REGISTRY.data_ptr() };
    reg.at_fork.clear();
}

/// Every socket is counted in exactly one of these places, so the process totals read
/// under this lock neither miss nor double-count a socket that is being forgotten.
#[derive(Default)]
struct Registry {
    live: IntMap<RawFd, Arc<SocketEntry>>,
    /// Removed from `live` (or `held`), not yet retired (that waits for the socket's send
    /// lock, or for a hand-over).
    retiring: Vec<Arc<SocketEntry>>,
    /// Retired with sends the kernel may still read: their buffers are kept until the
    /// socket is seen again ([`adopt_held`]) or the process exits.
    held: Vec<Arc<SocketEntry>>,
    /// Statistics of sockets that were forgotten (or found closed and reused).
    retired: Stats,
    /// In a forked child: the sockets (inodes) the parent (or an ancestor) knew at the
    /// fork. They share their error queue and notification counter with the parent, whose
    /// sends may still be in flight: this process copies on them and never reads their
    /// error queue, so the parent's sends complete as if the child did not exist.
    inherited: Vec<u64>,
    /// In a forked child whose list above could not be made (out of memory at the fork):
    /// every socket found with `SO_ZEROCOPY` already on is treated as inherited.
    inherit_unknown: bool,
    /// Made by [`lock_for_fork`] for the child.
    at_fork: Vec<u64>,
    at_fork_incomplete: bool,
}

impl Registry {
    /// Removes `fd`'s entry, which its caller must then [`retire`].
    fn remove(&mut self, fd: RawFd) -> Option<Arc<SocketEntry>> {
        let e = self.live.remove(&fd)?;
        self.retiring.push(e.clone());
        Some(e)
    }
}

/// The entry registered under `fd`, unchecked: its socket may have been closed and the
/// number reused. For the cheap path of small copies, whose statistics may land on the
/// closed socket's entry (see `zerocopy::send`).
pub(super) fn registered(fd: RawFd) -> Option<Arc<SocketEntry>> {
    REGISTRY.lock().live.get(&fd).cloned()
}

/// Whether `fd` names socket `inode` now (one identity read; a closed number is `EBADF`).
pub(super) fn names_socket(fd: RawFd, inode: u64) -> io::Result<bool> {
    let (kind, now) = sys::file_identity(fd)?;
    Ok(kind == libc::S_IFSOCK && now == inode)
}

/// Removes `fd`'s entry if it still is `entry`: false when another thread already removed
/// it (and retires it). The caller then retires it.
pub(super) fn remove_if(fd: RawFd, entry: &Arc<SocketEntry>) -> bool {
    let mut reg = REGISTRY.lock();
    match reg.live.get(&fd) {
        Some(e) if Arc::ptr_eq(e, entry) => reg.remove(fd).is_some(),
        _ => false,
    }
}

/// The socket behind `fd`, checked to be a socket. With `create`, unknown sockets are
/// probed and registered. A registered entry whose inode differs (or whose number now
/// names a file that is not a socket) belongs to a socket that was closed, its number
/// reused: it is retired first.
pub(super) fn lookup(fd: RawFd, create: bool) -> io::Result<Option<Arc<SocketEntry>>> {
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
                        // Room first, so that nothing changes when memory is short.
                        if reg.retiring.try_reserve(1).is_err() || reg.live.try_reserve(1).is_err() {
                            return Err(error(libc::ENOMEM));
                        }
                        let found = match (create && is_socket).then(|| SocketEntry::probe_boxed(fd, inode)) {
                            Some(None) => return Err(error(libc::ENOMEM)),
                            Some(Some(e)) => Some(e),
                            None => None,
                        };
                        let stale = reg.remove(fd);
                        let found = found.map(|e| register(&mut reg, fd, e));
                        (found, stale, is_socket)
                    }
                }
            }
        }
    };
    if let Some(old) = stale {
        let n = retire(&old);
        log::debug!("fd {fd} now names another file; the closed socket had {n} sends in flight");
    }
    if !is_socket {
        return Err(error(libc::ENOTSOCK));
    }
    if let Some(new) = &found {
        adopt_held(new);
    }
    Ok(found)
}

/// Hands the sends held for a forgotten socket over to `new`, a descriptor of that same
/// socket registered since: through it their completions can be read again.
fn adopt_held(new: &Arc<SocketEntry>) {
    let orphans: Vec<_> = {
        let mut reg = REGISTRY.lock();
        if !reg.held.iter().any(|e| e.inode == new.inode) {
            return;
        }
        let (same, other): (Vec<_>, Vec<_>) =
            std::mem::take(&mut reg.held).into_iter().partition(|e| e.inode == new.inode);
        reg.held = other;
        reg.retiring.extend(same.iter().cloned());
        same
    };
    for old in orphans {
        let (last_stats, still_held) = {
            // Lock order: the retiring entry's state, then the live one's.
            let mut st = old.state.lock();
            let moved = st.hand_over(&mut new.state.lock());
            // Counted abandoned when they were held; taken over, they are not.
            st.stats.abandoned_sends = st.stats.abandoned_sends.saturating_sub(moved as u64);
            log::info!("fd {}: took over {moved} sends held since fd {} was forgotten (same socket)", new.fd, old.fd);
            (st.snapshot(), st.pending_count() > 0)
        };
        if still_held {
            // The new entry could not take them (it has sends of its own in flight): they
            // stay held, for a later descriptor of the socket.
            let mut reg = REGISTRY.lock();
            reg.retiring.retain(|e| !Arc::ptr_eq(e, &old));
            if reg.held.try_reserve(1).is_ok() {
                reg.held.push(old);
                continue;
            }
            drop(reg);
        }
        finish_retiring(&old, &last_stats);
    }
}

/// Moves a retired entry's final statistics into the totals, in the same step that stops
/// counting the entry itself.
fn finish_retiring(entry: &Arc<SocketEntry>, last_stats: &Stats) {
    let mut reg = REGISTRY.lock();
    reg.retired.add(last_stats);
    reg.retiring.retain(|e| !Arc::ptr_eq(e, entry));
}

/// Registers `e`, socket `fd` just probed (its inode read under the registry lock); the
/// caller has reserved room in `live`.
fn register(reg: &mut Registry, fd: RawFd, mut e: Arc<SocketEntry>) -> Arc<SocketEntry> {
    let inode = e.inode;
    let e_mut = Arc::get_mut(&mut e).expect("a new entry has no other reference");
    // Another descriptor of this same socket (dup, fork) is registered: the kernel's
    // notification ids and SIOCOUTQ are per socket, so two entries sending zero-copy would
    // credit completions to the wrong sends. Only the first entry sends zero-copy; this
    // one copies.
    // A retiring entry counts too: it is on its way into `held`, and a zero-copy entry
    // registered meanwhile could not take its sends over.
    if reg.live.values().chain(&reg.held).chain(&reg.retiring).any(|o| o.inode == inode) {
        log::debug!("fd {fd}: its socket is registered under another descriptor; copying on this one");
        e_mut.state.get_mut().path = Path::Copy;
    }
    let st = e_mut.state.get_mut();
    // `notifications` on a copying socket: SO_ZEROCOPY was on before this process saw it.
    if reg.inherited.contains(&inode) || (reg.inherit_unknown && st.notifications && st.path == Path::Copy) {
        log::debug!("fd {fd}: inherited over fork() from a process that sent zero-copy on it; copying, its error queue left alone");
        st.path = Path::Copy;
        st.notifications = false;
    }
    reg.live.insert(fd, e.clone());
    e
}

/// Retires a socket that is going away (removed from the registry's `live` map): its sends
/// in flight move to another registered descriptor of the same socket if there is one;
/// otherwise they are held, never freed, because the kernel may still read their pages (an
/// AF_UNIX peer that has not read them, TCP data not yet sent), and nothing will ever
/// report them complete through this entry. Its statistics move into the process totals
/// (with a held entry, once its sends are handed over). Returns the number of sends held.
fn retire(entry: &Arc<SocketEntry>) -> usize {
    retire_with(entry, entry.send.lock())
}

/// [`retire`], with the entry's send lock already taken.
pub(super) fn retire_with(entry: &Arc<SocketEntry>, mut side: MutexGuard<'_, SendSide>) -> usize {
    side.pipe = None;
    let (held, last_stats) = {
        let mut st = entry.state.lock();
        st.retired = true;
        // Another descriptor of the socket (a dup) keeps it open: its sends in flight are
        // still read by the kernel and will still be reported, so they move to that
        // descriptor's entry instead of being abandoned.
        if let Some(heir) = same_socket(entry.inode).into_iter().find(|e| !Arc::ptr_eq(e, entry)) {
            let moved = st.hand_over(&mut heir.state.lock());
            if moved > 0 {
                log::debug!("fd {}: {moved} sends in flight handed over to fd {} (same socket)", entry.fd, heir.fd);
            }
        }
        let held = st.pending_count();
        st.stats.abandoned_sends += held as u64;
        if held > 0 {
            let bytes: usize =
                st.pending.iter().chain(st.spliced.pending.iter().map(|(_, s)| s)).map(|s| s.bytes).sum();
            log::warn!(
                "fd {}: forgotten (or closed) with {held} sends ({bytes} bytes) the kernel may still read; \
                 their buffers are held until the socket is seen again or the process exits",
                entry.fd
            );
        }
        (held, st.snapshot())
    };
    drop(side);
    if held > 0 {
        let mut reg = REGISTRY.lock();
        reg.retiring.retain(|e| !Arc::ptr_eq(e, entry));
        if reg.held.try_reserve(1).is_ok() {
            reg.held.push(entry.clone());
        } else {
            // Out of memory: the entry is dropped, its buffers stay in the table, counted in
            // flight, never freed: a leak, never a page freed under the kernel.
            log::error!("fd {}: out of memory; {held} held sends can never be taken over", entry.fd);
            reg.retired.add(&last_stats);
        }
    } else {
        // Nothing changes a retired entry's statistics any more.
        finish_retiring(entry, &last_stats);
    }
    held
}

/// Whether the library holds sends of socket `inode` (forgotten through another
/// descriptor, or through this one while it stayed open).
pub(super) fn holds(inode: u64) -> bool {
    REGISTRY.lock().held.iter().any(|e| e.inode == inode)
}

/// The registered entries of socket `inode` (its descriptors: dup, fork). Out of memory:
/// none (no heir, no other descriptor to complete through: sends are held, never freed).
pub(super) fn same_socket(inode: u64) -> Vec<Arc<SocketEntry>> {
    let reg = REGISTRY.lock();
    let mut out = Vec::new();
    let n = reg.live.values().filter(|e| e.inode == inode).count();
    if out.try_reserve_exact(n).is_ok() {
        out.extend(reg.live.values().filter(|e| e.inode == inode).cloned());
    }
    out
}

/// Whose sends are completed by what is read through a descriptor of socket `inode` whose
/// own entry is `own`: that entry, unless it copies (or there is none): then the entry of
/// another descriptor of the socket (`dup`, `fork`) that sends `MSG_ZEROCOPY` on it or has
/// spliced sends in flight, also after that descriptor was closed. The scan for it runs
/// only then, off the zero-copy paths.
pub(super) fn completing_entry(own: Option<Arc<SocketEntry>>, inode: u64) -> Option<Arc<SocketEntry>> {
    if let Some(e) = &own {
        if e.state.lock().path != Path::Copy {
            return own;
        }
    }
    same_socket(inode)
        .into_iter()
        .find(|e| {
            let st = e.state.lock();
            st.path == Path::MsgZerocopy || !st.spliced.pending.is_empty()
        })
        .or(own)
}

/// `fd`'s entry if it still names the socket `inode` (no identity read, no retiring).
pub(super) fn registered_as(fd: RawFd, inode: u64) -> Option<Arc<SocketEntry>> {
    REGISTRY.lock().live.get(&fd).filter(|e| e.inode == inode).cloned()
}

/// Counts copies made on the cheap path (`zerocopy::send`) on `entry`, or in the totals if
/// it was retired meanwhile (its statistics have moved there).
pub(super) fn count_copies(entry: &SocketEntry, sends: u64, bytes: u64) {
    let mut st = entry.state.lock();
    let stats = if st.retired { &mut REGISTRY.lock().retired } else { &mut st.stats };
    stats.copied_sends += sends;
    stats.copied_bytes += bytes;
}

/// The statistics of every socket the process used, forgotten ones included.
pub(super) fn totals() -> io::Result<Stats> {
    let (mut total, known) = {
        let reg = REGISTRY.lock();
        let mut known = Vec::new();
        known
            .try_reserve_exact(reg.live.len() + reg.retiring.len() + reg.held.len())
            .map_err(|_| error(libc::ENOMEM))?;
        known.extend(reg.live.values().chain(&reg.retiring).chain(&reg.held).cloned());
        (reg.retired, known)
    };
    // An entry retired from here on adds to `retired` after the copy above: it is counted
    // once, by its own (final) statistics.
    for e in known {
        total.add(&e.state.lock().snapshot());
    }
    Ok(total)
}
