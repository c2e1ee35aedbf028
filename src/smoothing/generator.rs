//! The one lock on Burn's random generator.
//!
//! Burn keeps each backend's generator process-wide: `B::seed` followed by draws is
//! reproducible only if no other thread seeds or draws in between. Everything in the crate that
//! seeds it (noise drawn on the device, PGD's samples, each training epoch) holds this lock
//! while it seeds and draws, and code outside the crate that does the same beside the crate
//! (a test harness running tests in parallel threads, a program certifying on one thread while
//! it trains on another) holds it too.
//!
//! The lock is reentrant: a thread that holds it may take it again (training holds it for an
//! epoch, and an objective inside the epoch draws PGD's noise under it). It is held by a
//! thread, so its guard is neither `Send` nor `Sync`.

use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

/// Who holds the generator, and how many times over.
struct Holder {
    thread: Option<ThreadId>,
    depth: usize,
}

static HOLDER: Mutex<Holder> = Mutex::new(Holder {
    thread: None,
    depth: 0,
});
static RELEASED: Condvar = Condvar::new();

/// The holder's state. A panic while it was held cannot leave it inconsistent (every update
/// is a single assignment under the mutex), so a poisoned mutex is taken as it is.
fn holder() -> MutexGuard<'static, Holder> {
    HOLDER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Burn's generator, held by the current thread until the guard is dropped; see
/// [`lock_generator`].
#[must_use = "the generator is released when the guard is dropped"]
pub struct GeneratorGuard {
    // Released by the thread that took it.
    _not_send: PhantomData<*const ()>,
}

/// Waits until no other thread holds Burn's process-wide generator, then holds it for the
/// current thread until the returned guard is dropped. Seed the backend and draw under it:
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Distribution, Tensor, backend::Backend};
/// use randomized_smoothing::smoothing::lock_generator;
///
/// type B = NdArray;
///
/// fn draw() -> Vec<f32> {
///     let device = Default::default();
///     let _generator = lock_generator();
///     B::seed(&device, 7);
///     let x = Tensor::<B, 1>::random([4], Distribution::Default, &device);
///     x.into_data().to_vec().unwrap()
/// }
/// // Another thread that seeds and draws under the lock cannot come in between.
/// let other = std::thread::spawn(draw);
/// assert_eq!(draw(), other.join().unwrap());
/// ```
///
/// A thread that holds it may call this again (the lock is reentrant); the generator is
/// released when the last of its guards is dropped.
pub fn lock_generator() -> GeneratorGuard {
    let me = thread::current().id();
    let mut holder = holder();
    while holder.thread.is_some_and(|thread| thread != me) {
        holder = RELEASED
            .wait(holder)
            .unwrap_or_else(PoisonError::into_inner);
    }
    holder.thread = Some(me);
    holder.depth += 1;
    GeneratorGuard {
        _not_send: PhantomData,
    }
}

impl Drop for GeneratorGuard {
    fn drop(&mut self) {
        let mut holder = holder();
        holder.depth -= 1;
        if holder.depth == 0 {
            holder.thread = None;
            RELEASED.notify_all();
        }
    }
}

impl std::fmt::Debug for GeneratorGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeneratorGuard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn reentrant_on_one_thread_and_exclusive_across_threads() {
        let outer = lock_generator();
        let inner = lock_generator();
        let entered = Arc::new(AtomicUsize::new(0));
        let other = {
            let entered = Arc::clone(&entered);
            thread::spawn(move || {
                let _guard = lock_generator();
                entered.fetch_add(1, Ordering::SeqCst);
            })
        };
        thread::sleep(std::time::Duration::from_millis(50));
        drop(inner);
        thread::sleep(std::time::Duration::from_millis(50));
        // Still held once by this thread: the other one waits.
        assert_eq!(entered.load(Ordering::SeqCst), 0);
        drop(outer);
        other.join().unwrap();
        assert_eq!(entered.load(Ordering::SeqCst), 1);
    }
}
