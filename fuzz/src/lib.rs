//! What every fuzz target links: an allocator that holds any one
//! allocation to [`MOST`] bytes. No input of a target is larger than
//! 64 KiB, and every reader is given a limit of at most 64 KiB or allocates
//! nothing by its limit, so a larger allocation is one sized by a length no
//! one checked: the process aborts, and libFuzzer keeps the input as a
//! crash.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest allocation a target may make.
pub const MOST: usize = 64 << 20;

struct Bounded;

// SAFETY: every call goes to `System` unchanged, or aborts before it.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// Aborts on an allocation over [`MOST`], saying so without allocating.
fn check(size: usize) {
    if size > MOST {
        let message = b"outlet-fuzz: an allocation over 64 MiB, sized by an unchecked length\n";
        // SAFETY: writes a static buffer to stderr.
        let _ = unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
        std::process::abort();
    }
}
