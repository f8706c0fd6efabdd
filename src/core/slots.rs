//! [`SlotCache`]: result slots kept for reuse, so a request in steady
//! state allocates no slot.
//!
//! A handle gives its slot back when it drops (the request is final by
//! then). The slot may still be held by the runtime for a moment (the
//! worker that resolved it drops its copy after the caller wakes), so a
//! cached slot is reused only when [`Arc::get_mut`] proves that nobody
//! else holds it; otherwise it goes back to the end of the cache and a new
//! slot is made. No generation counter is needed: a slot is reset only
//! through `&mut`, which no stale handle can share.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::counters::Ledger;
use super::handle::Slot;
use super::request::Facts;
use super::trace;

/// How many slots a pool keeps. A closed-loop caller needs two (the slot
/// its worker may still hold and the one before); each concurrent caller a
/// few more. Past this, given-back slots are freed.
pub(crate) const SLOT_CACHE: usize = 256;

/// A shared result slot.
type Shared<O> = Arc<Slot<O>>;

/// A pool's cache of result slots.
pub(crate) struct SlotCache<O> {
    /// A bounded first-in, first-out queue: the oldest slot given back is
    /// the likeliest to be held by no one.
    free: (Sender<Shared<O>>, Receiver<Shared<O>>),
    ledger: Arc<Ledger>,
}

impl<O> SlotCache<O> {
    /// A cache whose slots count their outcomes in `ledger`.
    pub(crate) fn new(ledger: Arc<Ledger>) -> Arc<Self> {
        Arc::new(Self {
            free: bounded(SLOT_CACHE),
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
        if let Ok(mut slot) = self.free.1.try_recv() {
            if let Some(s) = Arc::get_mut(&mut slot) {
                s.reset(id, span, wait_spin, facts);
                return slot;
            }
            // Still held (its worker has not dropped its copy yet): it
            // waits at the back for a later request.
            self.give_back(slot);
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
        let _ = self.free.0.try_send(slot);
    }
}
