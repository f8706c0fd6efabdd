//! [`SlotCache`]: result slots kept for reuse, so a request in steady
//! state allocates no slot.
//!
//! A handle gives its slot back when it drops (its result is published by
//! then). The slot may still be held by the runtime for a moment (the
//! worker that resolved it drops its copy after the caller wakes); the
//! [`Recycler`] reuses it only once nobody else holds it, and resets it
//! through `&mut`, which no stale handle can share.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::counters::Ledger;
use super::handle::Slot;
use super::recycler::Recycler;
use super::request::Facts;
use super::trace;

/// A shared result slot.
type Shared<O> = Arc<Slot<O>>;

/// A pool's cache of result slots.
pub(crate) struct SlotCache<O> {
    free: Recycler<Slot<O>>,
    ledger: Arc<Ledger>,
}

impl<O> SlotCache<O> {
    /// A cache of up to `kept` slots (past it, given-back slots are
    /// freed), whose slots count their outcomes in `ledger`.
    pub(crate) fn new(ledger: Arc<Ledger>, kept: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Recycler::new(kept),
            ledger,
        })
    }

    /// A slot for a new request `id` whose waiter spins `wait_spin`, with
    /// its `facts`: a cached one nobody else holds, or a new one.
    #[inline]
    pub(crate) fn take(
        self: &Arc<Self>,
        id: u64,
        span: trace::RequestSpan,
        wait_spin: Duration,
        facts: Facts,
    ) -> Shared<O> {
        if let Some(mut slot) = self.free.reuse() {
            if let Some(s) = Arc::get_mut(&mut slot) {
                s.reset(id, span, wait_spin, facts);
                return slot;
            }
        }
        Arc::new(Slot::recycled_into(
            id,
            Arc::clone(&self.ledger),
            span,
            Arc::downgrade(self),
            wait_spin,
            facts,
        ))
    }

    /// Keeps `slot` for reuse (or frees it, when the cache is full).
    #[inline]
    pub(crate) fn give_back(&self, slot: Shared<O>) {
        self.free.give_back(slot);
    }
}
