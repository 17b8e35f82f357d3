//! [`Allocator`]: a small-block allocator for wasm guests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Size classes: blocks of 16, 32, … 4096 bytes.
const CLASSES: usize = 9;
const SMALLEST: u32 = 4;
const LARGEST: usize = 1 << (SMALLEST as usize + CLASSES - 1);
/// Every small block is aligned to this: the standard allocator's own
/// alignment on wasm32, so that it hands out blocks on its fast path.
const ALIGN: usize = 8;

/// A global allocator for wasm guests that keeps freed small blocks for
/// reuse: an allocation of up to 4 KiB is a pop from the free list of its
/// size class (16, 32, … 4096 bytes), a free is a push, and a reallocation
/// within one class keeps the block. Larger allocations, those aligned to
/// more than 8 bytes, and a class whose list is empty go to the standard
/// allocator (dlmalloc).
///
/// A call's short-lived strings and buffers then cost a few instructions
/// each (the Rust greeter uses it; its Greet is a row of `outlet bench`).
/// The price is that a
/// freed small block only ever serves its own class again, so a guest's
/// memory is its peak use per class; linear memory never shrinks anyway.
///
/// It is `Sync`, and so usable as the global allocator, only on wasm
/// without the `atomics` target feature, where a module runs on one thread.
/// An allocator that is not the global one keeps the blocks on its lists
/// when it is dropped.
///
/// ```text
/// #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
/// #[global_allocator]
/// static ALLOC: outlet_guest::wasm::Allocator = outlet_guest::wasm::Allocator::new();
/// ```
pub struct Allocator {
    /// The head of each class's list; a free block holds the next one's address.
    free: [Cell<*mut u8>; CLASSES],
}

// SAFETY: without the `atomics` target feature a wasm module has one thread,
// so the cells are never reached from two threads.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Allocator {}

impl Allocator {
    /// An allocator whose lists are empty.
    pub const fn new() -> Allocator {
        Allocator {
            free: [const { Cell::new(std::ptr::null_mut()) }; CLASSES],
        }
    }
}

impl Default for Allocator {
    fn default() -> Allocator {
        Allocator::new()
    }
}

/// The size class of a layout; `None` for large or over-aligned ones.
fn class(layout: Layout) -> Option<usize> {
    if layout.size() > LARGEST || layout.align() > ALIGN {
        return None;
    }
    let size = layout.size().max(1 << SMALLEST).next_power_of_two();
    Some((size.trailing_zeros() - SMALLEST) as usize)
}

/// The layout of every block of each class, made at compile time.
const BLOCKS: [Layout; CLASSES] = {
    let mut blocks = [Layout::new::<u8>(); CLASSES];
    let mut class = 0;
    while class < CLASSES {
        blocks[class] = match Layout::from_size_align(1 << (class + SMALLEST as usize), ALIGN) {
            Ok(layout) => layout,
            Err(_) => panic!("a power of two"),
        };
        class += 1;
    }
    blocks
};

// SAFETY: a block handed out is either fresh from `System` with at least the
// layout asked for (a class's block is as large as any layout of that class,
// and 8-aligned), or one that was freed with a layout of the same class and
// so is such a block too. A block is on one list at most, and never both on
// a list and handed out: `alloc` pops it before handing it out, `dealloc`
// pushes it only when the caller gives it back.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: the caller's layout (large or over-aligned), passed on.
            return unsafe { System.alloc(layout) };
        };
        let head = self.free[class].get();
        if head.is_null() {
            // SAFETY: a class's layout has a non-zero size.
            return unsafe { System.alloc(BLOCKS[class]) };
        }
        // SAFETY: `head` is a free block of this class: at least 16 bytes,
        // 8-aligned, holding the next free block's address.
        self.free[class].set(unsafe { head.cast::<*mut u8>().read() });
        head
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: a large or over-aligned block came from `System` with
            // this layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: the caller gives back a block of this class, which is at
        // least 16 bytes and 8-aligned: it now holds the list's old head.
        unsafe { ptr.cast::<*mut u8>().write(self.free[class].get()) };
        self.free[class].set(ptr);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let grown = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(grown)) {
            // The block is already large enough.
            (Some(old), Some(new)) if old == new => ptr,
            // SAFETY: both large or over-aligned: the block came from `System`.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: `grown` has a non-zero size, as the caller promises.
                let moved = unsafe { self.alloc(grown) };
                if !moved.is_null() {
                    // SAFETY: both blocks hold at least the smaller size and
                    // are distinct; the old one is then given back.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_fall_into_power_of_two_classes_up_to_4_kib() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 1)), Some(1));
        assert_eq!(class(layout(64, 8)), Some(2));
        assert_eq!(class(layout(4096, 4)), Some(8));
        assert_eq!(class(layout(4097, 4)), None);
        assert_eq!(class(layout(8, 16)), None);
        assert_eq!(BLOCKS[8].size(), 4096);
        assert_eq!(BLOCKS[0].align(), ALIGN);
    }

    #[test]
    fn a_freed_block_serves_the_next_allocation_of_its_class() {
        let allocator = Allocator::new();
        // SAFETY: every block is used within the layout it was asked with
        // and given back once, with that layout.
        unsafe {
            let a = allocator.alloc(layout(40, 8));
            assert!(!a.is_null() && (a as usize).is_multiple_of(ALIGN));
            a.write_bytes(0xaa, 40);
            let b = allocator.alloc(layout(33, 1));
            assert_ne!(a, b);
            allocator.dealloc(a, layout(40, 8));
            // Same class (64 bytes): the block just freed, last in first out.
            assert_eq!(allocator.alloc(layout(64, 4)), a);
            // Another class: not that block.
            let c = allocator.alloc(layout(100, 1));
            assert!(c != a && c != b);
            for (ptr, layout) in [(a, layout(64, 4)), (b, layout(33, 1)), (c, layout(100, 1))] {
                allocator.dealloc(ptr, layout);
            }
        }
    }

    #[test]
    fn reallocation_keeps_the_block_within_a_class_and_the_bytes_across() {
        let allocator = Allocator::new();
        // SAFETY: as above; each realloc's result replaces the old pointer.
        unsafe {
            let a = allocator.alloc(layout(5, 1));
            a.copy_from(b"Hello".as_ptr(), 5);
            let same = allocator.realloc(a, layout(5, 1), 16);
            assert_eq!(same, a);
            let moved = allocator.realloc(same, layout(16, 1), 71);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 5), b"Hello");
            // The old block went back to its list.
            assert_eq!(allocator.alloc(layout(8, 1)), a);
            let large = allocator.realloc(moved, layout(71, 1), 10_000);
            assert_eq!(std::slice::from_raw_parts(large, 5), b"Hello");
            let larger = allocator.realloc(large, layout(10_000, 1), 20_000);
            assert_eq!(std::slice::from_raw_parts(larger, 5), b"Hello");
            allocator.dealloc(larger, layout(20_000, 1));
            allocator.dealloc(a, layout(8, 1));
        }
    }
}
