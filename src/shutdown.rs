//! Shutdown: stop admitting, drain, stop the workers, report.
//!
//! # The drain protocol
//!
//! 1. Set `closed` and drop the closing sender, which wakes every submitter
//!    blocked on a full queue (they get their request back as `Closed`).
//! 2. Wait until no submitter is inside admission (see [`crate::pool`]):
//!    from here the ledger's `accepted` is final.
//! 3. Wait, up to the deadline, until the ledger shows nothing in flight.
//!    Workers and the supervisor keep running meanwhile, so queued requests
//!    and pending retries are served as usual.
//! 4. Raise every worker's stop flag and drop its control sender, then wait
//!    (up to the deadline) for each thread to exit. A worker still inside a
//!    call at the deadline is detached: under its `current` lock the request
//!    it runs is resolved as cancelled and the worker is marked so that it
//!    takes no other (see `worker::Current`); its late result is discarded.
//! 5. Stop the supervisor; retries it still held are cancelled.
//! 6. Sweep every queue; whatever is left is cancelled.
//!
//! After step 6 every accepted request is resolved, so
//! `accepted = completed + dead_lettered + cancelled + expired`.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use crossbeam_utils::Backoff;
use serde::Serialize;

use crate::handle::{CancelReason, Outcome};
use crate::pool::Shared;
use crate::request::Job;
use crate::stats::PoolStats;
use crate::supervisor::Msg;

/// What [`Pool::shutdown`](crate::Pool::shutdown) did.
#[derive(Debug, Clone, Serialize)]
pub struct ShutdownReport {
    /// True if every accepted request finished before the deadline.
    pub drained: bool,
    /// Requests still queued or waiting for a retry at the deadline, cancelled.
    pub cancelled_queued: u64,
    /// Requests whose call was still running at the deadline, cancelled
    /// (their worker detached).
    pub cancelled_running: u64,
    /// Worker threads that exited and were joined.
    pub workers_joined: usize,
    /// Worker threads still inside a call at the deadline, left to finish alone.
    pub workers_detached: usize,
    /// Time the shutdown took.
    pub elapsed: Duration,
    /// The pool's stats once shut down.
    pub stats: PoolStats,
}

/// The parts of a pool that only shutdown consumes.
pub(crate) struct Lifecycle<I, O> {
    closing: Option<Sender<()>>,
    supervisor: Option<JoinHandle<Vec<Job<I, O>>>>,
    report: Option<ShutdownReport>,
}

impl<I, O> Lifecycle<I, O> {
    pub(crate) fn new(closing: Sender<()>, supervisor: JoinHandle<Vec<Job<I, O>>>) -> Self {
        Self {
            closing: Some(closing),
            supervisor: Some(supervisor),
            report: None,
        }
    }
}

/// How long an idle worker may take to exit after the deadline.
const IDLE_EXIT_GRACE: Duration = Duration::from_millis(100);

/// What a generation is stopped for.
pub(crate) enum Mode<'a, I, O> {
    /// The pool shuts down: drain until nothing is in flight pool-wide, then
    /// cancel what is left.
    Shutdown,
    /// A reload: drain until this generation holds nothing, then hand what
    /// is left to the new generation; requests that may run only on a
    /// removed group are dead-lettered instead, and counted in the cell.
    HandOver(&'a Shared<I, O>, &'a std::cell::Cell<u64>),
    /// A generation that failed to start (it holds nothing): just stop it.
    Discard,
}

/// What [`Pool::reload`](crate::Pool::reload) did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Groups the new configuration added.
    pub added: Vec<String>,
    /// Groups it removed (drained before they went).
    pub removed: Vec<String>,
    /// Groups in both.
    pub kept: Vec<String>,
    /// True if the old generation finished all it held before the drain timeout.
    pub drained: bool,
    /// Requests still queued (or waiting for a retry) in the old generation
    /// at the drain timeout, handed over to the new one: they run once, there.
    pub handed_over: u64,
    /// Calls still running in the old generation at the drain timeout,
    /// handed over like stuck calls: the request runs again in the new
    /// generation and resolves once, with whichever call finishes first (the
    /// other result is discarded and counted in
    /// [`PoolStats::late_results_discarded`](crate::PoolStats)). The session
    /// may thus see such a request twice; a `drain_timeout` longer than the
    /// longest call avoids it.
    pub handed_over_running: u64,
    /// Requests restricted to a group this reload removed
    /// ([`Request::group`](crate::Request::group)) still queued or running
    /// at the drain timeout: dead-lettered with an error naming the group,
    /// never run elsewhere.
    pub dead_lettered: u64,
    /// Time the reload took.
    pub elapsed: Duration,
}

pub(crate) fn run<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Shared<I, O>,
    life: &mut Lifecycle<I, O>,
    deadline: Instant,
    mode: Mode<'_, I, O>,
) -> ShutdownReport {
    if let Some(r) = &life.report {
        return r.clone();
    }
    let started = Instant::now();
    // What happens to a request this generation can no longer run; true if
    // it was cancelled here (rather than handed over or already resolved).
    let leftover = |job: Job<I, O>| -> bool {
        match &mode {
            Mode::HandOver(next, dead_lettered) => {
                let handed = next.adopt(job, &shared.groups);
                if !handed {
                    dead_lettered.set(dead_lettered.get() + 1);
                }
                handed
            }
            Mode::Shutdown | Mode::Discard => {
                job.slot.resolve(Outcome::Cancelled(CancelReason::Shutdown))
            }
        }
    };

    // 1-2. Close admission and wait out submitters mid-admission.
    // SeqCst: set `closed` before reading `entering` (Dekker with admission).
    shared.closed.store(true, Ordering::SeqCst);
    drop(life.closing.take());
    let backoff = Backoff::new();
    // SeqCst: read after setting `closed`, in one order with admission.
    while shared.entering.load(Ordering::SeqCst) != 0 {
        backoff.snooze();
    }

    // 3. Drain.
    let drained = match mode {
        Mode::Shutdown => shared.ledger.wait_idle(deadline),
        Mode::Discard => true,
        // The ledger is pool-wide and the new generation is busy: watch this
        // generation's own queues, calls and retries instead.
        Mode::HandOver(..) => loop {
            if shared.is_idle() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        },
    };

    // 4. Stop and join the workers.
    let mut report = ShutdownReport {
        drained,
        cancelled_queued: 0,
        cancelled_running: 0,
        workers_joined: 0,
        workers_detached: 0,
        elapsed: Duration::ZERO,
        stats: empty_stats(),
    };
    for g in &shared.groups {
        for w in g.workers.lock().iter_mut() {
            w.shared.stop.store(true, Ordering::Release);
            drop(w.control.take());
        }
    }
    for g in &shared.groups {
        for w in g.workers.lock().iter_mut() {
            // A worker between calls exits within microseconds of its stop
            // flag; give it that moment even when the deadline has passed,
            // rather than detaching a thread that was about to end.
            let exit_by = if w.shared.busy_since.load(Ordering::Acquire) == 0 {
                deadline.max(Instant::now() + IDLE_EXIT_GRACE)
            } else {
                deadline
            };
            match w.exited.recv_deadline(exit_by) {
                Err(RecvTimeoutError::Disconnected) | Ok(()) => {
                    if let Some(t) = w.thread.take() {
                        let _ = t.join();
                    }
                    report.workers_joined += 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    report.workers_detached += 1;
                    if let Some(job) = w.shared.take_over(&g.healthy_workers) {
                        if leftover(job) {
                            report.cancelled_running += 1;
                        }
                    }
                    drop(w.thread.take());
                }
            }
        }
    }

    // 5. Stop the supervisor; cancel the retries it held.
    let _ = shared.supervisor_tx.send(Msg::Stop);
    if let Some(t) = life.supervisor.take() {
        for job in t.join().unwrap_or_default() {
            if !job.slot.status().is_terminal() && leftover(job) {
                report.cancelled_queued += 1;
            }
        }
    }

    // 6. Sweep the queues.
    for g in &shared.groups {
        while let Some(job) = g.levels.try_take() {
            if !job.slot.status().is_terminal() && leftover(job) {
                report.cancelled_queued += 1;
            }
        }
    }
    report.elapsed = started.elapsed();
    log::debug!(
        "pool shut down in {:?}: drained={} cancelled_queued={} cancelled_running={} detached={}",
        report.elapsed,
        report.drained,
        report.cancelled_queued,
        report.cancelled_running,
        report.workers_detached
    );
    life.report = Some(report.clone());
    report
}

fn empty_stats() -> PoolStats {
    PoolStats {
        counts: Default::default(),
        in_flight: 0,
        late_results_discarded: 0,
        supervisor_panics: 0,
        supervisor_checks: 0,
        dead_letter: Default::default(),
        latency: Default::default(),
        health: crate::stats::HealthSummary::of(&[]),
        memory: crate::pressure::MemoryStats {
            level: crate::memory::PressureLevel::Normal,
            last_sample: None,
            parked_workers: 0,
            transitions: 0,
            refusing_below: None,
        },
        groups: Vec::new(),
    }
}
