//! The worker: a pinned thread that owns one session and runs requests.
//!
//! Life of a worker: pin to its core, build its session through the group's
//! factory and run the warmup calls, report ready, then loop: take the next
//! request by strict priority (`exec::queue`), run it inside
//! `catch_unwind`, and publish the outcome through the request's slot
//! (`core::handle`). A failed attempt is retried through the supervisor
//! or dead-lettered (`exec::retries`). A panic fails the attempt and
//! rebuilds the session, since a session that panicked may be broken.

#![forbid(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::group::{Group, ReadyTx};
use super::pinning;
use super::queue::Receiving;
use super::retries::Retries;
use super::worker_state::WorkerState;
use crate::core::{Event, Job, Outcome, RunContext, Session, SessionError, Timebase, WorkerInfo};

/// What a worker of one group works with: its group, its generation's retry
/// path, and the clock.
pub(crate) struct WorkerCtx<I, O> {
    pub(super) group: Arc<Group<I, O>>,
    retries: Arc<Retries<I, O>>,
    time: Timebase,
}

impl<I, O> WorkerCtx<I, O> {
    pub(crate) fn new(
        group: Arc<Group<I, O>>,
        retries: Arc<Retries<I, O>>,
        time: Timebase,
    ) -> Self {
        Self {
            group,
            retries,
            time,
        }
    }
}

impl<I, O> Clone for WorkerCtx<I, O> {
    fn clone(&self) -> Self {
        Self {
            group: Arc::clone(&self.group),
            retries: Arc::clone(&self.retries),
            time: self.time.clone(),
        }
    }
}

/// Everything a worker thread starts with.
pub(crate) struct WorkerStart<I, O> {
    pub(super) ctx: WorkerCtx<I, O>,
    pub(super) me: Arc<WorkerState<I, O>>,
    pub(super) control: Receiver<()>,
    /// Told once (with the group and worker index) whether the first
    /// session was built; `None` for a replacement worker, which keeps
    /// trying to build its session instead of giving up.
    pub(super) ready: Option<ReadyTx>,
    /// Dropped when the thread exits, so shutdown can wait with a deadline.
    pub(super) _exited: Sender<()>,
}

pub(crate) fn run<I: Send + Sync + 'static, O: Send + 'static>(start: WorkerStart<I, O>) {
    let WorkerStart {
        ctx,
        me,
        control,
        ready,
        _exited,
    } = start;
    let group = &*ctx.group;
    if let Some(core) = me.core() {
        let ok = pinning::pin_current(core);
        me.set_pinned(ok);
        if !ok {
            log::warn!(
                "worker {} of group `{}`: pinning to core {} failed; running unpinned",
                me.index(),
                group.name(),
                core.id
            );
        }
    }
    let first = match ready {
        Some(ready) => {
            let built = build_session(&ctx, &me);
            let report = built.as_ref().map(|_| ()).map_err(Clone::clone);
            let _ = ready.send((group.index(), me.index(), report));
            built.ok()
        }
        None => rebuild_session(&ctx, &me),
    };
    let Some(mut session) = first else { return };

    let mut rx = Receiving::new(
        group.levels().receivers(),
        &control,
        group.config().spin_before_park,
    );
    loop {
        let Some(job) = rx.take(me.stop_flag(), me.park_reasons()) else {
            if me.should_stop() {
                return;
            }
            // Parked (memory pressure or load scaling): give the session's
            // memory back and sleep until woken, then build a fresh one.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(session)));
            me.set_healthy(false, group.healthy_workers());
            me.set_parked(true);
            while !me.park_reasons().none() {
                if me.should_stop() || control.recv().is_err() {
                    return;
                }
            }
            // Parked until the fresh session is built: the stats say
            // "parked" exactly while the worker holds no session.
            match rebuild_session(&ctx, &me) {
                Some(s) => session = s,
                None => return,
            }
            me.set_parked(false);
            continue;
        };
        match run_job(&ctx, &me, session.as_mut(), job) {
            Next::Continue => {}
            Next::TakenOver => return,
            Next::Rebuild => {
                // The old session may be broken: drop it (a panicking drop is
                // contained too) and build a fresh one before taking more work.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(session)));
                match rebuild_session(&ctx, &me) {
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
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
) -> Result<Box<dyn Session<I, O>>, SessionError> {
    let group = &*ctx.group;
    let info = WorkerInfo {
        group: group.name().to_string(),
        worker: me.index(),
        core: me.core().map(|c| c.id),
        rebuild: me.session_builds(),
    };
    let built = catch_unwind(AssertUnwindSafe(|| {
        let mut s = group.factory().create(&info)?;
        for _ in 0..group.config().warmup {
            s.warmup()?;
        }
        Ok(s)
    }));
    let result = built.unwrap_or_else(|p| Err(SessionError::from_panic(&*p)));
    match &result {
        Ok(_) => {
            me.session_built(ctx.time.nanos());
            // Under the take-over lock, so a worker taken over meanwhile
            // does not count itself healthy again.
            me.set_healthy_unless_taken_over(group.healthy_workers());
        }
        Err(e) => {
            me.build_failed();
            me.set_healthy(false, group.healthy_workers());
            log::warn!(
                "group `{}` worker {}: session build failed: {e}",
                group.name(),
                me.index()
            );
        }
    }
    result
}

/// Builds a session, backing off between failed builds. `None` if the
/// worker was told to stop first.
#[cold]
fn rebuild_session<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
) -> Option<Box<dyn Session<I, O>>> {
    let mut failures = 0u32;
    loop {
        if me.should_stop() {
            return None;
        }
        match build_session(ctx, me) {
            Ok(s) => return Some(s),
            Err(_) => {
                failures += 1;
                let wait = ctx
                    .retries
                    .policy()
                    .backoff(failures)
                    .max(Duration::from_millis(1));
                std::thread::sleep(wait);
            }
        }
    }
}

/// Runs one request to an outcome (or a scheduled retry).
fn run_job<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    session: &mut dyn Session<I, O>,
    mut job: Job<I, O>,
) -> Next {
    let group = &*ctx.group;
    let taken = Instant::now();
    if job.is_expired(taken) {
        if job.slot().resolve_queued(Outcome::Expired) {
            me.count(Event::Expired);
        } else {
            me.count(Event::Cancelled);
        }
        group.breaker().release_probe(job.is_probe());
        return Next::Continue;
    }
    if !job.slot().start() {
        // Cancelled while queued: already resolved and counted by the canceller.
        me.count(Event::Cancelled);
        group.breaker().release_probe(job.is_probe());
        return Next::Continue;
    }
    // The copy `begin` keeps for a take-over must carry this attempt's number.
    job.begin_attempt();
    if !me.begin(&job) {
        // Taken over between calls: this request is not ours to run. It goes
        // back to be routed again (or is cancelled if the pool is stopping).
        job.undo_attempt();
        if job.slot().requeue() {
            ctx.retries.schedule(taken, job);
        }
        return Next::TakenOver;
    }
    me.count(Event::Started);
    // Load scaling reads this average as soon as the request is taken, not
    // when its (possibly long) call ends.
    let queue_wait = taken.saturating_duration_since(job.enqueued());
    me.note_queue_wait(u64::try_from(queue_wait.as_nanos()).unwrap_or(u64::MAX));
    me.call_started(ctx.time.nanos_at(taken));

    let run = RunContext {
        cancel: job.slot().cancel_flag(),
        attempt: job.attempts(),
        deadline: job.deadline(),
        request_id: job.slot().id(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| session.run(job.input(), &run)));
    let done = Instant::now();

    me.call_ended(ctx.time.nanos_at(done));
    let taken_over = me.end();
    let service = done - taken;

    let (error, next) = match result {
        Ok(Ok(output)) => {
            me.latency()
                .record(queue_wait, service, Some(done - job.submitted()));
            // The breaker hears of the success before the caller does, so a
            // caller that sees its result also sees the breaker it moved.
            group.breaker().record_call(job.is_probe(), service, false);
            // Whichever attempt finishes first answers the request; a
            // taken-over call may still be the first. Counted before the
            // caller can see the result.
            if !job
                .slot()
                .resolve_then(Outcome::Completed(output), || me.count(Event::Completed))
            {
                ctx.retries.ledger().late_result();
            }
            return if taken_over {
                Next::TakenOver
            } else {
                Next::Continue
            };
        }
        Ok(Err(error)) => (error, Next::Continue),
        Err(payload) => {
            me.panicked();
            let error = SessionError::from_panic(&*payload);
            log::warn!(
                "group `{}` worker {}: session panicked: {}",
                group.name(),
                me.index(),
                error.message()
            );
            (error, Next::Rebuild)
        }
    };
    me.latency().record(queue_wait, service, None);
    if taken_over {
        // Someone else answers for this request now.
        me.count(Event::FailedAttempt);
        ctx.retries.ledger().late_result();
        return Next::TakenOver;
    }
    ctx.retries.failed_attempt(group, me, job, error, service);
    next
}
