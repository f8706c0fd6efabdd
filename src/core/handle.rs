//! [`TaskHandle`]: the caller's side of one request, and the result slot
//! both sides share.
//!
//! # The exactly-once protocol
//!
//! A request's [`Status`] lives in one atomic byte. It moves
//! `Queued -> Running -> (Queued -> Running)* -> terminal` and every move into
//! a terminal state (`Completed`, `Failed`, `Cancelled`, `Expired`) is a
//! compare-and-swap from a non-terminal state. Whoever wins that CAS, and
//! only they, stores the result, wakes the waiters and counts the outcome in
//! the pool's ledger. Everyone else (a cancel racing a completion, a worker
//! popping a request that was cancelled while queued, a late result of a
//! replaced worker) loses the CAS and does nothing visible, except counting
//! a discarded late result. So each accepted request is resolved and counted
//! exactly once, whatever the interleaving.
//!
//! A worker takes a request with a CAS `Queued -> Running`; a cancel takes it
//! with a CAS `Queued -> Cancelled`. Exactly one of them wins, so a cancelled
//! queued request never runs. A cancel that finds `Running` only raises the
//! request's cancel flag, which the session can read through
//! [`RunContext::is_cancelled`](crate::RunContext::is_cancelled).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_utils::CachePadded;
use serde::Serialize;

use super::clock::saturating_add;
use super::counters::Ledger;
use super::request::Facts;
use super::session::SessionError;
use super::slots::SlotCache;
use super::sync::{AtomicBool as ModelledBool, AtomicU8, Condvar, Mutex};
use super::trace;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting in a queue (or waiting for a retry).
    Queued,
    /// A session is running it.
    Running,
    /// Finished with a result.
    Completed,
    /// Every attempt failed; the request is in the dead-letter queue.
    Failed,
    /// Cancelled by the caller or by shutdown.
    Cancelled,
    /// Its deadline passed before a worker took it.
    Expired,
}

impl Status {
    const fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Queued,
            1 => Status::Running,
            2 => Status::Completed,
            3 => Status::Failed,
            4 => Status::Cancelled,
            _ => Status::Expired,
        }
    }

    /// True for the four final states.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }
}

/// One failed attempt at a request.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptError {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The device group that ran it.
    pub group: Arc<str>,
    /// The worker (index within its group) that ran it.
    pub worker: usize,
    /// What went wrong.
    pub error: SessionError,
    /// Requests in the call it ran in (1 unbatched, 0 when it failed
    /// outside any call: routing, a reload).
    pub batch: usize,
    /// When the attempt failed.
    pub at: SystemTime,
}

/// Why a request was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// [`TaskHandle::cancel`] was called.
    Caller,
    /// The pool shut down before the request could run.
    Shutdown,
}

/// Why a request produced no output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// Every attempt failed; the request and its input are in the dead-letter queue.
    #[error("request failed after {} attempt(s), last error: {}", attempts.len(), attempts.last().map(|a| a.error.to_string()).unwrap_or_default())]
    DeadLettered {
        /// Each attempt's error, in order.
        attempts: Vec<AttemptError>,
    },
    /// The request was cancelled.
    #[error("request cancelled ({reason:?})")]
    Cancelled {
        /// Who cancelled it.
        reason: CancelReason,
    },
    /// The request's deadline passed before a worker took it.
    #[error("request expired: its deadline passed before a worker took it")]
    Expired,
    /// The result was already taken by an earlier call on this handle.
    #[error("the result was already taken from this handle")]
    AlreadyTaken,
}

/// A final outcome, as handed to [`Slot::resolve`].
pub(crate) enum Outcome<O> {
    Completed(O),
    DeadLettered(Vec<AttemptError>),
    Cancelled(CancelReason),
    Expired,
}

enum Cell<O> {
    Empty,
    Ready(Result<O, TaskError>),
    Taken,
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;

/// The state and result shared by a request's handle and the runtime.
pub(crate) struct Slot<O> {
    id: u64,
    state: AtomicU8,
    /// A plain flag the session reads, outside the modelled protocol.
    cancel: AtomicBool,
    /// The result. In a cache line of its own too: the worker stores the
    /// result here without touching the line of the reference count and
    /// the state, which the caller's handle reads and writes.
    cell: CachePadded<Mutex<Cell<O>>>,
    /// Raised once the result is in `cell`: what a waiter spins on. (The
    /// state turns final before the result is stored, so a waiter that
    /// spun on the state alone would often find the cell still empty and
    /// park for nothing.) In a cache line of its own: a spinning waiter
    /// reads only this line, so the worker's other writes to the slot (its
    /// reference count, the state, the cell) do not pull the waiter's line
    /// away, and the worker writes this line once.
    published: CachePadded<ModelledBool>,
    ready: Condvar,
    ledger: Arc<Ledger>,
    /// The request's span (nothing without the `request-spans` feature).
    span: trace::RequestSpan,
    /// Where the handle gives the slot back for reuse (none: not reused).
    home: Weak<SlotCache<O>>,
    /// How long a waiter spins before it parks (the pool's `wait_spin`).
    wait_spin: Duration,
    /// What never changes about the request (set while nobody else holds
    /// the slot, read by every holder).
    facts: Facts,
}

impl<O> Slot<O> {
    /// A slot that is never reused (the loom models').
    #[cfg(all(loom, test))]
    pub(crate) fn new(id: u64, ledger: Arc<Ledger>, span: trace::RequestSpan) -> Self {
        Self::recycled_into(id, ledger, span, Weak::new(), Duration::ZERO, Facts::now())
    }

    /// A slot that its handle gives back to `home` when it drops.
    pub(crate) fn recycled_into(
        id: u64,
        ledger: Arc<Ledger>,
        span: trace::RequestSpan,
        home: Weak<SlotCache<O>>,
        wait_spin: Duration,
        facts: Facts,
    ) -> Self {
        Self {
            id,
            state: AtomicU8::new(QUEUED),
            cancel: AtomicBool::new(false),
            cell: CachePadded::new(Mutex::new(Cell::Empty)),
            published: CachePadded::new(ModelledBool::new(false)),
            ready: Condvar::new(),
            ledger,
            span,
            home,
            wait_spin,
            facts,
        }
    }

    /// Makes a slot nobody else holds (`&mut`) new again, for request `id`.
    pub(crate) fn reset(
        &mut self,
        id: u64,
        span: trace::RequestSpan,
        wait_spin: Duration,
        facts: Facts,
    ) {
        self.id = id;
        self.wait_spin = wait_spin;
        self.facts = facts;
        self.span = span;
        self.state.store(QUEUED, Ordering::Relaxed);
        self.cancel.store(false, Ordering::Relaxed);
        self.published.store(false, Ordering::Relaxed);
        *self.cell.get_mut() = Cell::Empty;
    }

    /// What never changes about the request.
    #[inline]
    pub(crate) fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The request's span.
    pub(crate) fn span(&self) -> &trace::RequestSpan {
        &self.span
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }

    pub(crate) fn is_cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// A worker takes the request: `Queued -> Running`. False if it was
    /// resolved meanwhile (cancelled while queued): the worker drops it.
    pub(crate) fn start(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A failed attempt goes back for a retry: `Running -> Queued`. False if
    /// it was resolved meanwhile (a stuck call's late failure).
    pub(crate) fn requeue(&self) -> bool {
        self.state
            .compare_exchange(RUNNING, QUEUED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Resolves the request once, from whatever non-terminal state it is
    /// in. True if this call won (and so stored the result, woke the waiters
    /// and counted the outcome).
    pub(crate) fn resolve(&self, outcome: Outcome<O>) -> bool {
        self.resolve_if(|_| true, outcome, || ())
    }

    /// Like [`Slot::resolve`], running `on_claim` after the state is claimed
    /// and before waiters see the result (only if this call won).
    pub(crate) fn resolve_then(&self, outcome: Outcome<O>, on_claim: impl FnOnce()) -> bool {
        self.resolve_if(|_| true, outcome, on_claim)
    }

    /// Resolves only if the state before is `Queued`: how a cancel or an
    /// expiry takes a request that no worker has started.
    pub(crate) fn resolve_queued(&self, outcome: Outcome<O>) -> bool {
        self.resolve_if(|s| s == QUEUED, outcome, || ())
    }

    fn resolve_if(
        &self,
        from: impl Fn(u8) -> bool,
        outcome: Outcome<O>,
        on_claim: impl FnOnce(),
    ) -> bool {
        let (state, result) = match outcome {
            Outcome::Completed(o) => (Status::Completed, Ok(o)),
            Outcome::DeadLettered(attempts) => {
                (Status::Failed, Err(TaskError::DeadLettered { attempts }))
            }
            Outcome::Cancelled(reason) => (Status::Cancelled, Err(TaskError::Cancelled { reason })),
            Outcome::Expired => (Status::Expired, Err(TaskError::Expired)),
        };
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if Status::from_u8(cur).is_terminal() || !from(cur) {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                state as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        on_claim();
        trace::outcome(&self.span, state);
        // Counted before the caller can see the result, so a caller that
        // has its result also sees it in the pool's counters.
        self.ledger.record_outcome(state);
        *self.cell.lock() = Cell::Ready(result);
        self.published.store(true, Ordering::Release);
        self.ready.notify_all();
        true
    }

    fn take(cell: &mut Cell<O>) -> Option<Result<O, TaskError>> {
        match std::mem::replace(cell, Cell::Taken) {
            Cell::Empty => {
                *cell = Cell::Empty;
                None
            }
            Cell::Ready(r) => Some(r),
            Cell::Taken => Some(Err(TaskError::AlreadyTaken)),
        }
    }
}

// The discriminants of `Status` are the stored state bytes.
const _: () = {
    assert!(Status::Queued as u8 == QUEUED);
    assert!(Status::Running as u8 == RUNNING);
    assert!(Status::Completed as u8 == 2);
    assert!(Status::Expired as u8 == 5);
};

// A handle dropping gives its slot back for reuse once the result is
// published: its result (taken or not) is dropped here, so a cached slot holds
// no output. The slot is reused only when no one else holds it any more
// (`SlotCache::take`), so no handle can ever see another request's result.
impl<O> Drop for TaskHandle<O> {
    fn drop(&mut self) {
        // With request spans, slots are not reused: a request's span must
        // close when its last holder lets go, not when its slot is next
        // reused (and a span allocates per request anyway).
        // Published implies final; it is the line a waiter already holds.
        if cfg!(feature = "request-spans") || !self.slot.published.load(Ordering::Acquire) {
            return;
        }
        let Some(home) = self.slot.home.upgrade() else {
            return;
        };
        // Final: the output goes now, not when the slot is reused. (A
        // result the resolver is still storing lands after this; the slot
        // is not reused before the resolver lets go of it, and the reuse
        // drops it.)
        *self.slot.cell.lock() = Cell::Taken;
        home.give_back(Arc::clone(&self.slot));
    }
}

/// The caller's handle on one accepted request.
///
/// Every accepted request resolves exactly once: completed, failed into the
/// dead-letter queue, cancelled, or expired. Dropping the handle does not
/// cancel the request.
///
/// ```
/// use accelpool::{Pool, GroupConfig, Request, SessionError, WorkerInfo};
/// let pool = Pool::<u32, u32>::builder()
///     .group(GroupConfig::new("cpu").workers(1).pin(false),
///            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(x + 1) }))
///     .build()
///     .unwrap();
/// let handle = pool.submit(Request::new(41)).unwrap();
/// assert_eq!(handle.wait().unwrap(), 42);
/// ```
pub struct TaskHandle<O> {
    slot: Arc<Slot<O>>,
}

impl<O> std::fmt::Debug for TaskHandle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.slot.id)
            .field("status", &self.status())
            .finish()
    }
}

impl<O> TaskHandle<O> {
    pub(crate) fn new(slot: Arc<Slot<O>>) -> Self {
        Self { slot }
    }

    /// The request's id, unique within its pool.
    pub fn id(&self) -> u64 {
        self.slot.id
    }

    /// Where the request is now.
    pub fn status(&self) -> Status {
        self.slot.status()
    }

    /// True once the request reached its final state.
    pub fn is_finished(&self) -> bool {
        self.status().is_terminal()
    }

    /// Cancels the request. A queued request will never run and resolves as
    /// cancelled at once (returns true). A running request is only flagged for
    /// its session, which may stop early; returns false, as it does for a
    /// request that already finished.
    pub fn cancel(&self) -> bool {
        self.slot.cancel.store(true, Ordering::Release);
        self.slot
            .resolve_queued(Outcome::Cancelled(CancelReason::Caller))
    }

    /// Spins up to the pool's `wait_spin` while the result is not yet
    /// published, so a result that is about to arrive is taken without
    /// parking. The clock is read only once the first rounds found nothing.
    /// It never spins past `deadline`. It does not yield: a waiter that
    /// yields on a busy machine may not run again for milliseconds, while
    /// one that parks is woken with the scheduler's wake-up preference (an
    /// Urgent request's end-to-end p50 went from 250 µs to 3.4 ms with a
    /// yield every 128 rounds, in `benches/priority_isolation.rs`).
    #[inline]
    fn spin_until_published(&self, deadline: Option<Instant>) {
        // A model checker explores waits, not spins.
        if cfg!(loom) {
            return;
        }
        let mut until = None;
        let mut i: u32 = 0;
        while !self.slot.published.load(Ordering::Acquire) {
            i = i.wrapping_add(1);
            if i.is_multiple_of(16) {
                let now = Instant::now();
                let until = *until.get_or_insert_with(|| {
                    let end = saturating_add(now, self.slot.wait_spin);
                    deadline.map_or(end, |d| end.min(d))
                });
                if now >= until {
                    return;
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Takes the result if the request finished, without blocking.
    pub fn try_get(&mut self) -> Option<Result<O, TaskError>> {
        Slot::take(&mut self.slot.cell.lock())
    }

    /// Blocks until the request finishes and returns its result.
    ///
    /// It spins briefly (as a channel receive does) before it parks, so a
    /// result that arrives within microseconds is taken without a kernel
    /// round trip.
    pub fn wait(self) -> Result<O, TaskError> {
        self.spin_until_published(None);
        let mut cell = self.slot.cell.lock();
        if let Some(r) = Slot::take(&mut cell) {
            return r;
        }
        self.slot.ledger.wait_parked();
        loop {
            self.slot.ready.wait(&mut cell);
            if let Some(r) = Slot::take(&mut cell) {
                return r;
            }
        }
    }

    /// Blocks up to `timeout`; `None` if the request has not finished by
    /// then. A timeout too large to be a point in time (such as
    /// `Duration::MAX`) waits until the request finishes.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<O, TaskError>> {
        self.wait_deadline(saturating_add(Instant::now(), timeout))
    }

    /// Blocks until `deadline`; `None` if the request has not finished by then.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<Result<O, TaskError>> {
        self.spin_until_published(Some(deadline));
        let mut cell = self.slot.cell.lock();
        if let Some(r) = Slot::take(&mut cell) {
            return Some(r);
        }
        if Instant::now() >= deadline {
            return None;
        }
        self.slot.ledger.wait_parked();
        loop {
            if self.slot.ready.wait_until(&mut cell, deadline) {
                return Slot::take(&mut cell);
            }
            if let Some(r) = Slot::take(&mut cell) {
                return Some(r);
            }
        }
    }
}
