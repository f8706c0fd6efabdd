//! [`SharedInput`]: a request's input as the runtime holds it, and
//! [`InputCache`], the boxes kept for reuse so a request in steady state
//! allocates none for its input.
//!
//! The input is shared, not moved, from queue to worker: a stuck call's
//! request can fail over to another worker while the stuck one still reads
//! its input. Sharing needs a box on the heap; the box is what is reused.
//! A worker that finishes a request empties its box (the input is dropped
//! there, as before) and gives the empty box back; the next submit fills
//! it. A box is emptied or filled only through [`Arc::get_mut`] (the
//! cache is a [`Recycler`]), so only when nobody else holds it: no reader
//! can ever see another request's input.

#![forbid(unsafe_code)]

use std::sync::Arc;

use super::recycler::Recycler;

/// A request's input, shared by whoever holds the request (its queue, its
/// worker, a worker that took it over, the dead-letter queue).
///
/// It dereferences to the input. [`SharedInput::into_inner`] gives the
/// input back when nobody else holds it.
///
/// ```
/// // A dead letter's input is a `SharedInput`: read it in place...
/// # fn show(letter: accelpool::DeadLetter<Vec<f32>>) {
/// let len = letter.input.len();
/// // ...or take it back whole when no stuck call still reads it.
/// let input: Vec<f32> = letter.input.into_inner().unwrap_or_else(|shared| (*shared).clone());
/// # let _ = (len, input);
/// # }
/// ```
pub struct SharedInput<I>(Boxed<I>);

/// The box an input is shared in: empty only while cached.
type Boxed<I> = Arc<Option<I>>;

impl<I> SharedInput<I> {
    /// Shares `value` in a new box (a pool takes its boxes from its
    /// cache; this is for building a [`DeadLetter`](crate::DeadLetter) by
    /// hand, say in a test).
    ///
    /// ```
    /// use accelpool::SharedInput;
    /// let input = SharedInput::new(vec![1, 2]);
    /// assert_eq!(input.len(), 2);
    /// assert_eq!(input.into_inner().unwrap(), vec![1, 2]);
    /// ```
    pub fn new(value: I) -> Self {
        Self(Arc::new(Some(value)))
    }

    /// The input itself if this is its only holder; otherwise `self` back
    /// (a call that was taken over as stuck may still be reading it).
    pub fn into_inner(mut self) -> Result<I, Self> {
        match Arc::get_mut(&mut self.0).and_then(Option::take) {
            Some(value) => Ok(value),
            None => Err(self),
        }
    }
}

impl<I> std::ops::Deref for SharedInput<I> {
    type Target = I;

    #[inline]
    fn deref(&self) -> &I {
        match &*self.0 {
            Some(value) => value,
            // A box is emptied only by its sole holder, consuming that
            // holder (`into_inner`, `InputCache::recycle`): no live
            // `SharedInput` ever points at an empty one.
            None => unreachable!("a SharedInput is never empty"),
        }
    }
}

impl<I> Clone for SharedInput<I> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<I: std::fmt::Debug> std::fmt::Debug for SharedInput<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// A pool's empty input boxes, for reuse.
pub(crate) struct InputCache<I> {
    /// Empty boxes.
    free: Recycler<Option<I>>,
}

impl<I> InputCache<I> {
    /// A cache of up to `kept` empty boxes (past it, boxes are freed).
    pub(crate) fn new(kept: usize) -> Self {
        Self {
            free: Recycler::new(kept),
        }
    }

    /// Shares `value` in a cached box, or a new one when none is free.
    #[inline]
    pub(crate) fn wrap(&self, value: I) -> SharedInput<I> {
        if let Some(mut free) = self.free.reuse() {
            if let Some(slot) = Arc::get_mut(&mut free) {
                *slot = Some(value);
                return SharedInput(free);
            }
        }
        SharedInput::new(value)
    }

    /// Drops the input of a finished request and keeps its box, if the
    /// caller held the only reference (otherwise whoever else holds it
    /// drops it later, and the box is freed then).
    #[inline]
    pub(crate) fn recycle(&self, input: SharedInput<I>) {
        let mut shared = input.0;
        if let Some(slot) = Arc::get_mut(&mut shared) {
            *slot = None;
            self.free.give_back(shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_is_reused_only_once_nobody_else_holds_it() {
        let cache = InputCache::new(256);
        let a = cache.wrap(vec![1u8]);
        let a_box = Arc::as_ptr(&a.0);
        let other = a.clone();
        // Still held elsewhere: not kept, and the other holder reads on.
        cache.recycle(a);
        assert_eq!(*other, vec![1]);
        let b = cache.wrap(vec![2u8]);
        assert_ne!(Arc::as_ptr(&b.0), a_box);
        // The sole holder gives it back: the next request gets that box.
        let b_box = Arc::as_ptr(&b.0);
        cache.recycle(b);
        let c = cache.wrap(vec![3u8]);
        assert_eq!(Arc::as_ptr(&c.0), b_box);
        assert_eq!(*c, vec![3]);
        assert_eq!(c.into_inner().unwrap(), vec![3]);
    }

    #[test]
    fn into_inner_hands_back_a_shared_input_unchanged() {
        let a = SharedInput::new(String::from("x"));
        let b = a.clone();
        let a = a.into_inner().unwrap_err();
        drop(b);
        assert_eq!(a.into_inner().unwrap(), "x");
    }
}
