//! The serializable snapshot types: what the pool reports about itself,
//! its groups, workers, breakers, memory and dead-letter queue. Plain data,
//! filled in by the layers they describe, so the reports depend on nothing.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::batches::BatchStats;
use super::counters::CountsSnapshot;
use super::latency::{LatencyHistograms, LatencySnapshot};
use super::memory::{MemorySample, PressureLevel};
use super::priority::{LevelCapacity, Priority};
use super::session::SessionError;

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
    /// Submissions handed back, by kind (they add up to `counts.rejected`).
    pub refusals: RefusalCounts,
    /// Accepted requests not yet resolved.
    pub in_flight: u64,
    /// Results that arrived after their request was already resolved (for
    /// example a cancelled or replaced call finishing late); discarded.
    pub late_results_discarded: u64,
    /// Waits on a handle that parked the caller: its result was not
    /// published within the pool's `wait_spin`. Near the number of
    /// requests, the spin is too short for the service time (or 0).
    pub waits_parked: u64,
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
    pub memory: MemoryStats,
    /// How requests spread over groups of equal priority.
    pub routing: crate::core::RoutingStrategy,
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
            let open = g.breaker.state != BreakerState::Closed;
            match (&g.not_ready, g.healthy) {
                (Some(why), _) => reasons.push(format!("group `{}`: not ready: {why}", g.name)),
                (None, false) => reasons.push(format!("group `{}`: no healthy worker", g.name)),
                (None, true) => {}
            }
            if open {
                reasons.push(format!("group `{}`: breaker {:?}", g.name, g.breaker.state));
            }
            if g.breaker.state == BreakerState::Open && g.breaker.overridden > 0 {
                reasons.push(format!(
                    "group `{}`: taking requests while its breaker is open, because every \
                     group they may go to is open (when_all_open: least_bad; {} so far)",
                    g.name, g.breaker.overridden
                ));
            }
            if g.healthy && g.breaker.state != BreakerState::Open {
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

/// Failed attempts by what went wrong ([`ErrorKind`](crate::ErrorKind)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorKindCounts {
    /// Transient errors (retried).
    pub transient: u64,
    /// Permanent errors (dead-lettered at once).
    pub permanent: u64,
    /// Calls stopped because the request was cancelled.
    pub cancelled: u64,
    /// Session panics (caught; the session is rebuilt).
    pub panicked: u64,
    /// Calls that ran past the group's `call_timeout`.
    pub timed_out: u64,
}

impl ErrorKindCounts {
    /// `(kind name, count)` for each kind, in declaration order.
    pub fn by_name(&self) -> [(&'static str, u64); 5] {
        [
            ("transient", self.transient),
            ("permanent", self.permanent),
            ("cancelled", self.cancelled),
            ("panicked", self.panicked),
            ("timed_out", self.timed_out),
        ]
    }
}

impl std::ops::AddAssign for ErrorKindCounts {
    fn add_assign(&mut self, o: Self) {
        self.transient += o.transient;
        self.permanent += o.permanent;
        self.cancelled += o.cancelled;
        self.panicked += o.panicked;
        self.timed_out += o.timed_out;
    }
}

/// What affinity did in one group (affinity on). Every keyed request a
/// worker took from the queue is counted once in `new_keys`, `on_worker`,
/// `handed_over` or `elsewhere`; a handed-over one once more in `taken` or
/// `stolen`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AffinityStats {
    /// Keys remembered now.
    pub keys: usize,
    /// Requests whose key no worker was remembered for: they ran where
    /// they were taken, which is now their key's worker.
    pub new_keys: u64,
    /// Requests taken from the queue by their key's worker itself.
    pub on_worker: u64,
    /// Requests handed by the worker that took them to their key's worker.
    pub handed_over: u64,
    /// Handed-over requests their key's worker took.
    pub taken: u64,
    /// Handed-over requests another worker took after the wait.
    pub stolen: u64,
    /// Requests whose key's worker was busy (or already had one waiting):
    /// they ran where they were taken.
    pub elsewhere: u64,
    /// Requests waiting for their key's worker now.
    pub waiting: usize,
}

impl AffinityStats {
    /// The share of keyed requests with a remembered key that ran on
    /// their key's worker (1.0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let seen = self.on_worker + self.handed_over + self.elsewhere;
        if seen == 0 {
            return 1.0;
        }
        (self.on_worker + self.taken) as f64 / seen as f64
    }
}

/// One tenant's counts in one group (tenant fairness on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantStats {
    /// The tenant's key (`""` for requests without one; `"(other)"` sums
    /// the tenants not reported by name).
    pub tenant: String,
    /// Requests queued for it.
    pub accepted: u64,
    /// Requests a worker took for it (or a shutdown swept); one that found
    /// its level idle went straight to the workers and counts here at once.
    pub served: u64,
    /// Requests turned away because its share of a level was full.
    pub refused: u64,
    /// Requests waiting now in its queue (not those that went straight to
    /// an idle level's workers).
    pub queued: usize,
}

/// Submissions handed back, by [`Refusal`](crate::Refusal) kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefusalCounts {
    /// Every eligible queue was full (`try_submit`).
    pub full: u64,
    /// The queues stayed full until the submit timeout.
    pub timeout: u64,
    /// The pool was shut down.
    pub closed: u64,
    /// The request named a group the pool does not have.
    pub unknown_group: u64,
    /// Memory pressure refused the request's level.
    pub memory_pressure: u64,
    /// No eligible group could take requests.
    pub unavailable: u64,
    /// The input did not fit the model.
    pub invalid: u64,
    /// Deadline-aware admission found the deadline could not be met.
    pub deadline_unmeetable: u64,
}

impl RefusalCounts {
    /// `(kind name, count)` for each kind, in declaration order.
    pub fn by_name(&self) -> [(&'static str, u64); 8] {
        [
            ("full", self.full),
            ("timeout", self.timeout),
            ("closed", self.closed),
            ("unknown_group", self.unknown_group),
            ("memory_pressure", self.memory_pressure),
            ("unavailable", self.unavailable),
            ("invalid", self.invalid),
            ("deadline_unmeetable", self.deadline_unmeetable),
        ]
    }
}

/// One device group's stats.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    /// Group name.
    pub name: String,
    /// What its sessions run, as the session factory describes it (for
    /// OpenVINO: `backend`, `device`, `model`, `precision`).
    pub backend: BTreeMap<String, String>,
    /// Routing priority (1-10, higher first).
    pub priority: u8,
    /// Routing weight among groups of equal priority (`weighted` routing).
    pub weight: u32,
    /// Moving average of its successful calls' service time, in
    /// milliseconds (0 before the first): deadline-aware admission's
    /// per-call figure.
    pub service_time_ms: f64,
    /// With tenant fairness on: the most active tenants (up to 16), then
    /// `"(other)"` for the rest; empty otherwise.
    pub tenants: Vec<TenantStats>,
    /// What affinity did (`None` with affinity off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityStats>,
    /// False when none of its workers is healthy, or its backend says it
    /// is not ready: the router skips it.
    pub healthy: bool,
    /// Why its backend says it cannot serve, while it does
    /// ([`SessionFactory::health`](crate::SessionFactory::health)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_ready: Option<String>,
    /// The servers it calls (a remote group), one entry each; empty for a
    /// local device.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<crate::core::EndpointStats>,
    /// Its circuit breaker.
    pub breaker: BreakerStats,
    /// Requests queued or running now.
    pub in_flight: usize,
    /// Workers running (not parked by load scaling or memory pressure).
    pub active_workers: usize,
    /// Requests routed to it (first attempts and retries).
    pub routed: u64,
    /// Calls found running past `call_timeout`.
    pub stuck_calls: u64,
    /// Workers replaced after a stuck call.
    pub workers_replaced: u64,
    /// Requests queued now, per level.
    pub queue_depth: QueueDepth,
    /// Queue capacity per level.
    pub capacity: LevelCapacity,
    /// Event counts for this group (replaced workers included).
    pub counts: CountsSnapshot,
    /// Latencies over the group's workers.
    pub latency: LatencySnapshot,
    /// Its batches, when the group batches.
    pub batching: Option<BatchStats>,
    /// Per active worker.
    pub workers: Vec<WorkerStats>,
    /// Failed attempts by error kind (this configuration's workers).
    pub failures: ErrorKindCounts,
    /// Latency bucket counts by priority (the Prometheus histograms; left
    /// out of the JSON, whose percentiles say the same more briefly).
    #[serde(skip)]
    pub histograms: LatencyHistograms,
}

/// The memory part of the pool's stats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryStats {
    /// The current level.
    pub level: PressureLevel,
    /// The last reading, if any was taken.
    pub last_sample: Option<MemorySample>,
    /// Workers parked now (by pressure or load scaling).
    pub parked_workers: usize,
    /// Pressure transitions so far.
    pub transitions: u64,
    /// Requests below this priority are refused now.
    pub refusing_below: Option<Priority>,
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Admitting everything.
    Closed,
    /// Admitting nothing until the cooldown passes.
    Open,
    /// Admitting a few probes.
    HalfOpen,
}

impl BreakerState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

/// One state change.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
    /// Why.
    pub reason: String,
    /// What the breaker had seen when it moved: the window (or, leaving
    /// half-open, the probes) that led to it.
    pub window: WindowStats,
    /// When (wall clock).
    pub at: SystemTime,
}

/// The calls a breaker's window holds: how many, and the shares that
/// failed and that were slow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowStats {
    /// Calls counted.
    pub calls: u64,
    /// Share of them that failed (0 with no call).
    pub failure_rate: f64,
    /// Share of them that were slow (0 with no call).
    pub slow_call_rate: f64,
}

/// One failure the breaker saw.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    /// The request's id.
    pub request: u64,
    /// The group.
    pub group: String,
    /// The worker index.
    pub worker: usize,
    /// The error.
    pub error: SessionError,
    /// When (wall clock).
    pub at: SystemTime,
}

/// A snapshot of a breaker, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerStats {
    /// Current state.
    pub state: BreakerState,
    /// The sliding window now (closed), or the probes so far (half-open).
    pub window: WindowStats,
    /// Consecutive failures while closed (what `mode: consecutive` reads).
    pub consecutive_failures: u32,
    /// The cooldown the next opening will use.
    pub cooldown_ms: f64,
    /// Requests turned away while open or half-open.
    pub rejected: u64,
    /// Requests routed here while it was open because every group they
    /// could go to was open (`when_all_open: least_bad`).
    pub overridden: u64,
    /// Most recent transitions, oldest first.
    pub transitions: Vec<Transition>,
    /// Every transition so far (the list above keeps the latest).
    pub transitions_total: u64,
    /// Most recent failures, oldest first.
    pub recent_failures: Vec<FailureRecord>,
}

/// What [`Pool::shutdown`](crate::Pool::shutdown) did.
#[derive(Debug, Clone, Serialize)]
pub struct ShutdownReport {
    /// True if every accepted request finished before the deadline.
    pub drained: bool,
    /// Requests still queued or waiting for a retry at the deadline, cancelled.
    pub cancelled_queued: u64,
    /// Requests whose call was still running at the deadline, cancelled
    /// (their worker detached).
    pub cancelled_running: u64,
    /// Worker threads that exited and were joined.
    pub workers_joined: usize,
    /// Worker threads still inside a call at the deadline, left to finish alone.
    pub workers_detached: usize,
    /// Time the shutdown took.
    pub elapsed: Duration,
    /// The pool's stats once shut down.
    pub stats: PoolStats,
}

/// What [`Pool::reload`](crate::Pool::reload) did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Groups the new configuration added.
    pub added: Vec<String>,
    /// Groups it removed (drained before they went).
    pub removed: Vec<String>,
    /// Groups in both.
    pub kept: Vec<String>,
    /// True if the old generation finished all it held before the drain timeout.
    pub drained: bool,
    /// Requests still queued (or waiting for a retry) in the old generation
    /// at the drain timeout, handed over to the new one: they run once, there.
    pub handed_over: u64,
    /// Calls still running in the old generation at the drain timeout,
    /// handed over like stuck calls: the request runs again in the new
    /// generation and resolves once, with whichever call finishes first (the
    /// other result is discarded and counted in
    /// [`PoolStats::late_results_discarded`](crate::PoolStats)). The session
    /// may thus see such a request twice; a `drain_timeout` longer than the
    /// longest call avoids it.
    pub handed_over_running: u64,
    /// Requests restricted to a group this reload removed
    /// ([`Request::group`](crate::Request::group)) still queued or running
    /// at the drain timeout: dead-lettered with an error naming the group,
    /// never run elsewhere.
    pub dead_lettered: u64,
    /// Time the reload took.
    pub elapsed: Duration,
}
