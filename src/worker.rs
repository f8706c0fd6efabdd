//! The worker: a pinned thread that owns one session and runs requests.
//!
//! Life of a worker: pin to its core, build its session through the group's
//! factory and run the warmup calls, report ready, then loop: take the next
//! request by strict priority ([`crate::queue`]), run it inside
//! `catch_unwind`, and publish the outcome through the request's slot
//! ([`crate::handle`]). A failed attempt is retried through the supervisor
//! or dead-lettered ([`crate::retry`]). A panic fails the attempt and
//! rebuilds the session, since a session that panicked may be broken.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::handle::{Outcome, Slot};
use crate::pinning;
use crate::pool::Shared;
use crate::queue::Receiving;
use crate::request::Job;
use crate::retry;
use crate::session::{RunContext, Session, SessionError, WorkerInfo};
use crate::stats::{Counter, Counts, Latencies, WorkerStats};

/// What a worker shares with the rest of the pool: its identity, its
/// counters, its stop flag and the request it is running.
pub(crate) struct WorkerShared<O> {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub pinned: AtomicBool,
    pub stop: AtomicBool,
    pub counts: Counts,
    pub latency: Latencies,
    pub session_builds: Counter,
    pub build_failures: Counter,
    pub panics: Counter,
    /// The request being run, so shutdown can resolve a call that never returns.
    current: Mutex<Current<O>>,
    /// Nanoseconds since the pool's epoch at which the current call started; 0 when idle.
    pub busy_since: AtomicU64,
}

impl<O> WorkerShared<O> {
    pub(crate) fn new(index: usize, core: Option<core_affinity::CoreId>) -> Self {
        Self {
            index,
            core,
            pinned: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counts: Counts::default(),
            latency: Latencies::default(),
            session_builds: Counter::default(),
            build_failures: Counter::default(),
            panics: Counter::default(),
            current: Mutex::new(Current {
                slot: None,
                detached: false,
            }),
            busy_since: AtomicU64::new(0),
        }
    }

    /// Records the request this worker starts running. False if the worker
    /// was detached by shutdown: it must not run the request.
    fn begin(&self, slot: &Arc<Slot<O>>) -> bool {
        let mut cur = self.current.lock();
        if cur.detached {
            return false;
        }
        cur.slot = Some(Arc::clone(slot));
        true
    }

    fn end(&self) {
        self.current.lock().slot = None;
    }

    /// Marks the worker detached and returns the request it is running, so
    /// shutdown can resolve it; the worker will start no other.
    pub(crate) fn detach(&self) -> Option<Arc<Slot<O>>> {
        let mut cur = self.current.lock();
        cur.detached = true;
        cur.slot.take()
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        WorkerStats {
            index: self.index,
            core: self.core.map(|c| c.id),
            pinned: self.pinned.load(Ordering::Relaxed),
            session_builds: self.session_builds.get(),
            session_build_failures: self.build_failures.get(),
            panics: self.panics.get(),
            counts: self.counts.snapshot(),
            latency: Latencies::snapshot([&self.latency]),
        }
    }
}

/// The request a worker is running, and whether shutdown gave up on the
/// worker. Both sit under one lock so that shutdown either sees the request
/// (and resolves it) or the worker sees `detached` (and resolves it itself):
/// never neither.
struct Current<O> {
    slot: Option<Arc<Slot<O>>>,
    detached: bool,
}

/// Everything a worker thread starts with.
pub(crate) struct WorkerStart<I, O> {
    pub shared: Arc<Shared<I, O>>,
    pub group: usize,
    pub me: Arc<WorkerShared<O>>,
    pub control: Receiver<()>,
    /// Told once (with the group and worker index) whether the first session was built.
    pub ready: Sender<(usize, usize, Result<(), SessionError>)>,
    /// Dropped when the thread exits, so shutdown can wait with a deadline.
    pub _exited: Sender<()>,
}

pub(crate) fn run<I: Send + 'static, O: Send + 'static>(start: WorkerStart<I, O>) {
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
    let mut session = match build_session(&shared, gi, &me) {
        Ok(s) => {
            let _ = ready.send((gi, me.index, Ok(())));
            s
        }
        Err(e) => {
            let _ = ready.send((gi, me.index, Err(e)));
            return;
        }
    };
    drop(ready);

    let mut rx = Receiving::new(
        group.levels.receivers(),
        &control,
        group.config.spin_before_park,
    );
    while let Some(job) = rx.take(&me.stop) {
        if let Err(Panicked) = run_job(&shared, gi, &me, session.as_mut(), job) {
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

struct Panicked;

/// Builds and warms a session, containing panics in the factory.
fn build_session<I: 'static, O: 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<O>,
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
        Ok(_) => me.session_builds.inc(),
        Err(e) => {
            me.build_failures.inc();
            log::warn!(
                "group `{}` worker {}: session build failed: {e}",
                group.name,
                me.index
            );
        }
    }
    result
}

/// Rebuilds a session after a panic, backing off between failed builds.
/// `None` if the worker was told to stop first.
#[cold]
fn rebuild_session<I: 'static, O: 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<O>,
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
fn run_job<I: Send + 'static, O: Send + 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<O>,
    session: &mut dyn Session<I, O>,
    mut job: Job<I, O>,
) -> Result<(), Panicked> {
    let taken = Instant::now();
    if job.is_expired(taken) {
        if job.slot.resolve_queued(Outcome::Expired) {
            me.counts.expired.inc();
        } else {
            me.counts.cancelled.inc();
        }
        return Ok(());
    }
    if !job.slot.start() {
        // Cancelled while queued: already resolved and counted by the canceller.
        me.counts.cancelled.inc();
        return Ok(());
    }
    if !me.begin(&job.slot) {
        job.slot
            .resolve(Outcome::Cancelled(crate::handle::CancelReason::Shutdown));
        me.counts.cancelled.inc();
        return Ok(());
    }
    me.counts.started.inc();
    job.attempts += 1;
    me.busy_since
        .store(shared.epoch_nanos(taken), Ordering::Release);

    let ctx = RunContext {
        cancel: job.slot.cancel_flag(),
        attempt: job.attempts,
        deadline: job.deadline,
        request_id: job.slot.id(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| session.run(&job.input, &ctx)));
    let done = Instant::now();

    me.busy_since.store(0, Ordering::Release);
    me.end();
    let queue_wait = taken.saturating_duration_since(job.enqueued);
    let service = done - taken;

    match result {
        Ok(Ok(output)) => {
            me.latency
                .record(queue_wait, service, Some(done - job.submitted));
            if job.slot.resolve(Outcome::Completed(output)) {
                me.counts.completed.inc();
            } else {
                shared.ledger.late_results.inc();
            }
            Ok(())
        }
        Ok(Err(error)) => {
            me.latency.record(queue_wait, service, None);
            retry::failed_attempt(shared, gi, me, job, error);
            Ok(())
        }
        Err(payload) => {
            me.latency.record(queue_wait, service, None);
            me.panics.inc();
            let error = SessionError::from_panic(&*payload);
            log::warn!(
                "group `{}` worker {}: session panicked: {}",
                shared.groups[gi].name,
                me.index,
                error.message()
            );
            retry::failed_attempt(shared, gi, me, job, error);
            Err(Panicked)
        }
    }
}
