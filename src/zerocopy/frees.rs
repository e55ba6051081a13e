//! Running the callers' `free_fn`s outside every lock of this library.
//!
//! A `free_fn` may call back into the library, even send on the same socket, so frees are
//! collected under the locks ([`Freed`]) and run after they are dropped; inside a send,
//! which holds the socket's send lock throughout, they wait until the send has returned.
use super::table::Freed;
use std::cell::RefCell;

thread_local! {
    /// Set while this thread holds a socket's send lock: frees wait until it is dropped.
    static DEFERRED: RefCell<Option<Vec<Freed>>> = const { RefCell::new(None) };
}

/// Runs the callers' `free_fn`s, or, inside [`deferring_frees`], queues them until it
/// ends. Call with no lock of the registry, a socket's state or the table held.
pub(super) fn run_frees(freed: impl IntoIterator<Item = Freed>) {
    let mut freed = freed.into_iter().peekable();
    if freed.peek().is_none() {
        return;
    }
    let now = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(queue) => {
            for f in &mut freed {
                if queue.try_reserve(1).is_ok() {
                    queue.push(f);
                } else {
                    // Out of memory: kept, never run early (inside a send a free_fn could
                    // re-enter it); a leak instead of an abort.
                    log::error!("out of memory; a buffer whose free_fn was due is kept");
                }
            }
            false
        }
        None => true,
    });
    if now {
        freed.for_each(Freed::run);
    }
}

/// Runs `body` (which takes a socket's send lock) with every free it causes deferred until
/// it has returned and dropped its locks: a `free_fn` may send on the same socket.
pub(super) fn deferring_frees<R>(body: impl FnOnce() -> R) -> R {
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let queued = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
            queued.into_iter().for_each(Freed::run);
        }
    }
    if DEFERRED.with(|d| d.borrow().is_some()) {
        return body();
    }
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let _flush = Flush;
    body()
}
