//! The worker: a pinned thread that owns one session and runs requests.
//!
//! Life of a worker: pin to its core, build its session through the group's
//! factory and run the warmup calls, report ready, then loop: take the next
//! request by strict priority ([`crate::queue`]), run it inside
//! `catch_unwind`, and publish the outcome through the request's slot
//! ([`crate::handle`]). A failed attempt is retried through the supervisor
//! or dead-lettered ([`crate::retry`]). A panic fails the attempt and
//! rebuilds the session, since a session that panicked may be broken.

#![forbid(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::handle::Outcome;
use crate::pinning;
use crate::pool::Shared;
use crate::queue::Receiving;
use crate::request::Job;
use crate::retry;
use crate::session::{RunContext, Session, SessionError, WorkerInfo};
use crate::stats::{Counter, Counts, Latencies, WorkerStats};

/// What a worker shares with the rest of the pool: its identity, its
/// counters, its stop flag and the request it is running.
pub(crate) struct WorkerShared<I, O> {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    /// Another worker of the pool is given the same core (more workers
    /// than cores).
    pub shares_core: bool,
    pub pinned: AtomicBool,
    pub stop: AtomicBool,
    pub counts: Counts,
    pub latency: Latencies,
    pub session_builds: Counter,
    pub build_failures: Counter,
    pub panics: Counter,
    /// The request being run, so a stuck call can be taken over.
    current: Mutex<Current<I, O>>,
    /// Clock nanoseconds since the pool's epoch at which the current call
    /// started; 0 when idle. The heartbeat the supervisor reads.
    pub busy_since: AtomicU64,
    /// Clock nanoseconds of the worker's last sign of life (a call started
    /// or ended, or its session built).
    pub heartbeat: AtomicU64,
    /// False while the worker has no working session (building, or its
    /// builds fail, or parked), or once it is taken over.
    pub healthy: AtomicBool,
    /// Why the worker should be parked: [`PARK_PRESSURE`] and/or
    /// [`PARK_IDLE`] bits; 0 to run.
    pub park: AtomicU8,
    /// True from parking until the session is rebuilt (no session held).
    pub parked: AtomicBool,
    /// Moving average of this worker's queue waits, in nanoseconds.
    pub queue_wait_ewma: AtomicU64,
}

/// Parked to free memory under pressure.
pub(crate) const PARK_PRESSURE: u8 = 1;
/// Parked by load scaling while idle.
pub(crate) const PARK_IDLE: u8 = 2;

impl<I, O> WorkerShared<I, O> {
    pub(crate) fn new(
        index: usize,
        core: Option<core_affinity::CoreId>,
        shares_core: bool,
    ) -> Self {
        Self {
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
            current: Mutex::new(Current {
                job: None,
                taken_over: false,
            }),
            busy_since: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            park: AtomicU8::new(0),
            parked: AtomicBool::new(false),
            queue_wait_ewma: AtomicU64::new(0),
        }
    }

    /// True when the worker runs (is not parked or asked to park).
    pub(crate) fn is_active(&self) -> bool {
        self.park.load(Ordering::Acquire) == 0
    }

    /// Records the request this worker starts running. False if the worker
    /// was taken over: it must not run the request.
    fn begin(&self, job: &Job<I, O>) -> bool {
        let mut cur = self.current.lock();
        if cur.taken_over {
            return false;
        }
        cur.job = Some(job.clone());
        true
    }

    /// Clears the running request; true if the worker was taken over
    /// meanwhile (its request now belongs to someone else).
    fn end(&self) -> bool {
        let mut cur = self.current.lock();
        cur.job = None;
        cur.taken_over
    }

    /// Takes over the worker (shutdown giving up on it, or the supervisor
    /// replacing it as stuck): returns the request it is running, which the
    /// caller now answers for. The worker starts no other request and
    /// treats the result of its current call as late.
    pub(crate) fn take_over(&self, healthy_workers: &AtomicUsize) -> Option<Job<I, O>> {
        let mut cur = self.current.lock();
        cur.taken_over = true;
        self.set_healthy(false, healthy_workers);
        cur.job.take()
    }

    /// Sets this worker's health and keeps its group's count of healthy
    /// workers in step (only a change moves the count).
    pub(crate) fn set_healthy(&self, healthy: bool, healthy_workers: &AtomicUsize) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            if healthy {
                healthy_workers.fetch_add(1, Ordering::AcqRel);
            } else {
                healthy_workers.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Takes over the worker only if the call that started at `started`
    /// (clock nanoseconds) is still running: how the supervisor replaces a
    /// stuck worker without touching one whose call just ended.
    pub(crate) fn take_over_stuck(
        &self,
        started: u64,
        healthy_workers: &AtomicUsize,
    ) -> Option<Job<I, O>> {
        let mut cur = self.current.lock();
        if cur.job.is_none() || self.busy_since.load(Ordering::Acquire) != started {
            return None;
        }
        cur.taken_over = true;
        self.set_healthy(false, healthy_workers);
        cur.job.take()
    }

    fn set_healthy_unless_taken_over(&self, healthy_workers: &AtomicUsize) {
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

/// The request a worker is running, and whether it was taken over. Both sit
/// under one lock, so a take-over either finds the request (and answers for
/// it) or the worker sees `taken_over` before starting it (and does not run
/// it): never neither, never both.
struct Current<I, O> {
    job: Option<Job<I, O>>,
    taken_over: bool,
}

/// Everything a worker thread starts with.
pub(crate) struct WorkerStart<I, O> {
    pub shared: Arc<Shared<I, O>>,
    pub group: usize,
    pub me: Arc<WorkerShared<I, O>>,
    pub control: Receiver<()>,
    /// Told once (with the group and worker index) whether the first
    /// session was built; `None` for a replacement worker, which keeps
    /// trying to build its session instead of giving up.
    pub ready: Option<crate::group::ReadyTx>,
    /// Dropped when the thread exits, so shutdown can wait with a deadline.
    pub _exited: Sender<()>,
}

pub(crate) fn run<I: Send + Sync + 'static, O: Send + 'static>(start: WorkerStart<I, O>) {
    let WorkerStart {
        shared,
        group: gi,
        me,
        control,
        ready,
        _exited,
    } = start;
    if let Some(core) = me.core {
        let ok = pinning::pin_current(core);
        me.pinned.store(ok, Ordering::Relaxed);
        if !ok {
            log::warn!(
                "worker {} of group `{}`: pinning to core {} failed; running unpinned",
                me.index,
                shared.groups[gi].name,
                core.id
            );
        }
    }
    let group = &shared.groups[gi];
    let first = match ready {
        Some(ready) => {
            let built = build_session(&shared, gi, &me);
            let report = built.as_ref().map(|_| ()).map_err(Clone::clone);
            let _ = ready.send((gi, me.index, report));
            built.ok()
        }
        None => rebuild_session(&shared, gi, &me),
    };
    let Some(mut session) = first else { return };

    let mut rx = Receiving::new(
        group.levels.receivers(),
        &control,
        group.config.spin_before_park,
    );
    loop {
        let Some(job) = rx.take(&me.stop, &me.park) else {
            if me.stop.load(Ordering::Acquire) {
                return;
            }
            // Parked (memory pressure or load scaling): give the session's
            // memory back and sleep until woken, then build a fresh one.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(session)));
            me.set_healthy(false, &group.healthy_workers);
            me.parked.store(true, Ordering::Release);
            while me.park.load(Ordering::Acquire) != 0 {
                if me.stop.load(Ordering::Acquire) || control.recv().is_err() {
                    return;
                }
            }
            // Parked until the fresh session is built: the stats say
            // "parked" exactly while the worker holds no session.
            match rebuild_session(&shared, gi, &me) {
                Some(s) => session = s,
                None => return,
            }
            me.parked.store(false, Ordering::Release);
            continue;
        };
        match run_job(&shared, gi, &me, session.as_mut(), job) {
            Next::Continue => {}
            Next::TakenOver => return,
            Next::Rebuild => {
                // The old session may be broken: drop it (a panicking drop is
                // contained too) and build a fresh one before taking more work.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(session)));
                match rebuild_session(&shared, gi, &me) {
                    Some(s) => session = s,
                    None => return,
                }
            }
        }
    }
}

/// What the worker does after a request.
enum Next {
    Continue,
    /// The session panicked: rebuild it.
    Rebuild,
    /// The worker was taken over while in the call: exit.
    TakenOver,
}

/// Builds and warms a session, containing panics in the factory.
fn build_session<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<I, O>,
) -> Result<Box<dyn Session<I, O>>, SessionError> {
    let group = &shared.groups[gi];
    let info = WorkerInfo {
        group: group.name.to_string(),
        worker: me.index,
        core: me.core.map(|c| c.id),
        rebuild: me.session_builds.get(),
    };
    let built = catch_unwind(AssertUnwindSafe(|| {
        let mut s = group.factory.create(&info)?;
        for _ in 0..group.config.warmup {
            s.warmup()?;
        }
        Ok(s)
    }));
    let result = built.unwrap_or_else(|p| Err(SessionError::from_panic(&*p)));
    match &result {
        Ok(_) => {
            me.session_builds.inc();
            me.heartbeat.store(shared.clock_nanos(), Ordering::Relaxed);
            // Under the take-over lock, so a worker taken over meanwhile
            // does not count itself healthy again.
            me.set_healthy_unless_taken_over(&group.healthy_workers);
        }
        Err(e) => {
            me.build_failures.inc();
            me.set_healthy(false, &group.healthy_workers);
            log::warn!(
                "group `{}` worker {}: session build failed: {e}",
                group.name,
                me.index
            );
        }
    }
    result
}

/// Builds a session, backing off between failed builds. `None` if the
/// worker was told to stop first.
#[cold]
fn rebuild_session<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<I, O>,
) -> Option<Box<dyn Session<I, O>>> {
    let mut failures = 0u32;
    loop {
        if me.stop.load(Ordering::Acquire) {
            return None;
        }
        match build_session(shared, gi, me) {
            Ok(s) => return Some(s),
            Err(_) => {
                failures += 1;
                let wait = shared.retry.backoff(failures).max(Duration::from_millis(1));
                std::thread::sleep(wait);
            }
        }
    }
}

/// Runs one request to an outcome (or a scheduled retry).
fn run_job<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<I, O>,
    session: &mut dyn Session<I, O>,
    mut job: Job<I, O>,
) -> Next {
    let group = &shared.groups[gi];
    let taken = Instant::now();
    if job.is_expired(taken) {
        if job.slot.resolve_queued(Outcome::Expired) {
            me.counts.expired.inc();
        } else {
            me.counts.cancelled.inc();
        }
        group.breaker.release_probe(job.probe);
        return Next::Continue;
    }
    if !job.slot.start() {
        // Cancelled while queued: already resolved and counted by the canceller.
        me.counts.cancelled.inc();
        group.breaker.release_probe(job.probe);
        return Next::Continue;
    }
    // The copy `begin` keeps for a take-over must carry this attempt's number.
    job.attempts += 1;
    if !me.begin(&job) {
        // Taken over between calls: this request is not ours to run. It goes
        // back to be routed again (or is cancelled if the pool is stopping).
        job.attempts -= 1;
        if job.slot.requeue() {
            shared.schedule_retry(taken, job);
        }
        return Next::TakenOver;
    }
    me.counts.started.inc();
    // Load scaling reads this average as soon as the request is taken, not
    // when its (possibly long) call ends.
    let qw =
        u64::try_from(taken.saturating_duration_since(job.enqueued).as_nanos()).unwrap_or(u64::MAX);
    let ewma = me.queue_wait_ewma.load(Ordering::Relaxed);
    me.queue_wait_ewma
        .store(ewma - ewma / 8 + qw / 8, Ordering::Relaxed);
    let started = shared.clock_nanos_at(taken);
    me.busy_since.store(started, Ordering::Release);
    me.heartbeat.store(started, Ordering::Relaxed);

    let ctx = RunContext {
        cancel: job.slot.cancel_flag(),
        attempt: job.attempts,
        deadline: job.deadline,
        request_id: job.slot.id(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| session.run(&job.input, &ctx)));
    let done = Instant::now();

    me.busy_since.store(0, Ordering::Release);
    me.heartbeat
        .store(shared.clock_nanos_at(done), Ordering::Relaxed);
    let taken_over = me.end();
    let queue_wait = taken.saturating_duration_since(job.enqueued);
    let service = done - taken;

    let (error, next) = match result {
        Ok(Ok(output)) => {
            me.latency
                .record(queue_wait, service, Some(done - job.submitted));
            // The breaker hears of the success before the caller does, so a
            // caller that sees its result also sees the breaker it moved.
            group.breaker.record_success(job.probe);
            // Whichever attempt finishes first answers the request; a
            // taken-over call may still be the first.
            // Counted before the caller can see the result.
            if !job
                .slot
                .resolve_then(Outcome::Completed(output), || me.counts.completed.inc())
            {
                shared.ledger.late_results.inc();
            }
            return if taken_over {
                Next::TakenOver
            } else {
                Next::Continue
            };
        }
        Ok(Err(error)) => (error, Next::Continue),
        Err(payload) => {
            me.panics.inc();
            let error = SessionError::from_panic(&*payload);
            log::warn!(
                "group `{}` worker {}: session panicked: {}",
                group.name,
                me.index,
                error.message()
            );
            (error, Next::Rebuild)
        }
    };
    me.latency.record(queue_wait, service, None);
    if taken_over {
        // Someone else answers for this request now.
        me.counts.failed_attempts.inc();
        shared.ledger.late_results.inc();
        return Next::TakenOver;
    }
    retry::failed_attempt(shared, gi, me, job, error);
    next
}
