//! A device group: a named set of workers on one device, with its own queues,
//! routing priority, circuit breaker and session factory; and the pool's
//! handle on each of its worker threads.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, MutexGuard};

use super::queue::{Levels, LevelsConfig};
use super::worker::{self, WorkerCtx, WorkerStart};
use super::worker_state::{HealthyWorkers, WorkerState};
use crate::config::{AffinityConfig, GroupConfig, TenantsConfig};
use crate::core::ErrorKindCounts;
use crate::core::{
    BackendHealth, Batches, Clock, Counter, Counts, CountsSnapshot, Event, Ewma, GroupStats, Job,
    Latencies, Priority, QueueDepth, SessionError, SessionFactory,
};
use crate::policy::deadline::Backlog;
use crate::policy::CircuitBreaker;

/// A worker thread as its group holds it.
pub(crate) struct WorkerThread<I, O> {
    state: Arc<WorkerState<I, O>>,
    /// Dropping it wakes the worker so it sees its stop flag.
    control: Option<Sender<()>>,
    /// Disconnects when the thread has exited.
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl<I, O> WorkerThread<I, O> {
    pub(crate) fn state(&self) -> &Arc<WorkerState<I, O>> {
        &self.state
    }

    /// Puts a note on the worker's control channel so it looks at its park
    /// reasons (a note already waiting is enough).
    pub(crate) fn wake(&self) {
        if let Some(c) = &self.control {
            let _ = c.try_send(());
        }
    }

    /// Raises the stop flag and drops the control sender, which wakes the
    /// worker wherever it waits.
    pub(crate) fn stop(&mut self) {
        self.state.stop();
        drop(self.control.take());
    }

    /// Waits until the thread exits or `deadline` passes; joins it if it
    /// exited. True if it exited.
    pub(crate) fn join_by(&mut self, deadline: Instant) -> bool {
        match self.exited.recv_deadline(deadline) {
            Err(RecvTimeoutError::Disconnected) | Ok(()) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Lets the thread go without joining it (it may never return).
    pub(crate) fn detach(&mut self) {
        drop(self.thread.take());
    }
}

/// One device group.
pub(crate) struct Group<I, O> {
    /// Its place in routing order (a bit in a job's failed-groups set).
    index: usize,
    name: Arc<str>,
    config: GroupConfig,
    levels: Levels<Job<I, O>>,
    factory: Arc<dyn SessionFactory<I, O>>,
    /// What the factory says its sessions run (read once, for the stats).
    backend: BTreeMap<String, String>,
    breaker: CircuitBreaker,
    healthy_workers: HealthyWorkers,
    /// False while the factory says its backend cannot serve
    /// (`SessionFactory::health`, asked by the supervisor).
    backend_ready: AtomicBool,
    /// Why, while it is false.
    not_ready: Mutex<Option<String>>,
    /// Submit-side counts (accepted, rejected); workers count the rest.
    counts: Counts,
    stuck_calls: Counter,
    /// Moving averages of successful calls' service time, whole and per
    /// request of a batch: deadline-aware admission reads them.
    per_call: Ewma,
    per_request: Ewma,
    workers: Mutex<Vec<WorkerThread<I, O>>>,
    /// Workers replaced after a stuck call: their threads are left to end
    /// on their own; their counts still belong to the group.
    retired: Mutex<Vec<Arc<WorkerState<I, O>>>>,
}

impl<I: 'static, O: 'static> Group<I, O> {
    pub(crate) fn new(
        index: usize,
        config: GroupConfig,
        tenants: &TenantsConfig,
        affinity: &AffinityConfig,
        factory: Arc<dyn SessionFactory<I, O>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            index,
            name: Arc::from(config.name.as_str()),
            levels: Levels::new(
                &config.capacity,
                &LevelsConfig {
                    probes: config.breaker.half_open_max_calls as usize,
                    tenants,
                    affinity,
                    workers: config.workers,
                },
            ),
            breaker: CircuitBreaker::new(config.breaker.clone(), clock),
            healthy_workers: HealthyWorkers::default(),
            backend_ready: AtomicBool::new(true),
            not_ready: Mutex::new(None),
            config,
            backend: factory.describe().into_iter().collect(),
            factory,
            counts: Counts::default(),
            stuck_calls: Counter::default(),
            per_call: Ewma::default(),
            per_request: Ewma::default(),
            workers: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
        }
    }
}

impl<I, O> Group<I, O> {
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub(crate) fn factory(&self) -> &dyn SessionFactory<I, O> {
        &*self.factory
    }

    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub(super) fn levels(&self) -> &Levels<Job<I, O>> {
        &self.levels
    }

    /// The group's workers (locked).
    pub(super) fn workers(&self) -> MutexGuard<'_, Vec<WorkerThread<I, O>>> {
        self.workers.lock()
    }

    /// Adds a started worker.
    pub(crate) fn add_worker(&self, w: WorkerThread<I, O>) {
        self.workers.lock().push(w);
    }

    /// Keeps a replaced worker's counts (its thread is left alone).
    pub(super) fn retire(&self, w: Arc<WorkerState<I, O>>) {
        self.retired.lock().push(w);
    }

    /// Workers replaced so far.
    pub(super) fn retired_count(&self) -> usize {
        self.retired.lock().len()
    }

    /// A stuck call was found.
    pub(super) fn note_stuck(&self) {
        self.stuck_calls.inc();
    }

    /// Counts a submit-side event (accepted, rejected).
    #[inline]
    pub(crate) fn count(&self, e: Event) {
        self.counts.inc(e);
    }

    #[inline]
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy_workers.any() && self.backend_ready.load(Ordering::Acquire)
    }

    /// Asks the factory whether its backend can serve (the supervisor, at
    /// each health check). Turning not ready opens the breaker, so the
    /// group comes back through its probes once it is ready again, like a
    /// group whose calls failed; meanwhile the router skips it.
    pub(crate) fn check_backend(&self)
    where
        I: 'static,
        O: 'static,
    {
        let health = self.factory.health();
        let mut reason = self.not_ready.lock();
        match health {
            BackendHealth::Ready => {
                if reason.take().is_some() {
                    tracing::info!("group `{}`: backend ready again", self.name);
                    self.backend_ready.store(true, Ordering::Release);
                }
            }
            BackendHealth::NotReady(why) => {
                if reason.is_none() {
                    tracing::warn!("group `{}`: backend not ready: {why}", self.name);
                    self.backend_ready.store(false, Ordering::Release);
                    self.breaker.trip(format!("backend not ready: {why}"));
                }
                *reason = Some(why);
            }
        }
    }

    /// The count a worker's health transitions move.
    pub(super) fn healthy_workers(&self) -> &HealthyWorkers {
        &self.healthy_workers
    }

    /// Requests queued now, all levels and the probes' lane.
    pub(crate) fn queued(&self) -> usize {
        self.levels.depth().iter().sum::<usize>() + self.levels.probes_waiting()
    }

    /// A call of `batch` requests succeeded in `service`.
    #[inline]
    pub(super) fn note_service(&self, service: Duration, batch: usize) {
        let nanos = u64::try_from(service.as_nanos()).unwrap_or(u64::MAX);
        self.per_call.note(nanos);
        self.per_request.note(nanos / batch.max(1) as u64);
    }

    /// What is ahead of a request of priority `p` submitted now, and how
    /// fast the group serves (for deadline-aware admission).
    pub(crate) fn backlog(&self, p: Priority) -> Backlog {
        let depth = self.levels.depth();
        let queued: usize = depth[..=p.index()].iter().sum();
        let workers = self.workers.lock();
        let running = workers.iter().filter(|w| w.state.is_busy()).count();
        let active = workers.iter().filter(|w| w.state.is_active()).count();
        Backlog {
            ahead: queued + self.levels.probes_waiting() + running,
            workers: active,
            per_call: self.per_call.get(),
            per_request: self.per_request.get(),
        }
    }

    /// Work queued plus calls running: the tie-breaker between groups of
    /// equal priority.
    pub(crate) fn in_flight(&self) -> usize {
        self.queued() + self.running()
    }

    fn running(&self) -> usize {
        self.workers
            .lock()
            .iter()
            .filter(|w| w.state.is_busy())
            .count()
    }

    /// True when the group holds no request: queues empty, no call running.
    pub(crate) fn is_idle(&self) -> bool {
        self.queued() == 0 && self.running() == 0
    }

    /// What the group's workers counted (replaced workers included).
    pub(crate) fn worker_counts(&self) -> CountsSnapshot {
        let mut counts = CountsSnapshot::default();
        for w in self.workers.lock().iter() {
            counts += w.state.counts();
        }
        for w in self.retired.lock().iter() {
            counts += w.counts();
        }
        counts
    }

    /// The group's stats; `now` in clock nanoseconds since the pool's epoch.
    pub(crate) fn stats(&self, now: u64) -> GroupStats
    where
        I: 'static,
        O: 'static,
    {
        let workers = self.workers.lock();
        let retired = self.retired.lock();
        let per_worker: Vec<_> = workers.iter().map(|w| w.state.stats(now)).collect();
        let mut counts = self.counts.snapshot();
        for w in &per_worker {
            counts += w.counts;
        }
        for w in retired.iter() {
            counts += w.counts();
        }
        let queue_depth = QueueDepth::from_levels(self.levels.depth());
        let running = workers.iter().filter(|w| w.state.is_busy()).count();
        GroupStats {
            capacity: self.config.capacity,
            active_workers: workers.iter().filter(|w| w.state.is_active()).count(),
            name: self.name.to_string(),
            backend: self.backend.clone(),
            priority: self.config.priority,
            weight: self.config.weight,
            service_time_ms: self.per_call.get() as f64 / 1e6,
            tenants: self.levels.tenant_stats(),
            affinity: self.levels.affinity_stats(),
            healthy: self.is_healthy(),
            not_ready: self.not_ready.lock().clone(),
            endpoints: self.factory.endpoints(),
            breaker: self.breaker.stats(),
            in_flight: queue_depth.total() + self.levels.probes_waiting() + running,
            routed: counts.accepted,
            stuck_calls: self.stuck_calls.get(),
            workers_replaced: retired.len() as u64,
            queue_depth,
            counts,
            latency: Latencies::snapshot(
                workers
                    .iter()
                    .map(|w| w.state.latency())
                    .chain(retired.iter().map(|w| w.latency())),
            ),
            batching: self.config.batching.enabled().then(|| {
                Batches::snapshot(
                    self.config.batching.max_batch_size,
                    workers
                        .iter()
                        .filter_map(|w| w.state.batches())
                        .chain(retired.iter().filter_map(|w| w.batches())),
                )
            }),
            failures: workers
                .iter()
                .map(|w| w.state.failures())
                .chain(retired.iter().map(|w| w.failures()))
                .fold(ErrorKindCounts::default(), |mut a, b| {
                    a += b;
                    a
                }),
            histograms: Latencies::histograms(
                workers
                    .iter()
                    .map(|w| w.state.latency())
                    .chain(retired.iter().map(|w| w.latency())),
            ),
            workers: per_worker,
        }
    }

    /// True when another running worker of the group than `me` is idle
    /// (not in a call): a request arriving now would be taken at once.
    pub(super) fn has_idle_worker_besides(&self, me: &WorkerState<I, O>) -> bool {
        self.workers.lock().iter().any(|w| {
            !std::ptr::eq(&**w.state(), me) && w.state().is_active() && !w.state().is_busy()
        })
    }

    /// Every worker's latencies (replaced ones included), for a pool-wide
    /// snapshot.
    pub(crate) fn all_workers(&self) -> Vec<Arc<WorkerState<I, O>>> {
        let mut all: Vec<_> = self
            .workers
            .lock()
            .iter()
            .map(|w| Arc::clone(&w.state))
            .collect();
        all.extend(self.retired.lock().iter().cloned());
        all
    }
}

/// Reports of first sessions: group index, worker index, result.
pub(crate) type ReadyTx = Sender<(usize, usize, Result<(), SessionError>)>;

/// Spawns one worker of `ctx`'s group. With `ready`, the worker reports its
/// first session build there (pool start); without, it keeps retrying the
/// build (a replacement).
pub(crate) fn spawn_worker<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    index: usize,
    core: Option<core_affinity::CoreId>,
    shares_core: bool,
    ready: Option<ReadyTx>,
) -> std::io::Result<WorkerThread<I, O>> {
    let max_batch = ctx.group.config().batching.max_batch_size;
    let me = Arc::new(WorkerState::new(index, core, shares_core, max_batch));
    let (control_tx, control_rx) = bounded(1);
    let (exited_tx, exited_rx) = bounded(0);
    let start = WorkerStart {
        ctx: ctx.clone(),
        me: Arc::clone(&me),
        control: control_rx,
        ready,
        _exited: exited_tx,
    };
    let thread = std::thread::Builder::new()
        .name(format!("accelpool-{}-{index}", ctx.group.name()))
        .spawn(move || worker::run(start))?;
    Ok(WorkerThread {
        state: me,
        control: Some(control_tx),
        exited: exited_rx,
        thread: Some(thread),
    })
}
