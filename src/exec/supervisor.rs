//! The pool's one background thread.
//!
//! - The retry timer: failed attempts wait here for their backoff, never on a
//!   worker, and are then re-routed.
//! - Health: every `health_check_interval` it reads each worker's heartbeat.
//!   A call running past its group's `call_timeout` is stuck: the worker is
//!   taken over (see `WorkerState::take_over_stuck`), its request
//!   fails over like any failed attempt (to another group first), and a fresh
//!   worker with a fresh session takes its place and core. The stuck thread
//!   is left to end on its own; its late result is discarded and counted.
//!   (A group with no healthy worker is skipped by the router: see
//!   `HealthyWorkers`.) It also asks each group's factory whether its
//!   backend can serve (`SessionFactory::health`, answered from what the
//!   backend last reported): a group whose backend is not ready is skipped
//!   too, and its breaker is opened (`Group::check_backend`).
//!
//! It sleeps until the next retry or check is due, so it costs an idle pool
//! one short wake-up per check interval.
//!
//! It cannot die silently: each periodic task (health, scaling, memory) and
//! each re-route runs inside `catch_unwind`. A panic is logged and counted
//! (`PoolStats::supervisor_panics`) and the loop goes on with its retries
//! intact; a retry whose re-route panicked is dead-lettered with the panic
//! as its last error, never lost and never mis-reported as a shutdown.

#![forbid(unsafe_code)]

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::dispatch::Dispatch;
use super::group::spawn_worker;
use super::pressure::Controller;
use super::retries::Retries;
use super::scaling;
use super::worker::WorkerCtx;
use crate::core::{saturating_add, Counter, ErrorKind, Job, Outcome, SessionError, Timebase};

/// The supervisor's thread: it returns the retries it still held.
pub(crate) type SupervisorThread<I, O> = std::thread::JoinHandle<Vec<Job<I, O>>>;

/// What the supervisor of one generation works with.
pub(crate) struct Supervised<I, O> {
    groups: Arc<Dispatch<I, O>>,
    retries: Arc<Retries<I, O>>,
    time: Timebase,
    health_interval: Duration,
    memory: Controller,
    /// Panics contained here (pool-wide: it outlives generations).
    panics: Arc<Counter>,
    /// Health and scaling checks finished.
    checks: Arc<Counter>,
}

impl<I, O> Supervised<I, O> {
    pub(crate) fn new(
        groups: Arc<Dispatch<I, O>>,
        retries: Arc<Retries<I, O>>,
        time: Timebase,
        health_interval: Duration,
        memory: Controller,
        panics: Arc<Counter>,
        checks: Arc<Counter>,
    ) -> Self {
        Self {
            groups,
            retries,
            time,
            health_interval,
            memory,
            panics,
            checks,
        }
    }
}

/// Messages to the supervisor.
pub(crate) enum Msg<I, O> {
    /// Re-route this job once `due` passes.
    Retry(Instant, Job<I, O>),
    /// Stop and hand back the retries still waiting.
    Stop,
}

/// How long a due retry waits before trying again when every eligible
/// queue is full.
const FULL_RECHECK: Duration = Duration::from_millis(1);

struct Pending<I, O> {
    due: Instant,
    seq: u64,
    job: Job<I, O>,
}

impl<I, O> PartialEq for Pending<I, O> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl<I, O> Eq for Pending<I, O> {}
impl<I, O> PartialOrd for Pending<I, O> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<I, O> Ord for Pending<I, O> {
    // Reversed: BinaryHeap is a max-heap and the earliest due must come first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// Runs until told to stop; returns the retries that were still waiting.
pub(crate) fn run<I: Send + Sync + 'static, O: Send + 'static>(
    mut sup: Supervised<I, O>,
    rx: Receiver<Msg<I, O>>,
) -> Vec<Job<I, O>> {
    let mut heap: BinaryHeap<Pending<I, O>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Pending<I, O>>, due, job| {
        seq += 1;
        heap.push(Pending { due, seq, job });
    };
    let mut next_check = saturating_add(Instant::now(), sup.health_interval);
    let mut next_sample = Instant::now();
    let memory_on = sup.memory.config().enabled;
    let sample_interval = sup.memory.config().sample_interval;
    loop {
        let mut wake = heap.peek().map_or(next_check, |p| p.due.min(next_check));
        if memory_on {
            wake = wake.min(next_sample);
        }
        let msg = rx.recv_deadline(wake);
        match msg {
            Ok(Msg::Retry(due, job)) => push(&mut heap, due, job),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if memory_on && now >= next_sample {
            let (memory, groups) = (&mut sup.memory, &*sup.groups);
            contain(&sup.panics, "memory sampling", || memory.tick(groups));
            next_sample = saturating_add(now, sample_interval);
        }
        if now >= next_check {
            contain(&sup.panics, "the health check", || check_health(&sup));
            contain(&sup.panics, "load scaling", || {
                scaling::tick(&sup.groups, sup.time.nanos(), sup.memory.is_high())
            });
            next_check = saturating_add(now, sup.health_interval);
            sup.checks.inc();
        }
        let mut still_full = Vec::new();
        while heap.peek().is_some_and(|p| p.due <= now) {
            let Some(Pending { job, .. }) = heap.pop() else {
                break;
            };
            if job.slot().status().is_terminal() {
                // Cancelled while waiting; the canceller counted it.
                sup.retries.left();
                continue;
            }
            if job.is_expired(now) {
                job.slot().resolve_queued(Outcome::Expired);
                sup.retries.left();
                continue;
            }
            // A copy to answer for the request if routing panics (a
            // factory's `validate` is user code); retries are the slow path.
            let spare = job.clone();
            // A retry that finds no room comes back by value, as from
            // `Dispatch::reroute` (boxing it would allocate per retry).
            #[allow(clippy::result_large_err)]
            let routed = catch_unwind(AssertUnwindSafe(|| sup.groups.reroute(job, &sup.retries)));
            match routed {
                Ok(Ok(())) => sup.retries.left(),
                Ok(Err(job)) => still_full.push(job),
                Err(payload) => {
                    let error = SessionError::from_panic(&*payload);
                    tracing::error!(
                        "supervisor: re-routing request {} panicked: {}",
                        spare.slot().id(),
                        error.message()
                    );
                    sup.panics.inc();
                    let mut job = spare;
                    job.note_error(Arc::from("router"), error);
                    sup.retries.dead_letter(job, || ());
                    sup.retries.left();
                }
            }
        }
        for job in still_full {
            push(&mut heap, now + FULL_RECHECK, job);
        }
    }
    // Stop taking retries, then wait for those already on their way: every
    // retry counted in `pending` is in the heap or will arrive in `rx`
    // (`Retries::schedule` has the handshake). The wait is bounded in case
    // a count went wrong; a retry missed then is reported, not waited for.
    sup.retries.close();
    let mut left: Vec<Job<I, O>> = heap.into_iter().map(|p| p.job).collect();
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        left.extend(rx.try_iter().filter_map(|m| match m {
            Msg::Retry(_, job) => Some(job),
            Msg::Stop => None,
        }));
        if sup.retries.pending() <= left.len() {
            break;
        }
        if Instant::now() >= give_up {
            tracing::error!(
                "supervisor: {} retries announced but not received at stop; they are lost \
                 (a bug: please report it)",
                sup.retries.pending() - left.len()
            );
            break;
        }
        std::thread::yield_now();
    }
    left
}

/// Runs one periodic task; a panic in it is logged and counted, and the
/// supervisor carries on.
fn contain(panics: &Counter, task: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        panics.inc();
        tracing::error!(
            "supervisor: {task} panicked ({}); the supervisor carries on",
            SessionError::from_panic(&*payload).message()
        );
    }
}

/// Asks each group's backend whether it can serve (`Group::check_backend`),
/// then finds stuck calls, fails their requests over, and replaces their
/// workers.
fn check_health<I: Send + Sync + 'static, O: Send + 'static>(sup: &Supervised<I, O>) {
    let now = sup.time.nanos();
    for g in sup.groups.groups() {
        g.check_backend();
        let timeout = u64::try_from(g.config().call_timeout.as_nanos()).unwrap_or(u64::MAX);
        let mut workers = g.workers();
        for pos in 0..workers.len() {
            let state = workers[pos].state();
            let since = state.busy_since();
            if since == 0 || now.saturating_sub(since) <= timeout {
                continue;
            }
            let jobs = state.take_over_stuck(since, g.healthy_workers());
            if jobs.is_empty() {
                continue;
            }
            g.note_stuck();
            tracing::warn!(
                "group `{}` worker {}: call running over {:?}; failing its request over and replacing the worker",
                g.name(),
                state.index(),
                g.config().call_timeout
            );
            let index = workers.iter().map(|w| w.state().index()).max().unwrap_or(0)
                + g.retired_count()
                + 1;
            let (core, shares) = (state.core(), state.shares_core());
            let ctx = WorkerCtx::new(Arc::clone(g), Arc::clone(&sup.retries), sup.time.clone());
            let mut old = match spawn_worker(&ctx, index, core, shares, None) {
                Ok(fresh) => std::mem::replace(&mut workers[pos], fresh),
                Err(e) => {
                    tracing::error!(
                        "group `{}`: could not spawn a replacement worker: {e}",
                        g.name()
                    );
                    workers.remove(pos)
                }
            };
            old.stop();
            let error = SessionError::new(
                ErrorKind::TimedOut,
                format!(
                    "call exceeded the group's call_timeout of {:?}",
                    g.config().call_timeout
                ),
            );
            let (ran, batch) = (g.config().call_timeout, jobs.len());
            for job in jobs {
                sup.retries
                    .failed_attempt(g, old.state(), job, error.clone(), ran, batch);
            }
            g.retire(Arc::clone(old.state()));
            // The thread is not joined: it may never return.
            old.detach();
            break; // `workers` changed; the next check looks again.
        }
    }
}
