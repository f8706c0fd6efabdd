//! The admission gate: how shutdown (or a reload) closes a generation so
//! that no request slips into a queue unseen.
//!
//! # The protocol
//!
//! A submitter raises `entering`, then reads `closed`, and lowers
//! `entering` once its request is queued and counted in the ledger, or
//! refused. Shutdown sets `closed`, then waits for `entering` to reach
//! zero. A `SeqCst` fence sits between the write and the read on each side
//! (store-buffering, as in Dekker's algorithm), so at least one side sees
//! the other: either the submitter sees `closed` and refuses, or shutdown
//! sees it entering and waits for it to leave. The leave is a release that
//! shutdown's read acquires, so after the wait every accepted request is in
//! the ledger before shutdown starts counting what is in flight.
//!
//! Closing also drops the closing sender, which wakes every submitter
//! blocked on a full queue (it selects on the closing receiver too).
//!
//! A loom model (`src/loom_models.rs`) checks this protocol.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;

use crossbeam_channel::{bounded, Receiver, Sender};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::core::sync::{fence, AtomicBool, AtomicUsize, SpinWait};

/// One generation's admission gate.
#[derive(Debug)]
pub(crate) struct Gate {
    closed: AtomicBool,
    entering: CachePadded<AtomicUsize>,
    /// Dropped on close: blocked submitters wake on its receiver.
    closing_tx: Mutex<Option<Sender<()>>>,
    closing_rx: Receiver<()>,
}

/// A submitter inside admission; leaving drops it.
#[must_use]
pub(crate) struct Inside<'a>(&'a Gate);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        // Release: what the submitter did inside happens before a shutdown
        // that sees it gone.
        self.0.entering.fetch_sub(1, Ordering::Release);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub(crate) fn new() -> Self {
        let (tx, rx) = bounded(0);
        Self {
            closed: AtomicBool::new(false),
            entering: CachePadded::new(AtomicUsize::new(0)),
            closing_tx: Mutex::new(Some(tx)),
            closing_rx: rx,
        }
    }

    /// Enters admission; `None` if the gate is closed.
    #[inline]
    pub(crate) fn enter(&self) -> Option<Inside<'_>> {
        self.entering.fetch_add(1, Ordering::Relaxed);
        let inside = Inside(self);
        // SeqCst: orders raising `entering` before reading `closed`
        // (store-buffering with `close`).
        fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        Some(inside)
    }

    /// Closes the gate and wakes submitters blocked on full queues; returns
    /// once no submitter is inside. True if this call closed it.
    pub(crate) fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::Relaxed);
        // SeqCst: orders setting `closed` before reading `entering`
        // (store-buffering with `enter`).
        fence(Ordering::SeqCst);
        drop(self.closing_tx.lock().take());
        let spin = SpinWait::default();
        while self.entering.load(Ordering::Acquire) != 0 {
            spin.snooze();
        }
        first
    }

    /// True once closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Disconnects when the gate closes: a blocked submitter selects on it.
    pub(crate) fn closing(&self) -> &Receiver<()> {
        &self.closing_rx
    }
}
