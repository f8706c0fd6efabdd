//! A device group: a named set of workers on one device, with its own queues,
//! routing priority, circuit breaker and session factory.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;
use serde::Serialize;

use crate::breaker::{BreakerStats, CircuitBreaker};
use crate::clock::Clock;
use crate::config::GroupConfig;
use crate::pool::Shared;
use crate::queue::Levels;
use crate::request::Job;
use crate::session::{SessionError, SessionFactory};
use crate::stats::{Counter, Counts, CountsSnapshot, Latencies, QueueDepth, WorkerStats};
use crate::worker::{self, WorkerShared, WorkerStart};

/// One worker as the pool holds it.
pub(crate) struct WorkerSlot<I, O> {
    pub shared: Arc<WorkerShared<I, O>>,
    /// Dropping it wakes the worker so it sees its stop flag.
    pub control: Option<Sender<()>>,
    /// Disconnects when the thread has exited.
    pub exited: Receiver<()>,
    pub thread: Option<JoinHandle<()>>,
}

impl<I, O> WorkerSlot<I, O> {
    /// Puts a note on the worker's control channel so it looks at its park
    /// reasons (a note already waiting is enough).
    pub(crate) fn wake(&self) {
        if let Some(c) = &self.control {
            let _ = c.try_send(());
        }
    }
}

pub(crate) struct Group<I, O> {
    pub name: Arc<str>,
    pub config: GroupConfig,
    pub levels: Levels<Job<I, O>>,
    pub factory: Arc<dyn SessionFactory<I, O>>,
    /// What the factory says its sessions run (read once, for the stats).
    pub backend: std::collections::BTreeMap<String, String>,
    pub breaker: CircuitBreaker,
    /// Workers of the group that are healthy now; the router skips the
    /// group at zero. Changed only on a worker's own transitions
    /// ([`WorkerShared::set_healthy`]), so it is never stale.
    pub healthy_workers: AtomicUsize,
    /// Submit-side counts (accepted, rejected); workers count the rest.
    pub counts: Counts,
    pub stuck_calls: Counter,
    pub workers: Mutex<Vec<WorkerSlot<I, O>>>,
    /// Workers replaced after a stuck call: their threads are left to end
    /// on their own; their counts still belong to the group.
    pub retired: Mutex<Vec<Arc<WorkerShared<I, O>>>>,
}

impl<I: 'static, O: 'static> Group<I, O> {
    pub(crate) fn new(
        config: GroupConfig,
        factory: Arc<dyn SessionFactory<I, O>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            levels: Levels::new(&config.capacity),
            breaker: CircuitBreaker::new(config.breaker.clone(), clock),
            healthy_workers: AtomicUsize::new(0),
            config,
            backend: factory.describe().into_iter().collect(),
            factory,
            counts: Counts::default(),
            stuck_calls: Counter::default(),
            workers: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
        }
    }
}

impl<I, O> Group<I, O> {
    #[inline]
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy_workers.load(Ordering::Acquire) > 0
    }

    /// Work queued plus calls running: the tie-breaker between groups of
    /// equal priority.
    pub(crate) fn in_flight(&self) -> usize {
        let queued: usize = self.levels.depth().iter().sum();
        queued + self.running()
    }

    fn running(&self) -> usize {
        self.workers
            .lock()
            .iter()
            .filter(|w| w.shared.busy_since.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// What the group's workers counted (replaced workers included): the
    /// attempt counters a pool sums across generations.
    pub(crate) fn worker_counts(&self) -> CountsSnapshot {
        let mut counts = CountsSnapshot::default();
        for w in self.workers.lock().iter() {
            add_worker_counts(&mut counts, &w.shared.counts.snapshot());
        }
        for w in self.retired.lock().iter() {
            add_worker_counts(&mut counts, &w.counts.snapshot());
        }
        counts
    }

    /// The group's stats; `now` in clock nanoseconds since the pool's epoch.
    pub(crate) fn stats(&self, now: u64) -> GroupStats {
        let workers = self.workers.lock();
        let retired = self.retired.lock();
        let per_worker: Vec<_> = workers.iter().map(|w| w.shared.stats(now)).collect();
        let mut counts = self.counts.snapshot();
        for w in per_worker
            .iter()
            .map(|w| w.counts)
            .chain(retired.iter().map(|w| w.counts.snapshot()))
        {
            add_worker_counts(&mut counts, &w);
        }
        let queue_depth = QueueDepth::from_levels(self.levels.depth());
        let running = workers
            .iter()
            .filter(|w| w.shared.busy_since.load(Ordering::Relaxed) != 0)
            .count();
        GroupStats {
            capacity: self.config.capacity,
            active_workers: workers.iter().filter(|w| w.shared.is_active()).count(),
            name: self.name.to_string(),
            backend: self.backend.clone(),
            priority: self.config.priority,
            healthy: self.is_healthy(),
            breaker: self.breaker.stats(),
            in_flight: queue_depth.total() + running,
            routed: counts.accepted,
            stuck_calls: self.stuck_calls.get(),
            workers_replaced: retired.len() as u64,
            queue_depth,
            counts,
            latency: Latencies::snapshot(
                workers
                    .iter()
                    .map(|w| &w.shared.latency)
                    .chain(retired.iter().map(|w| &w.latency)),
            ),
            workers: per_worker,
        }
    }
}

/// Adds what workers count (everything but admissions) into a group's counts.
fn add_worker_counts(into: &mut CountsSnapshot, w: &CountsSnapshot) {
    into.started += w.started;
    into.completed += w.completed;
    into.failed_attempts += w.failed_attempts;
    into.retried += w.retried;
    into.dead_lettered += w.dead_lettered;
    into.cancelled += w.cancelled;
    into.expired += w.expired;
}

/// Reports of first sessions: group index, worker index, result.
pub(crate) type ReadyTx = Sender<(usize, usize, Result<(), SessionError>)>;

/// Spawns one worker of group `gi`. With `ready`, the worker reports its
/// first session build there (pool start); without, it keeps retrying the
/// build (a replacement).
pub(crate) fn spawn_worker<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Arc<Shared<I, O>>,
    gi: usize,
    index: usize,
    core: Option<core_affinity::CoreId>,
    shares_core: bool,
    ready: Option<ReadyTx>,
) -> std::io::Result<WorkerSlot<I, O>> {
    let g = &shared.groups[gi];
    let me = Arc::new(WorkerShared::new(index, core, shares_core));
    let (control_tx, control_rx) = bounded(1);
    let (exited_tx, exited_rx) = bounded(0);
    let start = WorkerStart {
        shared: Arc::clone(shared),
        group: gi,
        me: Arc::clone(&me),
        control: control_rx,
        ready,
        _exited: exited_tx,
    };
    let thread = std::thread::Builder::new()
        .name(format!("accelpool-{}-{index}", g.name))
        .spawn(move || worker::run(start))?;
    Ok(WorkerSlot {
        shared: me,
        control: Some(control_tx),
        exited: exited_rx,
        thread: Some(thread),
    })
}

/// One device group's stats.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    /// Group name.
    pub name: String,
    /// What its sessions run, as the session factory describes it (for
    /// OpenVINO: `backend`, `device`, `model`, `precision`).
    pub backend: std::collections::BTreeMap<String, String>,
    /// Routing priority (1-10, higher first).
    pub priority: u8,
    /// False when none of its workers is healthy: the router skips it.
    pub healthy: bool,
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
    pub capacity: crate::LevelCapacity,
    /// Event counts for this group (replaced workers included).
    pub counts: CountsSnapshot,
    /// Latencies over the group's workers.
    pub latency: crate::stats::LatencySnapshot,
    /// Per active worker.
    pub workers: Vec<WorkerStats>,
}
