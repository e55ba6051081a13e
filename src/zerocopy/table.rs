//! The buffer table: every buffer handed to `blight_send_zerocopy`, kept alive until both
//! the caller has released its id and the kernel has finished every send of it.
//!
//! Ids count up from 1 and are never reused (2^64 ids outlast any process), so a stale id
//! is always "unknown", never someone else's buffer. The table decides *when* a buffer is
//! free; the caller's `free_fn` runs later, outside the table's lock, through [`Freed`].
use super::fast_hash::IntMap;
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::hash_map::{Entry, OccupiedEntry};
use std::ffi::c_void;

/// The process-wide table (see the lock order in `zerocopy`).
pub(super) static TABLE: Lazy<Mutex<BufferTable>> = Lazy::new(|| Mutex::new(BufferTable::default()));

/// The caller's deallocator: `free_fn(data, size, user)`.
pub type FreeFn = unsafe extern "C" fn(data: *mut u8, size: usize, user: *mut c_void);

#[derive(Debug)]
struct Buffer {
    data: *mut u8,
    size: usize,
    free_fn: Option<FreeFn>,
    user: *mut c_void,
    /// Sends of this buffer the kernel may still be reading from.
    in_flight: u32,
    /// The caller gave up its reference (`blight_release_buffer`).
    released: bool,
}

/// A buffer nobody needs any more; dropping it without [`Freed::run`] leaks it.
#[must_use = "call run() outside every lock"]
#[derive(Debug)]
pub struct Freed(Buffer);

// SAFETY: the pointers are the caller's opaque tokens; this library never dereferences
// them, it only hands them back to the caller's free_fn, which must be callable from any
// thread (documented in the header).
unsafe impl Send for Freed {}
unsafe impl Send for Buffer {}

impl Freed {
    /// Calls the caller's `free_fn` (if any). Must not run under a lock of this library:
    /// the callback may call back into it.
    pub fn run(self) {
        let b = self.0;
        if let Some(free_fn) = b.free_fn {
            // SAFETY: the caller promised that free_fn(data, size, user) is valid once, and
            // the table hands out each buffer's Freed exactly once.
            unsafe { free_fn(b.data, b.size, b.user) };
        }
    }
}

/// Why a table operation did not apply.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownId;

/// The table could not grow (out of memory): nothing was registered.
#[derive(Debug, PartialEq, Eq)]
pub struct NoMemory;

#[derive(Debug)]
pub struct BufferTable {
    next_id: u64,
    buffers: IntMap<u64, Buffer>,
}

impl Default for BufferTable {
    fn default() -> Self {
        BufferTable { next_id: 1, buffers: IntMap::default() }
    }
}

impl BufferTable {
    /// Takes ownership of a buffer; returns its id (never 0, never reused), or [`NoMemory`]
    /// when the table cannot grow, with nothing registered (never an abort).
    pub fn register(
        &mut self,
        data: *mut u8,
        size: usize,
        free_fn: Option<FreeFn>,
        user: *mut c_void,
    ) -> Result<u64, NoMemory> {
        self.buffers.try_reserve(1).map_err(|_| NoMemory)?;
        let id = self.next_id;
        self.next_id += 1;
        self.buffers.insert(id, Buffer { data, size, free_fn, user, in_flight: 0, released: false });
        Ok(id)
    }

    /// Unregisters `id`, which nothing was sent from, without freeing it: the caller keeps
    /// the buffer (a send that turned out to have no socket to go to).
    pub fn withdraw(&mut self, id: u64) {
        if let Some(b) = self.buffers.remove(&id) {
            debug_assert!(b.in_flight == 0 && !b.released, "withdrawn after a send");
        }
    }

    /// One more send of `id` that the kernel will report complete.
    pub fn send_started(&mut self, id: u64) {
        if let Some(b) = self.buffers.get_mut(&id) {
            b.in_flight += 1;
        }
    }

    /// The kernel finished one send of `id`.
    pub fn send_completed(&mut self, id: u64) -> Option<Freed> {
        let Entry::Occupied(mut e) = self.buffers.entry(id) else {
            return None;
        };
        let b = e.get_mut();
        debug_assert!(b.in_flight > 0, "a send completed twice");
        b.in_flight = b.in_flight.saturating_sub(1);
        Self::take_if_free(e)
    }

    /// The caller gives up its reference.
    pub fn release(&mut self, id: u64) -> Result<Option<Freed>, UnknownId> {
        match self.buffers.entry(id) {
            Entry::Occupied(mut e) if !e.get().released => {
                e.get_mut().released = true;
                Ok(Self::take_if_free(e))
            }
            _ => Err(UnknownId),
        }
    }

    /// In a forked child: the sends in flight are the parent's, so every buffer's count
    /// them complete. Returns the buffers that became free (released, and only waiting for
    /// the kernel), for the caller to free later.
    pub fn forget_sends_in_flight(&mut self) -> Vec<Freed> {
        for b in self.buffers.values_mut() {
            b.in_flight = 0;
        }
        let free: Vec<u64> = self.buffers.iter().filter(|(_, b)| b.released).map(|(id, _)| *id).collect();
        free.into_iter().filter_map(|id| self.buffers.remove(&id).map(Freed)).collect()
    }

    /// Sends of `id` still in flight; unknown once released and complete.
    pub fn in_flight(&self, id: u64) -> Option<u32> {
        self.buffers.get(&id).map(|b| b.in_flight)
    }

    /// Buffers the table still holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// One hash lookup per operation: the entry found is removed in place once free.
    fn take_if_free(e: OccupiedEntry<'_, u64, Buffer>) -> Option<Freed> {
        let b = e.get();
        (b.released && b.in_flight == 0).then(|| Freed(e.remove()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static FREES: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_free(_data: *mut u8, size: usize, user: *mut c_void) {
        assert_eq!(size, 7);
        (*(user as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
        FREES.fetch_add(1, Ordering::SeqCst);
    }

    fn table_with(counter: &AtomicUsize) -> (BufferTable, u64) {
        let mut t = BufferTable::default();
        let id = t.register(std::ptr::null_mut(), 7, Some(count_free), counter as *const _ as *mut c_void).unwrap();
        (t, id)
    }

    #[test]
    fn ids_start_at_one_and_are_never_reused() {
        let mut t = BufferTable::default();
        let a = t.register(std::ptr::null_mut(), 0, None, std::ptr::null_mut()).unwrap();
        t.release(a).unwrap().unwrap().run();
        let b = t.register(std::ptr::null_mut(), 0, None, std::ptr::null_mut()).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(t.release(a).unwrap_err(), UnknownId);
    }

    #[test]
    fn release_without_sends_frees_at_once() {
        let counter = AtomicUsize::new(0);
        let (mut t, id) = table_with(&counter);
        t.release(id).unwrap().expect("free now").run();
        assert_eq!(counter.load(Ordering::SeqCst), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn release_before_completion_waits_for_every_send() {
        let counter = AtomicUsize::new(0);
        let (mut t, id) = table_with(&counter);
        t.send_started(id);
        t.send_started(id);
        assert!(t.release(id).unwrap().is_none());
        assert!(t.send_completed(id).is_none());
        assert_eq!(t.in_flight(id), Some(1));
        t.send_completed(id).expect("last send frees").run();
        assert_eq!(counter.load(Ordering::SeqCst), 1);
        assert_eq!(t.in_flight(id), None);
    }

    #[test]
    fn release_after_completion_frees_at_release() {
        let counter = AtomicUsize::new(0);
        let (mut t, id) = table_with(&counter);
        t.send_started(id);
        assert!(t.send_completed(id).is_none());
        assert_eq!(t.in_flight(id), Some(0));
        t.release(id).unwrap().unwrap().run();
        assert_eq!(counter.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn double_and_unknown_release_are_errors() {
        let counter = AtomicUsize::new(0);
        let (mut t, id) = table_with(&counter);
        t.send_started(id);
        assert!(t.release(id).unwrap().is_none());
        assert_eq!(t.release(id).unwrap_err(), UnknownId, "released but in flight");
        t.send_completed(id).unwrap().run();
        assert_eq!(t.release(id).unwrap_err(), UnknownId, "gone");
        assert_eq!(t.release(0).unwrap_err(), UnknownId);
        assert_eq!(t.release(u64::MAX).unwrap_err(), UnknownId);
        assert_eq!(counter.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn withdraw_gives_the_buffer_back_unfreed() {
        let counter = AtomicUsize::new(0);
        let (mut t, id) = table_with(&counter);
        t.withdraw(id);
        assert!(t.is_empty());
        assert_eq!(t.release(id).unwrap_err(), UnknownId);
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn completion_for_unknown_id_is_ignored() {
        let mut t = BufferTable::default();
        assert!(t.send_completed(42).is_none());
    }
}
