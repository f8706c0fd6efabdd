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
use crate::config::BatchingConfig;
use crate::core::trace;
use crate::core::{
    saturating_add, BatchItem, ErrorKind, Event, Job, Outcome, RunContext, Session, SessionError,
    Timebase, WorkerInfo,
};

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
            tracing::warn!(
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
        group.levels(),
        &control,
        group.config().spin_before_park,
        me.index(),
    );
    let batching = group.config().batching.clone();
    // A request taken while filling a batch that could not join it: it is
    // running (started) and goes first next time round.
    let mut carry: Option<Job<I, O>> = None;
    loop {
        let next = if let Some(first) = carry.take() {
            run_batch(&ctx, &me, session.as_mut(), first, &mut carry, &batching)
        } else {
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
            if batching.enabled() {
                match admit(&ctx, &me, job, Instant::now()) {
                    Some(first) => {
                        run_batch(&ctx, &me, session.as_mut(), first, &mut carry, &batching)
                    }
                    None => Next::Continue,
                }
            } else {
                run_job(&ctx, &me, session.as_mut(), job)
            }
        };
        match next {
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
            tracing::warn!(
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

/// Takes a request off the queue to run it: `None` if it expired (resolved
/// here) or was cancelled while queued; otherwise it is now `Running`.
fn admit<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    job: Job<I, O>,
    now: Instant,
) -> Option<Job<I, O>> {
    let group = &*ctx.group;
    if job.is_expired(now) {
        if job.slot().resolve_queued(Outcome::Expired) {
            me.count(Event::Expired);
        } else {
            me.count(Event::Cancelled);
        }
        group.breaker().release_probe(job.is_probe());
        ctx.retries.done_with(job);
        return None;
    }
    if !job.slot().start() {
        // Cancelled while queued: already resolved and counted by the canceller.
        me.count(Event::Cancelled);
        group.breaker().release_probe(job.is_probe());
        ctx.retries.done_with(job);
        return None;
    }
    Some(job)
}

/// Runs one request to an outcome (or a scheduled retry).
fn run_job<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    session: &mut dyn Session<I, O>,
    job: Job<I, O>,
) -> Next {
    let taken = Instant::now();
    match admit(ctx, me, job, taken) {
        Some(job) => run_one(ctx, me, session, job, taken),
        None => Next::Continue,
    }
}

/// Fills a batch from `first` (already running) and runs it. A request
/// taken that cannot join (another batch key) is left in `carry`.
///
/// The batch takes what is queued at `first`'s level or above, never below,
/// with the same [`SessionFactory::batch_key`](crate::SessionFactory). It
/// waits for more only when waiting can pay: the batch already has two
/// requests or more (requests are arriving faster than they are served),
/// no other worker of the group is idle (one would take a new request at
/// once), no member is of a higher level than the first (a higher request
/// that joined runs now), its size is not a preferred one, and not past
/// `max_queue_delay` or any member's deadline. So a lone request at light
/// load runs at once.
fn run_batch<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    session: &mut dyn Session<I, O>,
    first: Job<I, O>,
    carry: &mut Option<Job<I, O>>,
    cfg: &BatchingConfig,
) -> Next {
    let group = &*ctx.group;
    let start = Instant::now();
    let level = first.priority();
    let key = group.factory().batch_key(first.input());
    let mut until = saturating_add(start, cfg.max_queue_delay);
    if let Some(d) = first.deadline() {
        until = until.min(d);
    }
    let mut batch = vec![first];
    let max = cfg.max_batch_size as usize;
    while key.is_some() && batch.len() < max {
        if let Some(job) = group.levels().try_take_at_least(level, me.index()) {
            let Some(job) = admit(ctx, me, job, Instant::now()) else {
                continue;
            };
            if group.factory().batch_key(job.input()) != key {
                *carry = Some(job);
                break;
            }
            if let Some(d) = job.deadline() {
                until = until.min(d);
            }
            batch.push(job);
            continue;
        }
        let worth_waiting = batch.len() >= 2
            && batch.iter().all(|j| j.priority() == level)
            && !cfg.preferred_batch_sizes.contains(&(batch.len() as u32))
            && !me.should_stop()
            && !group.has_idle_worker_besides(me);
        if !worth_waiting || !group.levels().wait_at_least(level, until) {
            break;
        }
    }
    if let Some(b) = me.batches() {
        b.record(batch.len(), start.elapsed());
    }
    if batch.len() == 1 {
        let job = batch.pop().expect("one job");
        return run_one(ctx, me, session, job, Instant::now());
    }
    run_many(ctx, me, session, batch)
}

/// Runs a batch of two or more running requests in one call.
fn run_many<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    session: &mut dyn Session<I, O>,
    mut batch: Vec<Job<I, O>>,
) -> Next {
    let group = &*ctx.group;
    let n = batch.len();
    let taken = Instant::now();
    for job in &mut batch {
        job.begin_attempt();
    }
    if !me.begin(&batch) {
        // Taken over between calls: these requests are not ours to run.
        for mut job in batch {
            job.undo_attempt();
            if job.slot().requeue() {
                ctx.retries.schedule(taken, job);
            }
        }
        return Next::TakenOver;
    }
    for job in &mut batch {
        me.count(Event::Started);
        let waited = taken.saturating_duration_since(job.enqueued());
        me.note_queue_wait(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
        job.left_queue();
    }
    me.call_started(ctx.time.nanos_at(taken));
    let items: Vec<BatchItem<'_, I>> = batch
        .iter()
        .map(|job| BatchItem {
            input: &**job.input(),
            ctx: RunContext {
                cancel: job.slot().cancel_flag(),
                attempt: job.attempts(),
                deadline: job.deadline(),
                request_id: job.slot().id(),
                batch: n,
            },
        })
        .collect();
    let spans = batch.iter().map(|j| j.slot().span());
    let attempt = batch.first().map_or(0, |j| j.attempts());
    let result = {
        let _run = trace::run(ctx.group.name(), me.index(), attempt, spans, n);
        catch_unwind(AssertUnwindSafe(|| session.run_batch(&items)))
    };
    drop(items);
    let done = Instant::now();
    me.call_ended(ctx.time.nanos_at(done));
    let taken_over = me.end();
    let service = done - taken;

    let mut next = Next::Continue;
    let whole_call_failed = match result {
        Ok(Ok(outs)) if outs.len() == n => {
            group.note_service(service, n);
            for (job, out) in batch.into_iter().zip(outs) {
                finish(ctx, me, job, out, taken, service, n, taken_over);
            }
            return if taken_over { Next::TakenOver } else { next };
        }
        Ok(Ok(outs)) => SessionError::transient(format!(
            "the session returned {} results for a batch of {n}",
            outs.len()
        )),
        Ok(Err(e)) if e.kind() == ErrorKind::Permanent && !taken_over => {
            // The call failed as one, for good: one request may be at
            // fault, or the batch as such. Each runs alone to find out (the
            // same attempt), so a bad input fails only its own request.
            tracing::debug!(
                "group `{}` worker {}: a batch of {n} failed ({e}); running each alone",
                group.name(),
                me.index()
            );
            return run_singly(ctx, me, session, batch);
        }
        Ok(Err(e)) => e,
        Err(payload) => {
            me.panicked();
            next = Next::Rebuild;
            let e = SessionError::from_panic(&*payload);
            tracing::warn!(
                "group `{}` worker {}: session panicked in a batch of {n}: {}",
                group.name(),
                me.index(),
                e.message()
            );
            e
        }
    };
    for job in batch {
        // A cancel of one request does not cancel its batch-mates.
        let error = if whole_call_failed.kind() == ErrorKind::Cancelled
            && !job.slot().is_cancel_requested()
        {
            SessionError::transient("a batch-mate's cancel stopped the call")
        } else {
            whole_call_failed.clone()
        };
        finish(ctx, me, job, Err(error), taken, service, n, taken_over);
    }
    if taken_over {
        Next::TakenOver
    } else {
        next
    }
}

/// Runs the requests of a failed batch one by one, as the same attempt.
fn run_singly<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    session: &mut dyn Session<I, O>,
    batch: Vec<Job<I, O>>,
) -> Next {
    let mut jobs = batch.into_iter();
    for mut job in jobs.by_ref() {
        job.undo_attempt();
        match run_one(ctx, me, session, job, Instant::now()) {
            Next::Continue => {}
            stop => {
                // The session must be rebuilt (or the worker was taken
                // over): the others go back to be routed again, unrun.
                for job in jobs {
                    if job.slot().requeue() {
                        ctx.retries.schedule(Instant::now(), job);
                    }
                }
                return stop;
            }
        }
    }
    Next::Continue
}

/// Resolves one request of a call (alone or in a batch), or hands its
/// failure on.
#[allow(clippy::too_many_arguments)]
fn finish<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    job: Job<I, O>,
    outcome: Result<O, SessionError>,
    taken: Instant,
    service: std::time::Duration,
    batch: usize,
    taken_over: bool,
) {
    let group = &*ctx.group;
    let queue_wait = taken.saturating_duration_since(job.enqueued());
    match outcome {
        Ok(output) => {
            let end_to_end = (taken + service).saturating_duration_since(job.submitted());
            me.latency()
                .record(job.priority(), queue_wait, service, Some(end_to_end));
            group.breaker().record_call(job.is_probe(), service, false);
            if !job
                .slot()
                .resolve_then(Outcome::Completed(output), || me.count(Event::Completed))
            {
                ctx.retries.ledger().late_result();
            }
            ctx.retries.done_with(job);
        }
        Err(error) => {
            me.latency()
                .record(job.priority(), queue_wait, service, None);
            if taken_over {
                me.failed(error.kind());
                ctx.retries.ledger().late_result();
            } else {
                ctx.retries
                    .failed_attempt(group, me, job, error, service, batch);
            }
        }
    }
}

/// Runs one running request to an outcome (or a scheduled retry).
fn run_one<I: Send + Sync + 'static, O: Send + 'static>(
    ctx: &WorkerCtx<I, O>,
    me: &WorkerState<I, O>,
    session: &mut dyn Session<I, O>,
    mut job: Job<I, O>,
    taken: Instant,
) -> Next {
    let group = &*ctx.group;
    // The copy `begin` keeps for a take-over must carry this attempt's number.
    job.begin_attempt();
    if !me.begin(std::slice::from_ref(&job)) {
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
    job.left_queue();
    me.call_started(ctx.time.nanos_at(taken));

    let run = RunContext {
        cancel: job.slot().cancel_flag(),
        attempt: job.attempts(),
        deadline: job.deadline(),
        request_id: job.slot().id(),
        batch: 1,
    };
    let spans = std::iter::once(job.slot().span());
    let result = {
        let _run = trace::run(ctx.group.name(), me.index(), job.attempts(), spans, 1);
        catch_unwind(AssertUnwindSafe(|| session.run(job.input(), &run)))
    };
    let done = Instant::now();

    me.call_ended(ctx.time.nanos_at(done));
    let taken_over = me.end();
    let service = done - taken;

    let (outcome, next) = match result {
        Ok(outcome) => {
            if outcome.is_ok() {
                group.note_service(service, 1);
            }
            (outcome, Next::Continue)
        }
        Err(payload) => {
            me.panicked();
            let error = SessionError::from_panic(&*payload);
            tracing::warn!(
                "group `{}` worker {}: session panicked: {}",
                group.name(),
                me.index(),
                error.message()
            );
            (Err(error), Next::Rebuild)
        }
    };
    finish(ctx, me, job, outcome, taken, service, 1, taken_over);
    if taken_over {
        Next::TakenOver
    } else {
        next
    }
}
