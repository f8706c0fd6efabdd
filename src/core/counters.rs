//! Counters and the pool's ledger.
//!
//! Counters are plain relaxed atomics, each in its own cache line, written by
//! the thread that sees the event (a submitter, a worker, a cancelling
//! caller). The ledger holds the pool-wide admissions and outcomes, the one
//! place the accounting identity is kept, and wakes a shutdown waiting for
//! the pool to go idle.

#![forbid(unsafe_code)]

use std::ops::AddAssign;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_utils::CachePadded;
use serde::Serialize;

use super::handle::Status;
use super::refusal::Refusal;
use super::snapshot::RefusalCounts;
use super::sync::{fence, AtomicBool, AtomicU64, Condvar, Mutex};

/// One event counter.
#[derive(Debug)]
pub(crate) struct Counter(CachePadded<AtomicU64>);

impl Default for Counter {
    fn default() -> Self {
        Self(CachePadded::new(AtomicU64::new(0)))
    }
}

impl Counter {
    #[inline]
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a [`Counts`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Accepted,
    Rejected,
    Started,
    Completed,
    FailedAttempt,
    Retried,
    DeadLettered,
    Cancelled,
    Expired,
}

impl Event {
    const COUNT: usize = 9;

    /// The event that counts a final status (none for the two live ones).
    fn of_outcome(status: Status) -> Option<Event> {
        match status {
            Status::Completed => Some(Event::Completed),
            Status::Failed => Some(Event::DeadLettered),
            Status::Cancelled => Some(Event::Cancelled),
            Status::Expired => Some(Event::Expired),
            Status::Queued | Status::Running => None,
        }
    }
}

/// The counters kept at each level (pool, group, worker), one per [`Event`].
#[derive(Debug, Default)]
pub(crate) struct Counts([Counter; Event::COUNT]);

impl Counts {
    /// Counts one event.
    #[inline]
    pub(crate) fn inc(&self, event: Event) {
        self.0[event as usize].inc();
    }

    pub(crate) fn snapshot(&self) -> CountsSnapshot {
        let get = |e: Event| self.0[e as usize].get();
        CountsSnapshot {
            accepted: get(Event::Accepted),
            rejected: get(Event::Rejected),
            started: get(Event::Started),
            completed: get(Event::Completed),
            failed_attempts: get(Event::FailedAttempt),
            retried: get(Event::Retried),
            dead_lettered: get(Event::DeadLettered),
            cancelled: get(Event::Cancelled),
            expired: get(Event::Expired),
        }
    }

    /// Counts a final outcome.
    pub(crate) fn outcome(&self, status: Status) {
        if let Some(e) = Event::of_outcome(status) {
            self.inc(e);
        }
    }
}

/// Event counts at one level. At pool level, after shutdown,
/// `accepted == completed + dead_lettered + cancelled + expired`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CountsSnapshot {
    /// Requests taken into a queue (at group level: routed to this group, retries included).
    pub accepted: u64,
    /// Submissions refused (queue full, timed out, pool closed) and handed back.
    pub rejected: u64,
    /// Attempts a worker started.
    pub started: u64,
    /// Requests that finished with a result.
    pub completed: u64,
    /// Attempts that failed (error or panic).
    pub failed_attempts: u64,
    /// Failed attempts scheduled to run again.
    pub retried: u64,
    /// Requests that exhausted their attempts and went to the dead-letter queue.
    pub dead_lettered: u64,
    /// Requests cancelled by their caller or by shutdown.
    pub cancelled: u64,
    /// Requests whose deadline passed before a worker took them.
    pub expired: u64,
}

impl CountsSnapshot {
    /// Requests that reached a final outcome.
    pub fn resolved(&self) -> u64 {
        self.completed + self.dead_lettered + self.cancelled + self.expired
    }

    /// Only the counters of attempts (`started`, `failed_attempts`,
    /// `retried`), the rest zero: the part workers count and the pool's
    /// ledger does not.
    pub fn attempts(&self) -> Self {
        Self {
            started: self.started,
            failed_attempts: self.failed_attempts,
            retried: self.retried,
            ..Self::default()
        }
    }
}

/// Adds every counter of `rhs`: how a group sums its workers, a pool its
/// groups' attempts, a test its rounds.
///
/// ```
/// use accelpool::CountsSnapshot;
/// let mut all = CountsSnapshot { accepted: 2, completed: 1, ..Default::default() };
/// all += CountsSnapshot { completed: 1, expired: 1, ..Default::default() };
/// assert_eq!((all.accepted, all.resolved()), (2, 3));
/// ```
impl AddAssign for CountsSnapshot {
    fn add_assign(&mut self, rhs: Self) {
        let Self {
            accepted,
            rejected,
            started,
            completed,
            failed_attempts,
            retried,
            dead_lettered,
            cancelled,
            expired,
        } = rhs;
        self.accepted += accepted;
        self.rejected += rejected;
        self.started += started;
        self.completed += completed;
        self.failed_attempts += failed_attempts;
        self.retried += retried;
        self.dead_lettered += dead_lettered;
        self.cancelled += cancelled;
        self.expired += expired;
    }
}

/// The pool's own ledger of admissions and outcomes: the one place the
/// accounting identity is kept. It also wakes a shutdown waiting for the
/// pool to go idle.
#[derive(Debug)]
pub(crate) struct Ledger {
    counts: Counts,
    late_results: Counter,
    /// Callers that parked in a wait (their result was not there within
    /// the spin).
    waits_parked: Counter,
    /// Refusals by kind, in `RefusalCounts` order.
    refusals: [Counter; 8],
    watching: AtomicBool,
    idle: Mutex<()>,
    idle_cv: Condvar,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            counts: Counts::default(),
            late_results: Counter::default(),
            waits_parked: Counter::default(),
            refusals: Default::default(),
            watching: AtomicBool::new(false),
            idle: Mutex::new(()),
            idle_cv: Condvar::new(),
        }
    }
}

impl Ledger {
    /// A request was queued.
    #[inline]
    pub(crate) fn accepted(&self) {
        self.counts.inc(Event::Accepted);
    }

    /// A submission was handed back, for `refusal`.
    pub(crate) fn rejected(&self, refusal: &Refusal) {
        self.counts.inc(Event::Rejected);
        let i = match refusal {
            Refusal::Full { .. } => 0,
            Refusal::Timeout { .. } => 1,
            Refusal::Closed => 2,
            // A runtime refuses an unknown model before any pool sees it
            // (and counts it itself); were one to reach a pool, it is the
            // unknown name it is.
            Refusal::UnknownGroup { .. } | Refusal::UnknownModel { .. } => 3,
            Refusal::MemoryPressure { .. } => 4,
            Refusal::Unavailable => 5,
            Refusal::Invalid { .. } => 6,
            Refusal::DeadlineUnmeetable { .. } => 7,
        };
        self.refusals[i].inc();
    }

    /// Submissions handed back, by kind.
    pub(crate) fn refusals(&self) -> RefusalCounts {
        let r = |i: usize| self.refusals[i].get();
        RefusalCounts {
            full: r(0),
            timeout: r(1),
            closed: r(2),
            unknown_group: r(3),
            memory_pressure: r(4),
            unavailable: r(5),
            invalid: r(6),
            deadline_unmeetable: r(7),
        }
    }

    /// A result arrived for a request already resolved; it was discarded.
    pub(crate) fn late_result(&self) {
        self.late_results.inc();
    }

    /// Results discarded so far.
    pub(crate) fn late_results(&self) -> u64 {
        self.late_results.get()
    }

    /// A caller parked waiting for a result.
    pub(crate) fn wait_parked(&self) {
        self.waits_parked.inc();
    }

    /// Waits that parked so far.
    pub(crate) fn waits_parked(&self) -> u64 {
        self.waits_parked.get()
    }

    /// The pool-wide admissions and outcomes.
    pub(crate) fn snapshot(&self) -> CountsSnapshot {
        self.counts.snapshot()
    }

    pub(crate) fn record_outcome(&self, status: Status) {
        self.counts.outcome(status);
        // Store-buffering with `wait_idle`: this side writes a counter then
        // reads `watching`, that side writes `watching` then reads the
        // counters. A SeqCst fence on each side (as rayon's sleep module
        // does) guarantees at least one side sees the other's write, so a
        // waiter is either notified here or sees the count itself.
        fence(Ordering::SeqCst);
        if self.watching.load(Ordering::Relaxed) {
            // Under the lock, so a waiter between its check and its wait
            // cannot miss this notification.
            let _guard = self.idle.lock();
            self.idle_cv.notify_all();
        }
    }

    /// Accepted requests not yet resolved.
    pub(crate) fn in_flight(&self) -> u64 {
        // An admission is counted just after its request is queued, so a
        // worker may resolve it (and count the outcome) first: a snapshot can
        // briefly read more outcomes than admissions, hence the saturating
        // subtraction. Shutdown reads this only after every submitter has
        // left admission (see `crate::exec::admission`), when `accepted`
        // is final.
        let c = self.counts.snapshot();
        c.accepted.saturating_sub(c.resolved())
    }

    /// Blocks until nothing is in flight or `deadline` passes; true if idle.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        self.watching.store(true, Ordering::Relaxed);
        // Pairs with the fence in `record_outcome` (store-buffering).
        fence(Ordering::SeqCst);
        let mut guard = self.idle.lock();
        loop {
            if self.in_flight() == 0 {
                return true;
            }
            if self.idle_cv.wait_until(&mut guard, deadline) {
                return self.in_flight() == 0;
            }
        }
    }
}
