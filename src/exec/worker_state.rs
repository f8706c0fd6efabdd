//! What a worker shares with the rest of its generation: identity,
//! counters, flags, and the request it is running (for a take-over).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::park::ParkReasons;
use crate::core::{
    Batches, Counter, Counts, CountsSnapshot, ErrorKind, ErrorKindCounts, Event, Ewma, Job,
    Latencies, WorkerStats,
};

/// How many workers of a group are healthy: the router skips the group at
/// zero. Moved only by a worker's own health transitions
/// ([`WorkerState::set_healthy`]), so it is never stale.
#[derive(Debug, Default)]
pub(crate) struct HealthyWorkers(AtomicUsize);

impl HealthyWorkers {
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// A worker's state as the rest of its generation sees it: its identity,
/// its counters, its flags and the request it is running.
pub(crate) struct WorkerState<I, O> {
    index: usize,
    core: Option<core_affinity::CoreId>,
    /// Another worker of the pool is given the same core (more workers
    /// than cores).
    shares_core: bool,
    pinned: AtomicBool,
    stop: AtomicBool,
    counts: Counts,
    latency: Latencies,
    session_builds: Counter,
    build_failures: Counter,
    panics: Counter,
    /// Failed attempts by error kind, in `ErrorKindCounts` order.
    failures: [Counter; 5],
    /// Its batches, when the group batches.
    batches: Option<Batches>,
    /// The requests being run, so a stuck call can be taken over.
    current: Mutex<Current<I, O>>,
    /// Clock nanoseconds since the pool's epoch at which the current call
    /// started; 0 when idle. The heartbeat the supervisor reads.
    busy_since: AtomicU64,
    /// Clock nanoseconds of the worker's last sign of life (a call started
    /// or ended, or its session built).
    heartbeat: AtomicU64,
    /// False while the worker has no working session (building, or its
    /// builds fail, or parked), or once it is taken over.
    healthy: AtomicBool,
    /// Why the worker should be parked; none to run.
    park: ParkReasons,
    /// True from parking until the session is rebuilt (no session held).
    parked: AtomicBool,
    /// Moving average of this worker's queue waits, in nanoseconds.
    queue_wait_ewma: Ewma,
}

impl<I, O> WorkerState<I, O> {
    /// `max_batch`: the group's `max_batch_size` (1: no batching).
    pub(crate) fn new(
        index: usize,
        core: Option<core_affinity::CoreId>,
        shares_core: bool,
        max_batch: u32,
    ) -> Self {
        Self {
            batches: (max_batch > 1).then(|| Batches::new(max_batch)),
            index,
            core,
            shares_core,
            pinned: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counts: Counts::default(),
            latency: Latencies::default(),
            session_builds: Counter::default(),
            build_failures: Counter::default(),
            panics: Counter::default(),
            failures: Default::default(),
            current: Mutex::new(Current {
                jobs: Vec::new(),
                taken_over: false,
            }),
            busy_since: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            park: ParkReasons::default(),
            parked: AtomicBool::new(false),
            queue_wait_ewma: Ewma::default(),
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(super) fn core(&self) -> Option<core_affinity::CoreId> {
        self.core
    }

    pub(super) fn shares_core(&self) -> bool {
        self.shares_core
    }

    pub(super) fn set_pinned(&self, ok: bool) {
        self.pinned.store(ok, Ordering::Relaxed);
    }

    /// Asks the worker to stop (it exits at its next look).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub(super) fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(super) fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// Counts one event of a request this worker ran.
    #[inline]
    pub(super) fn count(&self, e: Event) {
        self.counts.inc(e);
    }

    /// An attempt failed with an error of `kind`.
    pub(super) fn failed(&self, kind: ErrorKind) {
        self.counts.inc(Event::FailedAttempt);
        let i = match kind {
            ErrorKind::Transient => 0,
            ErrorKind::Permanent => 1,
            ErrorKind::Cancelled => 2,
            ErrorKind::Panicked => 3,
            ErrorKind::TimedOut => 4,
        };
        self.failures[i].inc();
    }

    /// Failed attempts by error kind.
    pub(crate) fn failures(&self) -> ErrorKindCounts {
        let f = |i: usize| self.failures[i].get();
        ErrorKindCounts {
            transient: f(0),
            permanent: f(1),
            cancelled: f(2),
            panicked: f(3),
            timed_out: f(4),
        }
    }

    pub(crate) fn counts(&self) -> CountsSnapshot {
        self.counts.snapshot()
    }

    pub(crate) fn latency(&self) -> &Latencies {
        &self.latency
    }

    pub(super) fn session_built(&self, now: u64) {
        self.session_builds.inc();
        self.heartbeat.store(now, Ordering::Relaxed);
    }

    pub(super) fn session_builds(&self) -> u64 {
        self.session_builds.get()
    }

    pub(super) fn build_failed(&self) {
        self.build_failures.inc();
    }

    pub(super) fn panicked(&self) {
        self.panics.inc();
    }

    /// Clock nanoseconds at which the current call started; 0 when idle.
    pub(super) fn busy_since(&self) -> u64 {
        self.busy_since.load(Ordering::Acquire)
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy_since() != 0
    }

    /// A call starts at `now` (clock nanoseconds).
    #[inline]
    pub(super) fn call_started(&self, now: u64) {
        self.busy_since.store(now, Ordering::Release);
        self.heartbeat.store(now, Ordering::Relaxed);
    }

    /// The call ended at `now`.
    #[inline]
    pub(super) fn call_ended(&self, now: u64) {
        self.busy_since.store(0, Ordering::Release);
        self.heartbeat.store(now, Ordering::Relaxed);
    }

    /// Clock nanoseconds of the last sign of life.
    pub(super) fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    pub(super) fn park_reasons(&self) -> &ParkReasons {
        &self.park
    }

    /// Whether it holds no session because it is parked.
    pub(super) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::Release);
    }

    /// Folds one queue wait (nanoseconds) into the moving average load
    /// scaling reads.
    #[inline]
    pub(super) fn note_queue_wait(&self, nanos: u64) {
        self.queue_wait_ewma.note(nanos);
    }

    /// The moving average of queue waits, in nanoseconds.
    pub(super) fn queue_wait_ewma(&self) -> u64 {
        self.queue_wait_ewma.get()
    }

    /// True when the worker runs (is not parked or asked to park).
    pub(crate) fn is_active(&self) -> bool {
        self.park.none()
    }

    /// Records the requests this worker starts running (one, or a batch).
    /// False if the worker was taken over: it must not run them.
    pub(super) fn begin(&self, jobs: &[Job<I, O>]) -> bool {
        let mut cur = self.current.lock();
        if cur.taken_over {
            return false;
        }
        cur.jobs.extend(jobs.iter().cloned());
        true
    }

    /// Clears the running requests; true if the worker was taken over
    /// meanwhile (its requests now belong to someone else).
    pub(super) fn end(&self) -> bool {
        let mut cur = self.current.lock();
        cur.jobs.clear();
        cur.taken_over
    }

    /// Its batches, when the group batches.
    pub(crate) fn batches(&self) -> Option<&Batches> {
        self.batches.as_ref()
    }

    /// Takes over the worker (shutdown giving up on it, or the supervisor
    /// replacing it as stuck): returns the requests it is running, which
    /// the caller now answers for. The worker starts no other request and
    /// treats the result of its current call as late.
    pub(crate) fn take_over(&self, healthy_workers: &HealthyWorkers) -> Vec<Job<I, O>> {
        let mut cur = self.current.lock();
        cur.taken_over = true;
        self.set_healthy(false, healthy_workers);
        std::mem::take(&mut cur.jobs)
    }

    /// Sets this worker's health and keeps its group's count of healthy
    /// workers in step (only a change moves the count).
    pub(crate) fn set_healthy(&self, healthy: bool, healthy_workers: &HealthyWorkers) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            if healthy {
                healthy_workers.0.fetch_add(1, Ordering::AcqRel);
            } else {
                healthy_workers.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Takes over the worker only if the call that started at `started`
    /// (clock nanoseconds) is still running: how the supervisor replaces a
    /// stuck worker without touching one whose call just ended.
    pub(crate) fn take_over_stuck(
        &self,
        started: u64,
        healthy_workers: &HealthyWorkers,
    ) -> Vec<Job<I, O>> {
        let mut cur = self.current.lock();
        if cur.jobs.is_empty() || self.busy_since.load(Ordering::Acquire) != started {
            return Vec::new();
        }
        cur.taken_over = true;
        self.set_healthy(false, healthy_workers);
        std::mem::take(&mut cur.jobs)
    }

    pub(super) fn set_healthy_unless_taken_over(&self, healthy_workers: &HealthyWorkers) {
        let cur = self.current.lock();
        if !cur.taken_over {
            self.set_healthy(true, healthy_workers);
        }
    }

    /// This worker's stats; `now` in clock nanoseconds since the pool's epoch.
    pub(crate) fn stats(&self, now: u64) -> WorkerStats {
        let ms = |since: u64| now.saturating_sub(since) as f64 / 1e6;
        let busy = self.busy_since.load(Ordering::Relaxed);
        WorkerStats {
            parked: self.parked.load(Ordering::Relaxed),
            healthy: self.healthy.load(Ordering::Relaxed),
            heartbeat_age_ms: ms(self.heartbeat.load(Ordering::Relaxed)),
            busy_ms: (busy != 0).then(|| ms(busy)),
            index: self.index,
            core: self.core.map(|c| c.id),
            shares_core: self.shares_core,
            pinned: self.pinned.load(Ordering::Relaxed),
            session_builds: self.session_builds.get(),
            session_build_failures: self.build_failures.get(),
            panics: self.panics.get(),
            counts: self.counts.snapshot(),
            latency: Latencies::snapshot([&self.latency]),
        }
    }
}

/// The requests a worker is running, and whether it was taken over. Both
/// sit under one lock, so a take-over either finds the requests (and answers
/// for them) or the worker sees `taken_over` before starting them (and does
/// not run them): never neither, never both.
struct Current<I, O> {
    jobs: Vec<Job<I, O>>,
    taken_over: bool,
}
