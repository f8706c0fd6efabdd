//! Counters, latency histograms and the serializable stats snapshot.
//!
//! Counters are plain relaxed atomics, each in its own cache line, written by
//! the thread that sees the event (a submitter, a worker, a cancelling
//! caller). Latency histograms belong to one worker each and sit behind an
//! uncontended lock; a snapshot merges them.

#![forbid(unsafe_code)]

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::group::GroupStats;
use crate::handle::Status;
use crate::Priority;

/// One event counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(CachePadded<AtomicU64>);

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

/// The counters kept at each level (pool, group, worker).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub accepted: Counter,
    pub rejected: Counter,
    pub started: Counter,
    pub completed: Counter,
    pub failed_attempts: Counter,
    pub retried: Counter,
    pub dead_lettered: Counter,
    pub cancelled: Counter,
    pub expired: Counter,
}

impl Counts {
    pub(crate) fn snapshot(&self) -> CountsSnapshot {
        CountsSnapshot {
            accepted: self.accepted.get(),
            rejected: self.rejected.get(),
            started: self.started.get(),
            completed: self.completed.get(),
            failed_attempts: self.failed_attempts.get(),
            retried: self.retried.get(),
            dead_lettered: self.dead_lettered.get(),
            cancelled: self.cancelled.get(),
            expired: self.expired.get(),
        }
    }

    /// Counts a final outcome.
    pub(crate) fn outcome(&self, status: Status) {
        match status {
            Status::Completed => self.completed.inc(),
            Status::Failed => self.dead_lettered.inc(),
            Status::Cancelled => self.cancelled.inc(),
            Status::Expired => self.expired.inc(),
            Status::Queued | Status::Running => {}
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
}

/// The pool's own ledger of admissions and outcomes: the one place the
/// accounting identity is kept. It also wakes a shutdown waiting for the
/// pool to go idle.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub counts: Counts,
    pub late_results: Counter,
    watching: AtomicBool,
    idle: Mutex<()>,
    idle_cv: Condvar,
}

impl Ledger {
    pub(crate) fn record_outcome(&self, status: Status) {
        self.counts.outcome(status);
        // Store-buffering with `wait_idle`: this side writes a counter then
        // reads `watching`, that side writes `watching` then reads the
        // counters. A SeqCst fence on each side (as rayon's sleep module
        // does) guarantees at least one side sees the other's write, so a
        // waiter is either notified here or sees the count itself.
        fence(Ordering::SeqCst);
        if self.watching.load(Ordering::Relaxed) {
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
        // left admission (see `crate::pool`), when `accepted` is final.
        let c = &self.counts;
        let resolved =
            c.completed.get() + c.dead_lettered.get() + c.cancelled.get() + c.expired.get();
        c.accepted.get().saturating_sub(resolved)
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
            if self.idle_cv.wait_until(&mut guard, deadline).timed_out() {
                return self.in_flight() == 0;
            }
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 2 significant digits: a few KiB per histogram.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("valid histogram bounds")
}

#[inline]
fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(ns);
}

struct Hists {
    queue_wait: Histogram<u64>,
    service: Histogram<u64>,
    end_to_end: Histogram<u64>,
}

/// One worker's three latency histograms (nanoseconds), behind one lock
/// that only that worker writes and a snapshot reads.
pub(crate) struct Latencies(Mutex<Hists>);

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Latencies")
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self(Mutex::new(Hists {
            queue_wait: histogram(),
            service: histogram(),
            end_to_end: histogram(),
        }))
    }
}

impl Latencies {
    /// Records one attempt; `end_to_end` only for a completed request.
    #[inline]
    pub(crate) fn record(
        &self,
        queue_wait: Duration,
        service: Duration,
        end_to_end: Option<Duration>,
    ) {
        let mut h = self.0.lock();
        record(&mut h.queue_wait, queue_wait);
        record(&mut h.service, service);
        if let Some(e) = end_to_end {
            record(&mut h.end_to_end, e);
        }
    }

    /// Merges several workers' histograms into percentiles.
    pub(crate) fn snapshot<'a>(all: impl IntoIterator<Item = &'a Latencies>) -> LatencySnapshot {
        let mut sum = Hists {
            queue_wait: histogram(),
            service: histogram(),
            end_to_end: histogram(),
        };
        for l in all {
            let h = l.0.lock();
            // Same bounds everywhere, so adding cannot fail.
            let _ = sum.queue_wait.add(&h.queue_wait);
            let _ = sum.service.add(&h.service);
            let _ = sum.end_to_end.add(&h.end_to_end);
        }
        LatencySnapshot {
            queue_wait: Percentiles::from_histogram(&sum.queue_wait),
            service: Percentiles::from_histogram(&sum.service),
            end_to_end: Percentiles::from_histogram(&sum.end_to_end),
        }
    }
}

/// Percentiles of one latency, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Percentiles {
    /// Summarises a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            count: h.len(),
            mean_us: h.mean() / 1_000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p95_us: us(h.value_at_quantile(0.95)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Latency percentiles: time in queue, time in the session, and submit to result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySnapshot {
    /// From entering a queue to a worker taking it (per attempt).
    pub queue_wait: Percentiles,
    /// Time inside the session (per attempt).
    pub service: Percentiles,
    /// From submit to the completed result.
    pub end_to_end: Percentiles,
}

/// Requests waiting in a group's queues, per priority level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// `Urgent` level.
    pub urgent: usize,
    /// `High` level.
    pub high: usize,
    /// `Normal` level.
    pub normal: usize,
    /// `Low` level.
    pub low: usize,
}

impl QueueDepth {
    pub(crate) fn from_levels(levels: [usize; Priority::COUNT]) -> Self {
        let [urgent, high, normal, low] = levels;
        Self {
            urgent,
            high,
            normal,
            low,
        }
    }

    /// All levels together.
    pub fn total(&self) -> usize {
        self.urgent + self.high + self.normal + self.low
    }
}

/// One worker's stats.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStats {
    /// Index within the group.
    pub index: usize,
    /// The core it was asked to pin to, if pinning is on.
    pub core: Option<usize>,
    /// True when another worker of the pool is pinned to the same core:
    /// the configuration asks for more workers than the process has cores,
    /// so they share (see [`GroupConfig::workers`](crate::GroupConfig)).
    pub shares_core: bool,
    /// Whether pinning succeeded.
    pub pinned: bool,
    /// Sessions built (1 + rebuilds).
    pub session_builds: u64,
    /// Factory calls that failed.
    pub session_build_failures: u64,
    /// Panics caught inside the session.
    pub panics: u64,
    /// Whether it has a working session and is not stuck.
    pub healthy: bool,
    /// Parked by memory pressure or load scaling (no session held).
    pub parked: bool,
    /// Milliseconds since its last sign of life (a call started or ended).
    pub heartbeat_age_ms: f64,
    /// Milliseconds its current call has run, if it is in one.
    pub busy_ms: Option<f64>,
    /// Event counts for requests this worker ran.
    pub counts: CountsSnapshot,
    /// This worker's latencies.
    pub latency: LatencySnapshot,
}

/// The dead-letter queue's stats.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DeadLetterStats {
    /// Letters held now.
    pub len: usize,
    /// Most letters it holds.
    pub capacity: usize,
    /// Letters pushed out by the overflow policy (handed to the overflow callback if set).
    pub overflowed: u64,
}

/// A snapshot of the whole pool. Serializable, for logs and dashboards.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    /// Pool-level event counts: the accounting identity holds here.
    pub counts: CountsSnapshot,
    /// Accepted requests not yet resolved.
    pub in_flight: u64,
    /// Results that arrived after their request was already resolved (for
    /// example a cancelled or replaced call finishing late); discarded.
    pub late_results_discarded: u64,
    /// Panics caught inside the pool's supervisor thread (a bug, logged as
    /// an error); the supervisor carried on after each.
    pub supervisor_panics: u64,
    /// Health and scaling checks the supervisor has finished in the current
    /// generation (one per `health_check_interval`): a test or a watchdog
    /// can wait for the next one instead of sleeping.
    pub supervisor_checks: u64,
    /// Dead-letter queue.
    pub dead_letter: DeadLetterStats,
    /// Latencies over all workers.
    pub latency: LatencySnapshot,
    /// Healthy, degraded or unhealthy, with reasons.
    pub health: HealthSummary,
    /// Memory pressure and parked workers.
    pub memory: crate::pressure::MemoryStats,
    /// Per group, in routing order.
    pub groups: Vec<GroupStats>,
}

/// The pool's health in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every group healthy with its breaker closed.
    Healthy,
    /// Some group cannot take work, but another can.
    Degraded,
    /// No group can take work.
    Unhealthy,
}

/// The pool's health and why.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSummary {
    /// The verdict.
    pub status: Health,
    /// One line per group that is not fully well.
    pub reasons: Vec<String>,
}

impl HealthSummary {
    pub(crate) fn of(groups: &[GroupStats]) -> Self {
        let mut reasons = Vec::new();
        let mut usable = 0;
        for g in groups {
            let open = g.breaker.state != crate::breaker::BreakerState::Closed;
            if !g.healthy {
                reasons.push(format!("group `{}`: no healthy worker", g.name));
            }
            if open {
                reasons.push(format!("group `{}`: breaker {:?}", g.name, g.breaker.state));
            }
            if g.healthy && g.breaker.state != crate::breaker::BreakerState::Open {
                usable += 1;
            }
        }
        let status = if reasons.is_empty() {
            Health::Healthy
        } else if usable > 0 {
            Health::Degraded
        } else {
            Health::Unhealthy
        };
        Self { status, reasons }
    }
}
