//! `fork()` without `exec`: the child starts with an empty registry.
//!
//! The child inherits the parent's sockets, their notification counters and splice pipes,
//! but the sends in flight are the parent's: the kernel completes them for the parent (it
//! reads the parent's pages; the child's copies are its own after copy-on-write). So in the
//! child every entry is dropped (closing the child's copies of the pipes), and every
//! buffer's sends are counted complete: a buffer the child releases is freed at once, and
//! the released ones that were only waiting for the kernel are freed by the child's next
//! call of `blight_release_buffer`, `blight_process_zerocopy_completions` or
//! `blight_forget_socket` (not in the fork handler itself, where the callers' `free_fn`s
//! must not run).
//!
//! The sockets the parent knew stay shared with it (their error queue and notification
//! counter are per socket): in the child they copy and their error queue is never read, so
//! the parent's sends complete in the parent as if the child did not exist (see
//! `registry::Registry::inherited`).
//!
//! On kernels older than 5.8 (before the copy-on-write fix for pages pinned by `vmsplice`
//! and `MSG_ZEROCOPY`, "COW can break either way"), a child that wrote to a page of a
//! buffer the parent is still sending could have its write land in the very page the
//! parent's send reads. So there, the child never frees (nor lets its caller reuse through
//! `free_fn`) a buffer that had sends in flight at the fork: they stay counted in flight in
//! the child, a bounded leak in the child instead of a corrupt message from the parent.
//!
//! The handlers hold the table's and the registry's locks across `fork()` (in the lock
//! order), so that the child never inherits one locked by another thread. They are
//! installed when the library is loaded (`zerocopy::on_load`), before any thread can hold
//! one of these locks. The logger's one-time install is settled before the fork too (so
//! the logger may be installed by a fork that precedes the first call); the logger itself
//! holds no lock across `write(2)`.
use super::fork_lock::reinit_in_child;
use super::frees::run_frees;
use super::registry;
use super::table::{Freed, TABLE};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Frees the child owes its callers (see the module documentation).
static AFTER_FORK: Lazy<Mutex<Vec<Freed>>> = Lazy::new(|| Mutex::new(Vec::new()));
static PENDING: AtomicBool = AtomicBool::new(false);

/// Installs the handlers, once per process: when the library is loaded, before any lock of
/// it can be held (and, again a no-op, before a zero-copy send).
pub(super) fn install_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        Lazy::force(&AFTER_FORK);
        pinned_pages_stay_with_the_parent();
        // SAFETY: the three handlers are `extern "C"` functions that live as long as the
        // process (a cdylib is not unloaded while its atfork handlers are registered:
        // glibc's dlclose unregisters them).
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({rc}): a forked child would share the parent's zero-copy state");
        }
    });
}

extern "C" fn prepare() {
    // The logger is installed once, on the first call of the library: a child forked while
    // another thread was installing it would wait for that install forever. Installing it
    // here (or waiting for the install in progress) settles it before the fork.
    crate::logging::init();
    std::mem::forget(TABLE.lock());
    registry::lock_for_fork();
}

extern "C" fn parent() {
    registry::after_fork_in_parent();
    // SAFETY: locked by `prepare` in this thread, which `fork()` returned to.
    unsafe {
        registry::unlock_after_fork();
        TABLE.force_unlock();
    }
}

extern "C" fn child() {
    registry::reset_in_child();
    // SAFETY: as in `parent`: the only thread of the child is the one that locked it.
    let table = unsafe { &mut *TABLE.data_ptr() };
    if !pinned_pages_stay_with_the_parent() {
        // See the module documentation: the parent's in-flight buffers are never freed here.
        // SAFETY: the child's handler, its only thread.
        unsafe {
            registry::reinit_lock_in_child();
            reinit_in_child(&TABLE);
        }
        return;
    }
    let owed = table.forget_sends_in_flight();
    if !owed.is_empty() {
        // SAFETY: as above; AFTER_FORK was forced at install time, and no other thread of
        // the child can hold its lock.
        unsafe {
            reinit_in_child(&AFTER_FORK);
            (*AFTER_FORK.data_ptr()).extend(owed);
        }
        PENDING.store(true, Ordering::Relaxed);
    }
    // SAFETY: the child's handler, its only thread.
    unsafe {
        registry::reinit_lock_in_child();
        reinit_in_child(&TABLE);
    }
}

/// Whether this kernel gives a page pinned by a send in flight to the parent for good at
/// `fork()` (5.8 and later): only then may the child free its copies of those buffers.
/// Read once, at install time (`uname` is not called in the child handler).
fn pinned_pages_stay_with_the_parent() -> bool {
    *NEW_COW.get_or_init(|| kernel_at_least(&crate::sys::kernel_release(), 5, 8))
}
static NEW_COW: once_cell::sync::OnceCell<bool> = once_cell::sync::OnceCell::new();

/// Whether a kernel release string (`uname -r`: "5.4.70-1.3.4", "6.1.0-18-amd64") is at
/// least `major.minor`. An unreadable one counts as old (the safe answer).
pub(super) fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let num = |p: Option<&str>| p.and_then(|s| s.parse::<u32>().ok());
    match (num(parts.next()), num(parts.next())) {
        (Some(ma), Some(mi)) => (ma, mi) >= (major, minor),
        _ => false,
    }
}

/// Runs the frees a forked child owes (nothing, almost always: one relaxed load).
pub(super) fn run_owed_frees() {
    if PENDING.load(Ordering::Relaxed) && PENDING.swap(false, Ordering::Relaxed) {
        let owed = std::mem::take(&mut *AFTER_FORK.lock());
        run_frees(owed);
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn kernel_release_strings() {
        assert!(!kernel_at_least("5.4.70-1.3.4", 5, 8), "reMarkable 2");
        assert!(!kernel_at_least("4.9.84", 5, 8));
        assert!(kernel_at_least("5.8.0", 5, 8));
        assert!(kernel_at_least("6.1.0-18-amd64", 5, 8));
        assert!(kernel_at_least("5.10", 5, 8));
        assert!(!kernel_at_least("", 5, 8));
        assert!(!kernel_at_least("garbage", 5, 8));
    }
}
