//! The one piece of the `fork()` handlers that both `fork` and `registry` need: making a
//! lock that the fork left held fresh again in the child.
use parking_lot::Mutex;
use std::sync::atomic::Ordering;

/// In the child's `fork()` handler: makes `lock` a fresh, unlocked mutex, whatever state
/// the fork left it in. Not `force_unlock`: when threads of the parent were parked on the
/// lock, parking_lot's (eventually fair) unlock hands the lock over to one of them, and in
/// the child that thread does not exist: the lock would stay locked for good.
///
/// # Safety
/// Only in the child's handler, whose thread is the only one of the process and holds no
/// guard of `lock` it will drop later.
pub(super) unsafe fn reinit_in_child<T>(lock: &Mutex<T>) {
    use std::sync::atomic::AtomicU8;
    // parking_lot's RawMutex is its state byte (`struct RawMutex { state: AtomicU8 }`): 0 is
    // unlocked with no thread parked. Checked at compile time, so a change fails the build.
    const _: () = assert!(size_of::<parking_lot::RawMutex>() == size_of::<AtomicU8>());
    // SAFETY: the raw mutex is exactly one atomic byte (asserted above), shared through an
    // atomic: storing to it through a shared reference is allowed; no other thread exists.
    let state = unsafe { &*(lock.raw() as *const parking_lot::RawMutex as *const AtomicU8) };
    state.store(0, Ordering::Release);
}
