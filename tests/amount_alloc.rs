//! A relay's amount cannot size an allocation: `Usd` parsing of hostile exponents stays small.
//! Its own test binary, because it counts every allocation the process makes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use codex_helper::balance::amount::Usd;

/// The largest single allocation asked for since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn hostile_exponents_never_allocate_by_their_size() {
    // Before the exponent was bounded, these padded a string with as many zeros: the first
    // asked for about 400 MB, the last two for 2 GB each (or aborted the process).
    for text in ["1e400000000", "1e2147483000", "1e-2147483000"] {
        LARGEST.store(0, Ordering::Relaxed);
        let _ = text.parse::<Usd>();
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest < 4096, "{text}: an allocation of {largest} bytes");
    }
}
