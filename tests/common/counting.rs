//! A global allocator that counts allocations, for the tests that check a
//! loop allocates nothing. Included by such a test crate with
//! `#[path = "common/counting.rs"] mod counting;`, which makes it that
//! crate's allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Bytes asked for by those allocations.
static BYTES: AtomicUsize = AtomicUsize::new(0);

/// Those made on a thread of a rayon pool.
static POOL_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn counted(bytes: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(bytes, Ordering::Relaxed);
    // Reads a thread-local cell: allocates nothing.
    if rayon::current_thread_index().is_some() {
        POOL_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made so far in this process.
#[allow(dead_code)]
pub fn count() -> usize {
    ALLOCS.load(Ordering::SeqCst)
}

/// Bytes asked for by the allocations (and reallocations) so far.
#[allow(dead_code)]
pub fn bytes() -> usize {
    BYTES.load(Ordering::SeqCst)
}

/// Allocations (and reallocations) made so far on threads of a rayon pool.
#[allow(dead_code)]
pub fn pool_count() -> usize {
    POOL_ALLOCS.load(Ordering::SeqCst)
}
