//! Stopping a generation (shutdown, or the old side of a reload): stop
//! admitting, drain, stop the workers, and hand what is left to the caller.
//!
//! # The drain protocol
//!
//! 1. Set `closed` and drop the closing sender, which wakes every submitter
//!    blocked on a full queue (they get their request back as `Closed`).
//! 2. Wait until no submitter is inside admission (`exec::admission`):
//!    from here the ledger's `accepted` is final.
//! 3. Wait, up to the deadline, until the ledger shows nothing in flight.
//!    Workers and the supervisor keep running meanwhile, so queued requests
//!    and pending retries are served as usual.
//! 4. Raise every worker's stop flag and drop its control sender, then wait
//!    (up to the deadline) for each thread to exit. A worker still inside a
//!    call at the deadline is detached: under its `current` lock the request
//!    it runs is resolved as cancelled and the worker is marked so that it
//!    takes no other (see `WorkerState::take_over`); its late result is
//!    discarded.
//! 5. Stop the supervisor; it hands back the retries it still held.
//! 6. Sweep every queue.
//!
//! What steps 4-6 find goes to the caller's `leftover`: shutdown cancels
//! it, a reload hands it to the new generation. After step 6 every
//! accepted request is resolved or handed over, so at shutdown
//! `accepted = completed + dead_lettered + cancelled + expired`.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use super::admission::Gate;
use super::dispatch::Dispatch;
use super::retries::Retries;
use super::supervisor::SupervisorThread;
use crate::core::{Job, Ledger};

/// How long a worker that is not inside a session call may take to exit
/// after the deadline. Such a worker runs only our own code (between calls,
/// or holding requests it took but has not started), so it exits at once
/// unless the machine starves it; detaching it instead would let it hand
/// back requests after the stop returned. Generous, because it is paid only
/// by a worker that needs it (a session factory stuck in a rebuild, at most).
const IDLE_EXIT_GRACE: Duration = Duration::from_secs(2);

/// What to wait for before stopping the workers.
pub(crate) enum Drain<'a> {
    /// Nothing in flight pool-wide (shutdown).
    Ledger(&'a Ledger),
    /// This generation holding nothing (a reload: the new generation is
    /// busy, so the pool-wide ledger says nothing about this one).
    Generation,
    /// Nothing (a generation that failed to start holds no request).
    No,
}

/// What stopping a generation did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stopped {
    /// True if the drain finished before the deadline.
    pub(crate) drained: bool,
    /// Queued requests (or waiting retries) given to `leftover` and taken.
    pub(crate) leftover_queued: u64,
    /// Running calls given up on, their requests given to `leftover` and taken.
    pub(crate) leftover_running: u64,
    pub(crate) workers_joined: usize,
    pub(crate) workers_detached: usize,
    pub(crate) elapsed: Duration,
}

/// A generation's parts that stopping it needs.
pub(crate) struct Parts<'a, I, O> {
    gate: &'a Gate,
    groups: &'a Dispatch<I, O>,
    retries: &'a Retries<I, O>,
    /// The supervisor thread, which returns the retries it held.
    supervisor: Option<SupervisorThread<I, O>>,
}

impl<'a, I, O> Parts<'a, I, O> {
    pub(crate) fn new(
        gate: &'a Gate,
        groups: &'a Dispatch<I, O>,
        retries: &'a Retries<I, O>,
        supervisor: Option<SupervisorThread<I, O>>,
    ) -> Self {
        Self {
            gate,
            groups,
            retries,
            supervisor,
        }
    }
}

/// Stops a generation (see the module docs). `leftover` receives each
/// request the generation can no longer run and says whether it took it
/// (cancelled or handed over) rather than finding it already resolved.
pub(crate) fn stop<I: Send + Sync + 'static, O: Send + 'static>(
    parts: Parts<'_, I, O>,
    deadline: Instant,
    drain: Drain<'_>,
    leftover: &mut dyn FnMut(Job<I, O>) -> bool,
) -> Stopped {
    let started = Instant::now();
    let Parts {
        gate,
        groups,
        retries,
        supervisor,
    } = parts;

    // 1-2. Close admission and wait out submitters mid-admission.
    gate.close();

    // 3. Drain.
    let drained = match drain {
        Drain::Ledger(ledger) => ledger.wait_idle(deadline),
        Drain::No => true,
        Drain::Generation => loop {
            if retries.pending() == 0 && groups.is_idle() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        },
    };

    // 4. Stop and join the workers.
    let mut report = Stopped {
        drained,
        ..Stopped::default()
    };
    for g in groups.groups() {
        for w in g.workers().iter_mut() {
            w.stop();
        }
    }
    for g in groups.groups() {
        for w in g.workers().iter_mut() {
            // A worker between calls exits within microseconds of its stop
            // flag; give it that moment even when the deadline has passed,
            // rather than detaching a thread that was about to end.
            let exit_by = if w.state().is_busy() {
                deadline
            } else {
                deadline.max(Instant::now() + IDLE_EXIT_GRACE)
            };
            if w.join_by(exit_by) {
                report.workers_joined += 1;
            } else {
                report.workers_detached += 1;
                for job in w.state().take_over(g.healthy_workers()) {
                    if leftover(job) {
                        report.leftover_running += 1;
                    }
                }
                w.detach();
            }
        }
    }

    // 5. Stop the supervisor; take the retries it held.
    retries.stop_supervisor();
    if let Some(t) = supervisor {
        for job in t.join().unwrap_or_default() {
            if !job.slot().status().is_terminal() && leftover(job) {
                report.leftover_queued += 1;
            }
        }
    }

    // 6. Sweep the queues.
    for g in groups.groups() {
        while let Some(job) = g.levels().try_take() {
            if !job.slot().status().is_terminal() && leftover(job) {
                report.leftover_queued += 1;
            }
        }
    }
    report.elapsed = started.elapsed();
    tracing::debug!("generation stopped: {report:?}");
    report
}
