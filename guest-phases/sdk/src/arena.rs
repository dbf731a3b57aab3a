//! A global allocator for a plugin instance that lives for one call.
//!
//! The host makes a fresh instance for every call and throws it away after,
//! so memory a phase frees is never used again by anyone. With the default
//! allocator a large recovery still pays to free it: every string of the
//! state arrives in its own allocation and is freed one by one when the phase
//! drops it, when the SDK empties the fields it does not write back, and in
//! the post-return cleanup of the outcome. At a thousand nodes that is
//! hundreds of thousands of `free` calls per recovery.
//!
//! [`CallArena`] hands out small blocks from chunks and does not take
//! them back, except the newest one (so a string or vector that grows at the
//! end of the chunk grows in place). The first chunk is 16 KiB and lies in
//! the arena itself, in the module's zeroed memory, so a call whose blocks
//! are all small and fit in it never enters the system allocator (whose
//! first use in a fresh instance is a cold start of its own:
//! docs/perf/cluster-recovery.md). Each next chunk
//! is twice the last, up to 256 KiB, so that a small call does not take much
//! more memory than it uses: every page an instance touches is a page the
//! host resets before the slot is reused (with 256 KiB chunks from the start,
//! a 9-node recovery was 5% slower). Blocks of 4 KiB and more go to the
//! system allocator and are freed as usual, so a large vector that doubles as
//! it grows leaves no trail of copies behind. What a call leaves unfreed is
//! bounded by what it allocated in small blocks, plus the fields the SDK
//! empties in a phase's outcome (left unfreed, large or small: see
//! `state_fields`), and the instance's memory cap still applies.
//!
//! A phase opts in with [`use_call_arena!`](crate::use_call_arena), which
//! installs it only in the wasm build. A plugin that allocates and frees
//! small blocks in a long loop should keep the default allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Size of the first chunk small blocks are carved from.
const FIRST_CHUNK: usize = 16 << 10;

/// Size of the largest chunk: chunks double up to it.
const MAX_CHUNK: usize = 256 << 10;

/// Blocks at least this large go to the system allocator.
const LARGE: usize = 4 << 10;

/// Alignments above this go to the system allocator (they are rare, and a
/// chunk is only aligned this much).
const MAX_ALIGN: usize = 16;

/// The bump allocator. See the [module docs](self).
pub struct CallArena {
    bump: UnsafeCell<Bump>,
    /// The first chunk, in the arena itself (zeroed memory of the module):
    /// a call whose blocks are all small and fit in it never asks the
    /// system allocator for anything.
    first: UnsafeCell<FirstChunk>,
}

#[repr(C, align(16))]
struct FirstChunk([u8; FIRST_CHUNK]);

struct Bump {
    /// The first free byte of the current chunk.
    next: usize,
    /// One past the current chunk's last byte.
    end: usize,
    /// The size of the current chunk; 0 before the first. Zero, like
    /// every field of a new arena, so that the arena is all zeros and lies
    /// in the module's zeroed memory, not in its data.
    chunk: usize,
}

// SAFETY: the arena is only installed in a wasm32 component (see
// `use_call_arena!`, which refuses a wasm target with threads), and a
// component runs on one thread, so it is never entered concurrently. The
// tests use their own arenas, one per thread.
unsafe impl Sync for CallArena {}

impl CallArena {
    /// An arena with no chunk yet.
    ///
    /// # Safety
    ///
    /// The arena hands out its first chunk from itself: it must not move
    /// once it has handed out a block. Make it a `static`, as
    /// [`use_call_arena!`](crate::use_call_arena) does.
    pub const unsafe fn new() -> Self {
        CallArena { bump: UnsafeCell::new(Bump { next: 0, end: 0, chunk: 0 }), first: UnsafeCell::new(FirstChunk([0; FIRST_CHUNK])) }
    }

    fn is_small(size: usize, align: usize) -> bool {
        size < LARGE && align <= MAX_ALIGN
    }

    /// Carves `layout` (small) out of the current chunk, starting a new chunk
    /// when it does not fit.
    unsafe fn bump(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded (see `Sync` above), and no reference to the
        // state outlives this call.
        let bump = unsafe { &mut *self.bump.get() };
        let start = align_up(bump.next, layout.align());
        if bump.next != 0 && start + layout.size() <= bump.end {
            bump.next = start + layout.size();
            return start as *mut u8;
        }
        let (chunk, size) = if bump.chunk == 0 {
            (self.first.get().cast::<u8>(), FIRST_CHUNK)
        } else {
            let size = (bump.chunk * 2).min(MAX_CHUNK);
            // SAFETY: a chunk is non-empty and MAX_ALIGN a power of two.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(size, MAX_ALIGN)) };
            if chunk.is_null() {
                return chunk;
            }
            (chunk, size)
        };
        bump.chunk = size;
        // The rest of the old chunk is abandoned: at most one small block's
        // worth, since the block did not fit.
        let start = align_up(chunk as usize, layout.align());
        bump.next = start + layout.size();
        bump.end = chunk as usize + size;
        start as *mut u8
    }
}

fn align_up(address: usize, align: usize) -> usize {
    (address + align - 1) & !(align - 1)
}

// SAFETY: small blocks come from chunks the arena owns and never hands out
// twice; large ones are the system allocator's, passed back to it with the
// same layout. A block is small or large by its layout alone, so `dealloc`
// and `realloc` always route it where it came from.
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::is_small(layout.size(), layout.align()) {
            // SAFETY: a small layout, as `bump` needs.
            unsafe { self.bump(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::is_small(layout.size(), layout.align()) {
            // SAFETY: a large block came from `System` with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: single-threaded (see `Sync` above).
        let bump = unsafe { &mut *self.bump.get() };
        if ptr as usize + layout.size() == bump.next {
            // The newest block: take it back, so that a temporary freed right
            // after it was made costs nothing.
            bump.next = ptr as usize;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let (was_small, is_small) = (Self::is_small(layout.size(), align), Self::is_small(new_size, align));
        if !was_small && !is_small {
            // SAFETY: a large block stays large, and stays the system's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if was_small && is_small {
            // SAFETY: single-threaded (see `Sync` above).
            let bump = unsafe { &mut *self.bump.get() };
            if ptr as usize + layout.size() == bump.next && ptr as usize + new_size <= bump.end {
                bump.next = ptr as usize + new_size;
                return ptr;
            }
        }
        // SAFETY: `new_size` is non-zero and, rounded to `align`, does not
        // overflow (the caller's guarantees).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: as for `alloc`.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated here with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        moved
    }
}

/// Installs [`CallArena`] as the global allocator of a plugin's wasm build.
/// Natively (unit tests, the native baseline) the default allocator stays.
#[macro_export]
macro_rules! use_call_arena {
    () => {
        #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
        compile_error!("CallArena assumes a single-threaded component");
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        // SAFETY: a static never moves.
        static __RATCHET_CALL_ARENA: $crate::arena::CallArena = unsafe { $crate::arena::CallArena::new() };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn small_blocks_are_aligned_and_distinct() {
        let arena = unsafe { CallArena::new() };
        let mut blocks = Vec::new();
        for (i, align) in [1, 8, 2, 16, 4, 1, 16].into_iter().cycle().take(5_000).enumerate() {
            let size = 1 + i % 300;
            let ptr = unsafe { arena.alloc(layout(size, align)) };
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % align, 0);
            unsafe { std::ptr::write_bytes(ptr, i as u8, size) };
            blocks.push((ptr, size, i as u8));
        }
        // Every block still holds what was written to it: none overlap,
        // across the several chunks 5,000 blocks take.
        for (ptr, size, byte) in blocks {
            let contents = unsafe { std::slice::from_raw_parts(ptr, size) };
            assert!(contents.iter().all(|b| *b == byte));
        }
    }

    #[test]
    fn the_arena_is_aligned_for_its_largest_small_block() {
        assert_eq!(align_of::<CallArena>(), MAX_ALIGN);
    }

    #[test]
    fn the_first_chunk_is_the_arenas_own_and_the_next_the_systems() {
        let arena = unsafe { CallArena::new() };
        let own = (&arena as *const CallArena as usize)..(&arena as *const CallArena as usize + size_of::<CallArena>());
        let first = unsafe { arena.alloc(layout(100, 8)) } as usize;
        assert!(own.contains(&first), "a small call never asks the system allocator");
        // Fill the rest of the first chunk: the next block comes from a
        // chunk of the system's.
        let mut blocks = 0;
        let next = loop {
            let block = unsafe { arena.alloc(layout(1000, 8)) } as usize;
            if !own.contains(&block) {
                break block;
            }
            assert!(own.contains(&(block + 999)), "a block lies whole in the chunk");
            blocks += 1;
        };
        assert_eq!(blocks, (FIRST_CHUNK - 100) / 1000, "the whole first chunk is used");
        assert!(!own.contains(&(next + 999)));
    }

    #[test]
    fn the_newest_block_is_taken_back_and_grows_in_place() {
        let arena = unsafe { CallArena::new() };
        let a = unsafe { arena.alloc(layout(24, 8)) };
        let b = unsafe { arena.alloc(layout(24, 8)) };
        unsafe { arena.dealloc(b, layout(24, 8)) };
        let c = unsafe { arena.alloc(layout(24, 8)) };
        assert_eq!(b, c, "the freed newest block is reused");
        unsafe { std::ptr::write_bytes(c, 7, 24) };
        let grown = unsafe { arena.realloc(c, layout(24, 8), 100) };
        assert_eq!(grown, c, "the newest block grows in place");
        assert!(unsafe { std::slice::from_raw_parts(grown, 24) }.iter().all(|b| *b == 7));
        // An older block cannot grow in place: it moves, keeping its bytes.
        unsafe { std::ptr::write_bytes(a, 3, 24) };
        let moved = unsafe { arena.realloc(a, layout(24, 8), 48) };
        assert_ne!(moved, a);
        assert!(unsafe { std::slice::from_raw_parts(moved, 24) }.iter().all(|b| *b == 3));
    }

    #[test]
    fn blocks_cross_between_small_and_large_keeping_their_bytes() {
        let arena = unsafe { CallArena::new() };
        let small = unsafe { arena.alloc(layout(100, 8)) };
        unsafe { std::ptr::write_bytes(small, 5, 100) };
        let large = unsafe { arena.realloc(small, layout(100, 8), 64 << 10) };
        assert!(unsafe { std::slice::from_raw_parts(large, 100) }.iter().all(|b| *b == 5));
        unsafe { std::ptr::write_bytes(large, 6, 64 << 10) };
        let larger = unsafe { arena.realloc(large, layout(64 << 10, 8), 1 << 20) };
        assert!(unsafe { std::slice::from_raw_parts(larger, 64 << 10) }.iter().all(|b| *b == 6));
        let back = unsafe { arena.realloc(larger, layout(1 << 20, 8), 10) };
        assert!(unsafe { std::slice::from_raw_parts(back, 10) }.iter().all(|b| *b == 6));
        unsafe { arena.dealloc(back, layout(10, 8)) };
        let aligned = unsafe { arena.alloc(layout(64, 4096)) };
        assert_eq!(aligned as usize % 4096, 0, "over-aligned blocks go to the system allocator");
        unsafe { arena.dealloc(aligned, layout(64, 4096)) };
    }
}
