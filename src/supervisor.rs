//! The pool's one background thread.
//!
//! - The retry timer: failed attempts wait here for their backoff, never on a
//!   worker, and are then re-routed.
//! - Health: every `health_check_interval` it reads each worker's heartbeat.
//!   A call running past its group's `call_timeout` is stuck: the worker is
//!   taken over (see `worker::WorkerShared::take_over_stuck`), its request
//!   fails over like any failed attempt (to another group first), and a fresh
//!   worker with a fresh session takes its place and core. The stuck thread
//!   is left to end on its own; its late result is discarded and counted.
//!   (A group with no healthy worker is skipped by the router: see
//!   `Group::healthy_workers`.)
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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::clock::saturating_add;
use crate::group;
use crate::handle::Outcome;
use crate::pool::Shared;
use crate::pressure::Pressure;
use crate::request::Job;
use crate::retry;
use crate::scaling;
use crate::session::SessionError;

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
    shared: Arc<Shared<I, O>>,
    rx: Receiver<Msg<I, O>>,
) -> Vec<Job<I, O>> {
    let mut heap: BinaryHeap<Pending<I, O>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Pending<I, O>>, due, job| {
        seq += 1;
        heap.push(Pending { due, seq, job });
    };
    let mut next_check = saturating_add(Instant::now(), shared.health_interval);
    let mut pressure = Pressure::new();
    let mut next_sample = Instant::now();
    loop {
        let mut wake = heap.peek().map_or(next_check, |p| p.due.min(next_check));
        if shared.memory.enabled {
            wake = wake.min(next_sample);
        }
        let msg = rx.recv_deadline(wake);
        match msg {
            Ok(Msg::Retry(due, job)) => push(&mut heap, due, job),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if shared.memory.enabled && now >= next_sample {
            contain(&shared, "memory sampling", || pressure.tick(&shared));
            next_sample = saturating_add(now, shared.memory.sample_interval);
        }
        if now >= next_check {
            contain(&shared, "the health check", || check_health(&shared));
            contain(&shared, "load scaling", || {
                scaling::tick(
                    &shared,
                    shared.clock_nanos(),
                    shared.pressure_high.load(Ordering::Acquire),
                )
            });
            next_check = saturating_add(now, shared.health_interval);
            shared.supervisor_checks.inc();
        }
        let mut still_full = Vec::new();
        while heap.peek().is_some_and(|p| p.due <= now) {
            let Some(Pending { job, .. }) = heap.pop() else {
                break;
            };
            if job.slot.status().is_terminal() {
                // Cancelled while waiting; the canceller counted it.
                shared.pending_retries.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            if job.is_expired(now) {
                job.slot.resolve_queued(Outcome::Expired);
                shared.pending_retries.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            // A copy to answer for the request if routing panics (a
            // factory's `validate` is user code); retries are the slow path.
            let spare = job.clone();
            match catch_unwind(AssertUnwindSafe(|| shared.reroute(job))) {
                Ok(Ok(())) => {
                    shared.pending_retries.fetch_sub(1, Ordering::AcqRel);
                }
                Ok(Err(job)) => still_full.push(job),
                Err(payload) => {
                    let error = SessionError::from_panic(&*payload);
                    log::error!(
                        "supervisor: re-routing request {} panicked: {}",
                        spare.slot.id(),
                        error.message()
                    );
                    shared.supervisor_panics.inc();
                    let mut job = spare;
                    job.note_error(Arc::from("router"), error);
                    retry::dead_letter(&shared, job, || ());
                    shared.pending_retries.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        for job in still_full {
            push(&mut heap, now + FULL_RECHECK, job);
        }
    }
    let mut left: Vec<Job<I, O>> = heap.into_iter().map(|p| p.job).collect();
    left.extend(rx.try_iter().filter_map(|m| match m {
        Msg::Retry(_, job) => Some(job),
        Msg::Stop => None,
    }));
    left
}

/// Runs one periodic task; a panic in it is logged and counted, and the
/// supervisor carries on.
fn contain<I, O>(shared: &Shared<I, O>, task: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        shared.supervisor_panics.inc();
        log::error!(
            "supervisor: {task} panicked ({}); the supervisor carries on",
            SessionError::from_panic(&*payload).message()
        );
    }
}

/// Finds stuck calls, fails their requests over, replaces their workers,
/// and refreshes each group's health flag.
fn check_health<I: Send + Sync + 'static, O: Send + 'static>(shared: &Arc<Shared<I, O>>) {
    let now = shared.clock_nanos();
    for (gi, g) in shared.groups.iter().enumerate() {
        let timeout = u64::try_from(g.config.call_timeout.as_nanos()).unwrap_or(u64::MAX);
        let mut workers = g.workers.lock();
        for pos in 0..workers.len() {
            let since = workers[pos].shared.busy_since.load(Ordering::Acquire);
            if since == 0 || now.saturating_sub(since) <= timeout {
                continue;
            }
            let Some(job) = workers[pos]
                .shared
                .take_over_stuck(since, &g.healthy_workers)
            else {
                continue;
            };
            g.stuck_calls.inc();
            log::warn!(
                "group `{}` worker {}: call running over {:?}; failing its request over and replacing the worker",
                g.name,
                workers[pos].shared.index,
                g.config.call_timeout
            );
            let index = workers.iter().map(|w| w.shared.index).max().unwrap_or(0)
                + g.retired.lock().len()
                + 1;
            let (core, shares) = (workers[pos].shared.core, workers[pos].shared.shares_core);
            let mut old = match group::spawn_worker(shared, gi, index, core, shares, None) {
                Ok(fresh) => std::mem::replace(&mut workers[pos], fresh),
                Err(e) => {
                    log::error!(
                        "group `{}`: could not spawn a replacement worker: {e}",
                        g.name
                    );
                    workers.remove(pos)
                }
            };
            old.shared.stop.store(true, Ordering::Release);
            drop(old.control.take());
            let error = SessionError::transient(format!(
                "call exceeded the group's call_timeout of {:?}",
                g.config.call_timeout
            ));
            retry::failed_attempt(shared, gi, &old.shared, job, error);
            g.retired.lock().push(old.shared);
            // The thread is not joined: it may never return.
            drop(old.thread.take());
            break; // `workers` changed; the next check looks again.
        }
    }
}
