//! [`Recycler`]: shared values kept for reuse, handed out again only when
//! nobody else holds them. The mechanism under the pool's result slots
//! (`SlotCache`) and input boxes (`InputCache`).
//!
//! Values wait in a bounded first-in, first-out queue: the oldest one given
//! back is the likeliest to be held by no one. One is reused only when
//! [`Arc::get_mut`] proves it has no other holder, so whoever reuses it
//! changes it through `&mut`, which no stale holder can share: no
//! generation counter is needed.

#![forbid(unsafe_code)]

use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};

/// The fewest values a pool's caches keep: enough for closed-loop callers
/// (two each) and a few hundred requests in flight.
const MIN_KEPT: usize = 256;

/// The most values a pool's caches keep, whatever its queues hold: a
/// bound on the memory a burst leaves cached (a few MiB of result slots).
const MAX_KEPT: usize = 1 << 16;

/// How many values each of a pool's caches keeps, for a pool that can hold
/// `queued` requests (its groups' queues, every level, and their workers):
/// as many as it may have outstanding, so a caller that submits a full
/// queue before waiting reuses every slot and box instead of allocating
/// most of them (and freeing them on another core), within
/// [`MIN_KEPT`]..=[`MAX_KEPT`]. The cache fills only as far as a burst
/// went: a lightly loaded pool keeps few.
pub(crate) fn kept_for(queued: usize) -> usize {
    queued.clamp(MIN_KEPT, MAX_KEPT)
}

/// A bounded cache of shared values for reuse.
pub(crate) struct Recycler<T> {
    free: (Sender<Arc<T>>, Receiver<Arc<T>>),
}

impl<T> Recycler<T> {
    /// A cache of at most `capacity` values; past it, given-back values
    /// are freed.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            free: bounded(capacity),
        }
    }

    /// The oldest cached value, if nobody else holds it (then the caller
    /// may change it through [`Arc::get_mut`]). One still held goes back to
    /// the end of the queue for a later look.
    #[inline]
    pub(crate) fn reuse(&self) -> Option<Arc<T>> {
        let mut value = self.free.1.try_recv().ok()?;
        if Arc::get_mut(&mut value).is_some() {
            return Some(value);
        }
        self.give_back(value);
        None
    }

    /// Keeps `value` for reuse (or frees it, when the cache is full).
    #[inline]
    pub(crate) fn give_back(&self, value: Arc<T>) {
        let _ = self.free.0.try_send(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_keeps_as_many_as_it_can_hold_within_bounds() {
        assert_eq!(kept_for(0), MIN_KEPT);
        assert_eq!(kept_for(4 * 4096 + 2), 4 * 4096 + 2);
        assert_eq!(kept_for(usize::MAX), MAX_KEPT);
    }

    #[test]
    fn a_value_is_reused_only_once_nobody_else_holds_it() {
        let r = Recycler::new(2);
        let a = Arc::new(1u8);
        let held = Arc::clone(&a);
        r.give_back(a);
        // Held elsewhere: not handed out, and kept for a later look.
        assert!(r.reuse().is_none());
        drop(held);
        let mut a = r.reuse().expect("no other holder now");
        assert!(Arc::get_mut(&mut a).is_some());
        // Past the capacity, values are freed.
        for v in 0..3u8 {
            r.give_back(Arc::new(v));
        }
        assert_eq!(*r.reuse().unwrap(), 0);
        assert_eq!(*r.reuse().unwrap(), 1);
        assert!(r.reuse().is_none());
    }
}
