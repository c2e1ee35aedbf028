//! Keeping freed memory in the process rather than returning it to the system, for the host
//! backends' forward passes.
//!
//! Each layer of a forward pass on Flex or NdArray allocates its output afresh: megabytes per
//! layer per chunk of images, many thousand times a certificate. glibc's `malloc` serves
//! blocks above its mmap threshold (128 KiB at first, raised as such blocks are freed, up to
//! 32 MiB) with fresh pages from the kernel and gives the top of its heap back once more than
//! its trim threshold lies free there, so that a steady loop of allocate, fill and free pays a
//! page fault and the zeroing of a page for every 4 KiB it writes. On the 2-core test machine
//! (docs/benchmarks.md) that was a fifth of the small CNNs' forward time; with the two
//! thresholds fixed high, the digits CNN (8 x 8, 16 filters) ran 1.3-1.6x faster and the 28 x 28
//! CNN with 16 filters 1.6x.
//!
//! Which allocator a process uses, and how, is the program's choice, not a library's: so this
//! is a function a program calls (the `smoothing` program, the examples and the benchmarks
//! do), never something the crate does behind a caller's back.

/// Tells the C allocator to keep freed memory for reuse, for the rest of the process: blocks
/// up to 32 MiB come from its heap rather than from fresh pages, and up to 1 GiB of free
/// heap stays mapped. Returns whether the allocator took the settings: `true` with glibc on
/// Linux, `false` elsewhere (a program with its own global allocator, or another C library,
/// is left as it is).
///
/// The cost is memory: the process keeps the peak of what it allocated (the widest batch
/// activations, already needed once per batch) instead of returning it between batches. Call
/// it at the start of `main`, before other threads allocate: glibc documents `mallopt` as
/// meant for a process's initialization.
///
/// # Example
/// ```
/// let kept = randomized_smoothing::runtime::keep_freed_memory();
/// assert_eq!(kept, cfg!(all(target_os = "linux", target_env = "gnu")));
/// ```
pub fn keep_freed_memory() -> bool {
    imp::keep_freed_memory()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::ffi::c_int;

    // `<malloc.h>`'s parameters.
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;

    /// glibc caps the mmap threshold it accepts at half its arenas' heap size, 32 MiB on
    /// 64-bit targets: the largest that keeps a ResNet layer's batch of activations (26 MB
    /// at 400 CIFAR images) on the heap.
    const MMAP_THRESHOLD: c_int = 32 << 20;
    const TRIM_THRESHOLD: c_int = 1 << 30;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    pub(super) fn keep_freed_memory() -> bool {
        // SAFETY: `mallopt` takes two integers and changes only the allocator's own tunables,
        // under its arena lock; it returns 1 on success and 0 for a value it refuses.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn keep_freed_memory() -> bool {
        false
    }
}
