//! The library's global allocator: the system's `malloc`, plus the one thing std cannot do
//! on stable Rust, a fallible `Arc::new` ([`prepared`]). Out of memory on an API path must
//! be `-ENOMEM`, never the abort of `handle_alloc_error`: everything that grows uses
//! `try_reserve`, and the fixed-size blocks std allocates itself are made here first.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr::null_mut;

/// `malloc`, except that an allocation of the layout prepared by [`prepared`] on this
/// thread gets the prepared block.
pub(crate) struct Allocator;

#[global_allocator]
static GLOBAL: Allocator = Allocator;

thread_local! {
    /// A block made by [`prepared`] for the next allocation of its layout on this thread.
    static PREPARED: Cell<(*mut u8, Layout)> = const { Cell::new((null_mut(), Layout::new::<u8>())) };
}

fn take_prepared(layout: Layout) -> *mut u8 {
    PREPARED
        .try_with(|c| {
            let (p, l) = c.get();
            if !p.is_null() && l == layout {
                c.set((null_mut(), Layout::new::<u8>()));
                p
            } else {
                null_mut()
            }
        })
        .unwrap_or(null_mut())
}

// SAFETY: every method forwards to `System` with the caller's layout, or hands out a block
// that `System` allocated with exactly that layout (freed by `System` with it later).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = take_prepared(layout);
        if !p.is_null() {
            return p;
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: every block came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The layout of the block `Arc::new(T)` allocates: std's `ArcInner` is `#[repr(C)]`
/// `{ strong, weak, data }`.
#[repr(C)]
struct ArcInner<T> {
    strong: usize,
    weak: usize,
    data: T,
}

/// `Arc::new(value)`, or `None` when memory is short (never an abort): the block is made
/// fallibly first and handed to `Arc::new`'s one allocation.
pub(crate) fn arc_new<T>(value: T) -> Option<std::sync::Arc<T>> {
    let layout = Layout::new::<ArcInner<T>>();
    // SAFETY: ArcInner has a non-zero size.
    let block = unsafe { System.alloc(layout) };
    if block.is_null() {
        return None;
    }
    PREPARED.with(|c| c.set((block, layout)));
    let arc = std::sync::Arc::new(value);
    // Not taken (std changed its layout): give it back; the Arc was allocated as usual.
    let (left, _) = PREPARED.with(|c| c.replace((null_mut(), Layout::new::<u8>())));
    if !left.is_null() {
        debug_assert!(false, "Arc::new did not take the prepared block");
        // SAFETY: allocated above with `layout`, never handed out.
        unsafe { System.dealloc(left, layout) };
    }
    Some(arc)
}

#[cfg(test)]
mod tests {
    #[test]
    fn arc_new_takes_the_prepared_block() {
        // A debug build asserts that the prepared block was taken (std's ArcInner layout).
        let a = super::arc_new([7u64; 40]).expect("memory");
        assert_eq!(a[39], 7);
        let b = super::arc_new(String::from("x")).expect("memory");
        assert_eq!(*b, "x");
    }
}
