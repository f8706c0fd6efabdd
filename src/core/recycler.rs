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
