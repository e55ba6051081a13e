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
//! The handlers hold the table's and the registry's locks across `fork()` (in the lock
//! order), so that the child never inherits one locked by another thread.
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

/// Installs the handlers, once per process: before anything can be sent zero-copy (the
/// full path of `zerocopy::send`; other calls only register sockets that copy).
pub(super) fn install_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        Lazy::force(&AFTER_FORK);
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
    std::mem::forget(TABLE.lock());
    registry::lock_for_fork();
}

extern "C" fn parent() {
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
    let owed = table.forget_sends_in_flight();
    if !owed.is_empty() {
        // SAFETY: as above; AFTER_FORK was forced at install time, and no other thread of
        // the child can hold its lock.
        unsafe {
            if AFTER_FORK.is_locked() {
                AFTER_FORK.force_unlock();
            }
            (*AFTER_FORK.data_ptr()).extend(owed);
        }
        PENDING.store(true, Ordering::Relaxed);
    }
    // SAFETY: locked by `prepare`.
    unsafe {
        registry::unlock_after_fork();
        TABLE.force_unlock();
    }
}

/// Runs the frees a forked child owes (nothing, almost always: one relaxed load).
pub(super) fn run_owed_frees() {
    if PENDING.load(Ordering::Relaxed) && PENDING.swap(false, Ordering::Relaxed) {
        let owed = std::mem::take(&mut *AFTER_FORK.lock());
        run_frees(owed);
    }
}
