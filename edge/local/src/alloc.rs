//! The process's allocator: mimalloc, called the way its own `malloc` is fastest.
//!
//! A proxy allocates and frees many small buffers per request; glibc's malloc spent a fifth of
//! the CPU on them in the benchmark, hence mimalloc. The `mimalloc` crate's `GlobalAlloc`
//! sends every allocation through `mi_malloc_aligned`, whose checks cost about as much again as
//! the allocation itself. mimalloc's plain `mi_malloc` already returns blocks aligned to
//! [`MIN_ALIGN`] (16 bytes on 64-bit targets; 8-byte blocks to 8), so, like the standard
//! library's own `System` allocator over `malloc`, this one takes the plain entry points when
//! the layout asks for no more than that and the aligned ones otherwise. Measured with
//! callgrind: about 1,000 fewer instructions per proxied request (roughly 50 allocations).
//! The mimalloc built is the 2.x line (`libmimalloc-sys`'s `v2` feature): its allocation and
//! free paths measured about 250 instructions per request fewer than 3.x's.
//!
//! With [`crate::ascii`], the only module of the crate with `unsafe` code: implementing
//! `GlobalAlloc` needs it. Every function forwards to mimalloc with the contract `GlobalAlloc` already imposes on
//! its caller.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every block from `mi_malloc` of at least this many bytes has
/// (`MI_MAX_ALIGN_SIZE`: `2 * sizeof(void*)` on the targets Rust's `std` supports here).
pub const MIN_ALIGN: usize = 2 * std::mem::size_of::<usize>();

/// mimalloc as the global allocator, through its plain entry points when they suffice.
pub struct Mimalloc;

/// Whether a block of `size` bytes from the plain entry points is aligned enough: blocks
/// smaller than [`MIN_ALIGN`] come from size classes that are multiples of the word, so the
/// alignment must not exceed the size either (the rule `std` applies to `malloc`).
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: every method forwards to mimalloc, which returns null on failure and otherwise a
// block of at least `size` bytes with the requested alignment (see `plain`); `mi_free` and the
// reallocation functions accept any block from either family.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; `layout` has a non-zero size (the caller's contract)
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract)
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps the
        // alignment (plain only when the new size's blocks have it)
        unsafe {
            if plain(new_size, layout.align()) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment up to a page, allocated, written, grown, shrunk, zeroed and
    /// freed through the allocator itself (not only as the global one): each block has its
    /// alignment and keeps its contents across a reallocation.
    #[test]
    fn blocks_have_their_alignment_and_keep_their_contents() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [
                1usize, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 48, 100, 1000, 70_000,
            ] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero sizes; each block is freed once, with its layout
                unsafe {
                    for new in [size * 3 + 5, size.div_ceil(2)] {
                        let p = a.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        for i in 0..size {
                            *p.add(i) = (i % 251) as u8;
                        }
                        let q = a.realloc(p, layout, new);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc {size}->{new} align {align}");
                        for i in 0..size.min(new) {
                            assert_eq!(*q.add(i), (i % 251) as u8);
                        }
                        a.dealloc(q, Layout::from_size_align(new, align).expect("layout"));
                    }
                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null());
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
