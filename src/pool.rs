//! [`Pool`]: admission and routing on the caller's thread, and the builder
//! that starts groups, workers and the supervisor.
//!
//! # Admission and shutdown
//!
//! A submitter raises `entering` before it reads `closed`, and lowers it once
//! its request is queued or refused; shutdown sets `closed` before it waits
//! for `entering` to reach zero (all `SeqCst`). So after that wait no request
//! can slip into a queue unseen: every accepted request is in the ledger
//! before shutdown starts counting what is in flight.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, unbounded, Receiver, Select, Sender, TrySendError};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::breaker::{Admission, BreakerState};
use crate::clock::{Clock, SystemClock};
use crate::config::{DeadLetterConfig, GroupConfig, PoolConfig, RetryPolicy};
use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::error::{BuildError, InputError, ReplayError, SubmitError};
use crate::group::{spawn_worker, Group};
use crate::handle::{CancelReason, Outcome, Slot, TaskHandle};
use crate::memory::{
    MemoryConfig, MemoryProbe, MemorySample, PressureEvent, PressureLevel, SysinfoProbe,
};
use crate::pinning::{self, CorePlan};
use crate::pressure::MemoryStats;
use crate::request::{Job, Request};
use crate::router;
use crate::session::{SessionError, SessionFactory};
use crate::shutdown::{Lifecycle, ReloadReport};
use crate::stats::{Counter, CountsSnapshot, HealthSummary, Latencies, Ledger, PoolStats};
use crate::supervisor::{self, Msg};
use crate::Priority;
use crate::ShutdownReport;

/// State shared by the pool handle, its workers and its supervisor.
pub(crate) struct Shared<I, O> {
    /// In routing order: priority, highest first.
    pub groups: Vec<Group<I, O>>,
    has_ties: bool,
    pub ledger: Arc<Ledger>,
    pub dlq: Arc<DeadLetterQueue<I>>,
    pub retry: RetryPolicy,
    pub health_interval: Duration,
    pub clock: Arc<dyn Clock>,
    /// True when `clock` is the real clock.
    system_clock: bool,
    epoch: Instant,
    pub closed: AtomicBool,
    pub entering: CachePadded<AtomicUsize>,
    next_id: Arc<AtomicU64>,
    /// Retries waiting in the supervisor (a generation is idle only at 0).
    pub pending_retries: AtomicUsize,
    pub supervisor_tx: Sender<Msg<I, O>>,
    closing_rx: Receiver<()>,
    pub memory: MemoryConfig,
    pub probe: Arc<dyn MemoryProbe>,
    pub on_pressure: Option<Arc<PressureHook>>,
    /// 0 admits every priority; `p + 1` refuses priorities below `p`.
    pub admit_floor: AtomicU8,
    pub pressure_high: AtomicBool,
    pub last_sample: Mutex<Option<MemorySample>>,
    pub pressure_events: Counter,
    /// Panics contained inside the supervisor (pool-wide, see [`Env`]).
    pub supervisor_panics: Arc<Counter>,
    /// Health and scaling checks the supervisor finished.
    pub supervisor_checks: Counter,
}

pub(crate) type PressureHook = Box<dyn Fn(&PressureEvent) + Send + Sync>;

enum Refusal {
    /// Every eligible queue is full.
    Full,
    /// No group may take it now (breakers open, no healthy worker).
    Unavailable,
    /// The first eligible group's model cannot take the input.
    Invalid(String, InputError),
}

// Refusals hand the job back by value: boxing it would allocate on the
// submit path for every full queue.
#[allow(clippy::result_large_err)]
impl<I: Send + Sync + 'static, O: Send + 'static> Shared<I, O> {
    /// The clock's nanoseconds since the pool started (never 0, which
    /// means idle where it is stored).
    pub(crate) fn clock_nanos(&self) -> u64 {
        self.nanos_since_epoch(self.clock.now())
    }

    /// Like [`Shared::clock_nanos`], given the real instant the caller has
    /// just read: with the system clock that instant is used as is (no
    /// second read on the worker's hot path).
    #[inline]
    pub(crate) fn clock_nanos_at(&self, real_now: Instant) -> u64 {
        if self.system_clock {
            self.nanos_since_epoch(real_now)
        } else {
            self.clock_nanos()
        }
    }

    #[inline]
    fn nanos_since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether a failed request has a group to go to: one that has not
    /// failed it, or any group when `same_group_fallback` allows.
    pub(crate) fn may_retry_somewhere(&self, job: &Job<I, O>) -> bool {
        if self.retry.same_group_fallback {
            return true;
        }
        match job.only_group {
            Some(g) => job.failed_groups & (1u64 << g) == 0,
            None => (0..self.groups.len()).any(|g| job.failed_groups & (1u64 << g) == 0),
        }
    }

    pub(crate) fn schedule_retry(&self, due: Instant, job: Job<I, O>) {
        self.pending_retries.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.supervisor_tx.send(Msg::Retry(due, job)) {
            self.pending_retries.fetch_sub(1, Ordering::AcqRel);
            // The supervisor is gone: the pool finished shutting down.
            let Msg::Retry(_, job) = e.0 else { return };
            job.slot.resolve(Outcome::Cancelled(CancelReason::Shutdown));
        }
    }

    /// Re-routes a retry; hands it back if every eligible queue is full.
    pub(crate) fn reroute(&self, mut job: Job<I, O>) -> Result<(), Job<I, O>> {
        job.enqueued = Instant::now();
        match self.offer(job) {
            Ok(_) => Ok(()),
            Err((job, Refusal::Full | Refusal::Unavailable)) => Err(job),
            Err((mut job, Refusal::Invalid(group, error))) => {
                // Valid at submit, so only a reload could get here; fail it visibly.
                let error = SessionError::permanent(format!("group `{group}`: {error}"));
                job.note_error(Arc::from("router"), error);
                crate::retry::dead_letter(self, job, || ());
                Ok(())
            }
        }
    }

    /// Offers a job to the eligible groups in routing order: a group is
    /// skipped while unhealthy or while its breaker turns requests away.
    fn offer(&self, mut job: Job<I, O>) -> Result<usize, (Job<I, O>, Refusal)> {
        let route = router::candidates(
            &self.groups,
            self.has_ties,
            job.only_group,
            job.failed_groups,
            self.retry.same_group_fallback,
        );
        let mut invalid = None;
        let mut full = false;
        for &gi in route.as_slice() {
            let g = &self.groups[gi as usize];
            if !g.is_healthy() {
                continue;
            }
            if let Err(error) = g.factory.validate(&job.input) {
                invalid.get_or_insert_with(|| (g.name.to_string(), error));
                continue;
            }
            invalid = None;
            let admission = g.breaker.admit();
            if admission == Admission::No {
                continue;
            }
            job.probe = admission == Admission::Probe;
            match g.levels.try_send(job.priority, job) {
                Ok(()) => {
                    g.counts.accepted.inc();
                    return Ok(gi as usize);
                }
                Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                    g.breaker.release_probe(j.probe);
                    full = true;
                    job = j;
                }
            }
        }
        let refusal = match invalid {
            Some((g, e)) => Refusal::Invalid(g, e),
            None if full => Refusal::Full,
            None => Refusal::Unavailable,
        };
        Err((job, refusal))
    }

    /// Blocks until one of the eligible queues has room, `until` passes, or
    /// the pool closes.
    fn wait_for_room(
        &self,
        mut job: Job<I, O>,
        until: Option<Instant>,
    ) -> Result<usize, (Job<I, O>, WaitEnd)> {
        loop {
            // Waiting for room, a request may go to any healthy group that
            // takes its input and whose breaker is not open.
            let route = router::candidates(&self.groups, self.has_ties, job.only_group, 0, true);
            let route: Vec<u8> = route
                .as_slice()
                .iter()
                .copied()
                .filter(|&gi| {
                    let g = &self.groups[gi as usize];
                    g.is_healthy()
                        && g.breaker.state() != BreakerState::Open
                        && g.factory.validate(&job.input).is_ok()
                })
                .collect();
            if route.is_empty() {
                return Err((job, WaitEnd::Unavailable));
            }
            let mut sel = Select::new();
            for &gi in &route {
                sel.send(self.groups[gi as usize].levels.sender(job.priority));
            }
            let closing = sel.recv(&self.closing_rx);
            let op = match until {
                Some(d) => match sel.select_deadline(d) {
                    Ok(op) => op,
                    Err(_) => return Err((job, WaitEnd::Timeout)),
                },
                None => sel.select(),
            };
            if op.index() == closing {
                let _ = op.recv(&self.closing_rx);
                return Err((job, WaitEnd::Closed));
            }
            let gi = route[op.index()] as usize;
            let g = &self.groups[gi];
            job.enqueued = Instant::now();
            job.probe = false;
            match op.send(g.levels.sender(job.priority), job) {
                Ok(()) => {
                    g.counts.accepted.inc();
                    return Ok(gi);
                }
                Err(e) => job = e.into_inner(),
            }
        }
    }

    /// True when this generation holds no request: queues empty, no call
    /// running, no retry waiting.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending_retries.load(Ordering::Acquire) == 0
            && self.groups.iter().all(|g| {
                g.levels.depth().iter().all(|&d| d == 0)
                    && g.workers
                        .lock()
                        .iter()
                        .all(|w| w.shared.busy_since.load(Ordering::Acquire) == 0)
            })
    }

    /// Takes a request from an older generation (a reload's hand-over):
    /// its group restriction is carried over by name, and the supervisor
    /// routes it like a retry that is due now. A request restricted to a
    /// group the reload removed runs nowhere else: it is dead-lettered with
    /// an error naming the group (its letter keeps the restriction, so a
    /// replay once the group is back runs it there).
    ///
    /// True if handed over, false if dead-lettered.
    pub(crate) fn adopt(&self, mut job: Job<I, O>, old_groups: &[Group<I, O>]) -> bool {
        job.slot.requeue(); // a call given up on mid-run goes back to Queued
        if let Some(old) = job.only_group {
            let name = &old_groups[old].name;
            match self.group_index(name) {
                Some(g) => job.only_group = Some(g),
                None => {
                    job.only_group = None;
                    job.note_error(
                        Arc::clone(name),
                        SessionError::permanent(format!(
                            "group `{name}` was removed by a reload while this request, \
                             which may run only there, was still queued or running; it was \
                             not run elsewhere (replay it once the group is back)"
                        )),
                    );
                    crate::retry::dead_letter_as(self, job, Some(name.to_string()), || ());
                    return false;
                }
            }
        }
        job.failed_groups = 0;
        job.probe = false;
        self.schedule_retry(Instant::now(), job);
        true
    }

    /// What this generation's workers counted.
    fn attempt_counts(&self) -> CountsSnapshot {
        let mut all = CountsSnapshot::default();
        for g in &self.groups {
            add_attempts(&mut all, &g.worker_counts());
        }
        all
    }

    pub(crate) fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| &*g.name == name)
    }
}

enum WaitEnd {
    Timeout,
    Closed,
    Unavailable,
}

/// Counts a submitter in and out of admission (see the module docs).
struct Entry<'a>(&'a AtomicUsize);

impl<'a> Entry<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        // SeqCst: raise `entering` before reading `closed` (Dekker with shutdown).
        c.fetch_add(1, Ordering::SeqCst);
        Self(c)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        // SeqCst: in the same total order as shutdown's read of `entering`.
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An in-process pool of pinned workers, each owning a persistent session,
/// fed by bounded per-priority queues.
///
/// `Pool` is `Send + Sync`: share it by reference or in an `Arc` and submit
/// from any thread. Dropping it shuts it down (see [`Pool::shutdown`]).
///
/// ```
/// use accelpool::{GroupConfig, Pool, Priority, Request, SessionError, WorkerInfo};
/// use std::time::Duration;
///
/// let pool = Pool::<Vec<f32>, f32>::builder()
///     .group(GroupConfig::new("cpu").workers(2), |_: &WorkerInfo| {
///         // Built once per worker, on the worker's own (pinned) thread.
///         Ok(|x: &Vec<f32>| -> Result<f32, SessionError> { Ok(x.iter().sum()) })
///     })
///     .build()?;
/// let h = pool.submit(Request::new(vec![1.0, 2.0, 3.0]).priority(Priority::High))?;
/// assert_eq!(h.wait()?, 6.0);
/// let report = pool.shutdown(Duration::from_secs(5));
/// assert_eq!(report.stats.counts.completed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool<I: Send + Sync + 'static, O: Send + 'static> {
    /// The running generation; a reload swaps in a new one.
    current: ArcSwap<Shared<I, O>>,
    /// The running generation's threads; its lock also serialises reload
    /// and shutdown.
    lifecycle: Mutex<Lifecycle<I, O>>,
    env: Env<I, O>,
    drop_timeout: Duration,
}

/// A group name and its session factory.
pub type NamedFactory<I, O> = (String, Arc<dyn SessionFactory<I, O>>);

/// A running generation and the threads that only its shutdown consumes.
type Generation<I, O> = (Arc<Shared<I, O>>, Lifecycle<I, O>);

/// What every generation of a pool shares.
pub(crate) struct Env<I, O> {
    pub ledger: Arc<Ledger>,
    pub dlq: Arc<DeadLetterQueue<I>>,
    pub next_id: Arc<AtomicU64>,
    pub clock: Arc<dyn Clock>,
    pub probe: Arc<dyn MemoryProbe>,
    pub on_pressure: Option<Arc<PressureHook>>,
    pub supervisor_panics: Arc<Counter>,
    /// Factories by group name, for reloads that keep a group.
    pub factories: Mutex<Vec<NamedFactory<I, O>>>,
    /// Generations a reload replaced; its lock orders a reload's swap
    /// against a stats snapshot.
    pub history: Mutex<History<I, O>>,
}

/// The attempt counts of generations a reload replaced. Workers count their
/// attempts (started, failed, retried) themselves and go with their
/// generation, so the pool keeps what they counted: pool-wide counters stay
/// monotonic across reloads.
pub(crate) struct History<I, O> {
    /// What retired generations' workers counted.
    carried: CountsSnapshot,
    /// Generations swapped out and still draining.
    draining: Vec<Arc<Shared<I, O>>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self {
            carried: CountsSnapshot::default(),
            draining: Vec::new(),
        }
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> History<I, O> {
    /// A generation is done draining: keep its counts, let it go.
    fn retire(&mut self, old: &Arc<Shared<I, O>>) {
        self.draining.retain(|s| !Arc::ptr_eq(s, old));
        add_attempts(&mut self.carried, &old.attempt_counts());
    }

    /// Attempts counted by every generation but the current one.
    fn attempts(&self) -> CountsSnapshot {
        let mut all = self.carried;
        for s in &self.draining {
            add_attempts(&mut all, &s.attempt_counts());
        }
        all
    }
}

/// Adds the attempt counters (the ones workers keep) of `from` into `into`.
fn add_attempts(into: &mut CountsSnapshot, from: &CountsSnapshot) {
    into.started += from.started;
    into.failed_attempts += from.failed_attempts;
    into.retried += from.retried;
}

// A refused request comes back whole inside `SubmitError`, by design: the
// caller gets its input back without an allocation on the refusal path.
#[allow(clippy::result_large_err)]
impl<I: Send + Sync + 'static, O: Send + 'static> Pool<I, O> {
    /// Starts describing a pool.
    pub fn builder() -> PoolBuilder<I, O> {
        PoolBuilder::new()
    }

    /// Queues a request if a queue has room now; otherwise hands it back at
    /// once as [`SubmitError::Full`].
    pub fn try_submit(&self, request: Request<I>) -> Result<TaskHandle<O>, SubmitError<I>> {
        self.admit(request, Wait::No)
    }

    /// Queues a request, blocking while every eligible queue is full.
    pub fn submit(&self, request: Request<I>) -> Result<TaskHandle<O>, SubmitError<I>> {
        self.admit(request, Wait::Forever)
    }

    /// Queues a request, blocking up to `timeout` while every eligible queue
    /// is full; then hands it back as [`SubmitError::Timeout`].
    pub fn submit_timeout(
        &self,
        request: Request<I>,
        timeout: Duration,
    ) -> Result<TaskHandle<O>, SubmitError<I>> {
        // A timeout too large to be a point in time waits as long as `submit`.
        let wait = crate::clock::checked_deadline(timeout).map_or(Wait::Forever, Wait::Until);
        self.admit(request, wait)
    }

    /// Submits many requests in order, blocking on each while queues are full.
    pub fn submit_batch(
        &self,
        requests: impl IntoIterator<Item = Request<I>>,
    ) -> Vec<Result<TaskHandle<O>, SubmitError<I>>> {
        requests.into_iter().map(|r| self.submit(r)).collect()
    }

    /// Puts a dead letter back into the pool as a new request (same input,
    /// priority and group; no deadline), blocking while queues are full. A
    /// refused letter comes back inside the error.
    pub fn replay(&self, letter: DeadLetter<I>) -> Result<TaskHandle<O>, ReplayError<I>> {
        let DeadLetter {
            id,
            input,
            priority,
            group,
            errors,
            submitted_at,
            dead_lettered_at,
        } = letter;
        self.admit_shared(input, priority, None, group, Wait::Forever)
            .map_err(|r| {
                let reason = r.describe();
                ReplayError {
                    letter: DeadLetter {
                        id,
                        input: r.input,
                        priority,
                        group: r.group,
                        errors,
                        submitted_at,
                        dead_lettered_at,
                    },
                    reason,
                }
            })
    }

    /// Drains the dead-letter queue and replays every letter.
    pub fn replay_dead_letters(&self) -> Vec<Result<TaskHandle<O>, ReplayError<I>>> {
        self.env
            .dlq
            .drain()
            .into_iter()
            .map(|l| self.replay(l))
            .collect()
    }

    /// The dead-letter queue: inspect or drain it.
    pub fn dead_letters(&self) -> &DeadLetterQueue<I> {
        &self.env.dlq
    }

    /// The device group names, in routing order.
    pub fn group_names(&self) -> Vec<String> {
        self.current
            .load()
            .groups
            .iter()
            .map(|g| g.name.to_string())
            .collect()
    }

    /// A snapshot of every counter, queue depth, latency, breaker and
    /// health state.
    pub fn stats(&self) -> PoolStats {
        // The history lock first: a reload swaps generations under it.
        let history = self.env.history.lock();
        let s = &*self.current.load_full();
        let now = s.clock_nanos();
        let groups: Vec<_> = s.groups.iter().map(|g| g.stats(now)).collect();
        let mut counts = s.ledger.counts.snapshot();
        add_attempts(&mut counts, &history.attempts());
        drop(history);
        for g in &groups {
            add_attempts(&mut counts, &g.counts);
        }
        let workers: Vec<_> = s
            .groups
            .iter()
            .flat_map(|g| {
                let mut all: Vec<_> = g.workers.lock().iter().map(|w| w.shared.clone()).collect();
                all.extend(g.retired.lock().iter().cloned());
                all
            })
            .collect();
        // From the same per-worker readings as the group stats, so the
        // snapshot agrees with itself.
        let parked_workers = groups
            .iter()
            .flat_map(|g| &g.workers)
            .filter(|w| w.parked)
            .count();
        let floor = s.admit_floor.load(Ordering::Relaxed);
        let memory = MemoryStats {
            level: if s.pressure_high.load(Ordering::Relaxed) {
                PressureLevel::High
            } else {
                PressureLevel::Normal
            },
            last_sample: *s.last_sample.lock(),
            parked_workers,
            transitions: s.pressure_events.get(),
            refusing_below: (floor != 0)
                .then(|| Priority::ALL[Priority::COUNT - usize::from(floor)]),
        };
        PoolStats {
            memory,
            counts,
            in_flight: s.ledger.in_flight(),
            late_results_discarded: s.ledger.late_results.get(),
            supervisor_panics: self.env.supervisor_panics.get(),
            supervisor_checks: s.supervisor_checks.get(),
            dead_letter: s.dlq.stats(),
            latency: Latencies::snapshot(workers.iter().map(|w| &w.latency)),
            health: HealthSummary::of(&groups),
            groups,
        }
    }

    /// Closes a group's circuit breaker by hand. False if there is no such group.
    pub fn reset_breaker(&self, group: &str) -> bool {
        let s = self.current.load();
        match s.group_index(group) {
            Some(g) => {
                s.groups[g].breaker.reset();
                true
            }
            None => false,
        }
    }

    /// Applies a new configuration while the pool runs: worker counts,
    /// queue capacities, breakers, retry, memory and scaling settings, and
    /// groups added or removed. Each group keeps its session factory (by
    /// name); a new group needs one from [`Pool::reload_with`].
    ///
    /// How: a new generation of groups, workers and supervisor starts with
    /// the new configuration; once every worker has its session, new
    /// requests go to it. The old generation drains what it holds (up to
    /// `drain_timeout`). What it still holds then:
    ///
    /// - a queued request (or one waiting for a retry) is handed over to
    ///   the new generation and runs once, there;
    /// - a call still running is handed over like a stuck call: the request
    ///   runs again in the new generation and resolves once, with whichever
    ///   call finishes first. The outcome is exactly-once; the session may
    ///   see the request twice (at-least-once execution). Give
    ///   `drain_timeout` more than the longest call to avoid it;
    /// - a request restricted to a group the reload removes
    ///   ([`Request::group`]) is never run elsewhere: it is dead-lettered
    ///   with an error naming the group.
    ///
    /// [`ReloadReport`] counts each. Every accepted request still resolves
    /// exactly once, and the pool-wide counters carry on, monotonic across
    /// reloads (group counters start again with the new groups). An invalid
    /// configuration, a missing factory or a failed session build leaves the
    /// running pool untouched and returns the error.
    pub fn reload(
        &self,
        config: PoolConfig,
        drain_timeout: Duration,
    ) -> Result<ReloadReport, BuildError> {
        self.reload_with(config, Vec::new(), drain_timeout)
    }

    /// [`Pool::reload`] with factories for groups the pool does not have yet
    /// (or to replace a group's factory).
    pub fn reload_with(
        &self,
        config: PoolConfig,
        factories: Vec<NamedFactory<I, O>>,
        drain_timeout: Duration,
    ) -> Result<ReloadReport, BuildError> {
        let started = Instant::now();
        config.validate()?;
        let mut life = self.lifecycle.lock();
        let old = self.current.load_full();
        // SeqCst: the same flag and order as admission reads it.
        if old.closed.load(Ordering::SeqCst) {
            return Err(BuildError::Group {
                group: String::new(),
                message: "the pool is shut down; build a new one".into(),
            });
        }
        let mut chosen = factories;
        for (name, f) in self.env.factories.lock().iter() {
            let wanted = config.groups.iter().any(|g| &g.name == name);
            if wanted && !chosen.iter().any(|(n, _)| n == name) {
                chosen.push((name.clone(), Arc::clone(f)));
            }
        }
        let before: Vec<String> = old.groups.iter().map(|g| g.name.to_string()).collect();
        let (fresh, fresh_life) = start_generation(config, chosen, &self.env)?;
        let after: Vec<String> = fresh.groups.iter().map(|g| g.name.to_string()).collect();
        // From here on, submitters use the new generation. The old one is
        // listed as draining in the same step, so a stats snapshot counts
        // its workers exactly once.
        {
            let mut history = self.env.history.lock();
            history.draining.push(Arc::clone(&old));
            self.current.store(Arc::clone(&fresh));
        }
        let mut old_life = std::mem::replace(&mut *life, fresh_life);
        drop(life);
        let dead_lettered = std::cell::Cell::new(0);
        let handover = crate::shutdown::run(
            &old,
            &mut old_life,
            crate::clock::saturating_add(Instant::now(), drain_timeout),
            crate::shutdown::Mode::HandOver(&fresh, &dead_lettered),
        );
        self.env.history.lock().retire(&old);
        Ok(ReloadReport {
            added: after
                .iter()
                .filter(|n| !before.contains(n))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|n| !after.contains(n))
                .cloned()
                .collect(),
            kept: after
                .iter()
                .filter(|n| before.contains(n))
                .cloned()
                .collect(),
            drained: handover.drained,
            handed_over: handover.cancelled_queued,
            handed_over_running: handover.cancelled_running,
            dead_lettered: dead_lettered.get(),
            elapsed: started.elapsed(),
        })
    }

    /// Stops admitting, lets the workers drain what is queued, joins them and
    /// reports. Requests still queued (or waiting for a retry) at the
    /// deadline are cancelled; a call still running then is given up on
    /// (its request cancelled, its thread detached). Calling it again returns
    /// the first report.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let report = crate::shutdown::run(
            &self.current.load_full(),
            &mut self.lifecycle.lock(),
            crate::clock::saturating_add(Instant::now(), timeout),
            crate::shutdown::Mode::Shutdown,
        );
        ShutdownReport {
            stats: self.stats(),
            ..report
        }
    }

    fn admit(&self, request: Request<I>, wait: Wait) -> Result<TaskHandle<O>, SubmitError<I>> {
        let Request {
            input,
            priority,
            deadline,
            group,
        } = request;
        self.admit_shared(Arc::new(input), priority, deadline, group, wait)
            .map_err(Refused::into_submit_error)
    }

    fn admit_shared(
        &self,
        mut input: Arc<I>,
        priority: Priority,
        deadline: Option<Instant>,
        mut group: Option<String>,
        wait: Wait,
    ) -> Result<TaskHandle<O>, Refused<I>> {
        // A guard, not a cloned `Arc`: no shared reference count is touched
        // on the submit path.
        let mut generation = self.current.load();
        loop {
            match self.admit_in(&generation, input, priority, deadline, group, wait) {
                // A reload closed the generation this submitter was entering:
                // the request goes to the new one.
                Err(r) if matches!(r.kind, RefusedKind::Closed) => {
                    let now = self.current.load();
                    if Arc::ptr_eq(&*now, &*generation) {
                        self.env.ledger.counts.rejected.inc();
                        return Err(r);
                    }
                    generation = now;
                    (input, group) = (r.input, r.group);
                }
                Err(r) => {
                    self.env.ledger.counts.rejected.inc();
                    return Err(r);
                }
                ok => return ok,
            }
        }
    }

    fn admit_in(
        &self,
        s: &Shared<I, O>,
        input: Arc<I>,
        priority: Priority,
        deadline: Option<Instant>,
        group: Option<String>,
        wait: Wait,
    ) -> Result<TaskHandle<O>, Refused<I>> {
        let _entry = Entry::new(&s.entering);
        let refuse = |input, group, kind| {
            Err(Refused {
                input,
                priority,
                deadline,
                group,
                kind,
            })
        };
        // SeqCst: read after raising `entering` (Dekker with shutdown).
        if s.closed.load(Ordering::SeqCst) {
            return refuse(input, group, RefusedKind::Closed);
        }
        let floor = s.admit_floor.load(Ordering::Relaxed);
        if floor != 0 && (priority as u8) + 1 < floor {
            return refuse(input, group, RefusedKind::MemoryPressure);
        }
        let only_group = match &group {
            None => None,
            Some(name) => match s.group_index(name) {
                Some(i) => Some(i),
                None => return refuse(input, group, RefusedKind::UnknownGroup),
            },
        };
        let slot = Arc::new(Slot::new(
            s.next_id.fetch_add(1, Ordering::Relaxed),
            Arc::clone(&s.ledger),
        ));
        let now = Instant::now();
        let job = Job {
            slot: Arc::clone(&slot),
            input,
            priority,
            deadline,
            only_group,
            failed_groups: 0,
            submitted: now,
            enqueued: now,
            attempts: 0,
            errors: Vec::new(),
            probe: false,
        };
        let (job, kind) = match s.offer(job) {
            Ok(_) => {
                s.ledger.counts.accepted.inc();
                return Ok(TaskHandle::new(slot));
            }
            Err((job, Refusal::Invalid(g, error))) => (job, RefusedKind::Invalid(g, error)),
            Err((job, Refusal::Unavailable)) => (job, RefusedKind::Unavailable),
            Err((job, Refusal::Full)) => {
                let until = match wait {
                    Wait::No => {
                        if let Some(g) = job.only_group {
                            s.groups[g].counts.rejected.inc();
                        }
                        return refuse(job.input, group, RefusedKind::Full);
                    }
                    Wait::Forever => None,
                    Wait::Until(t) => Some(t),
                };
                match s.wait_for_room(job, until) {
                    Ok(_) => {
                        s.ledger.counts.accepted.inc();
                        return Ok(TaskHandle::new(slot));
                    }
                    Err((job, WaitEnd::Timeout)) => (job, RefusedKind::Timeout),
                    Err((job, WaitEnd::Closed)) => (job, RefusedKind::Closed),
                    Err((job, WaitEnd::Unavailable)) => (job, RefusedKind::Unavailable),
                }
            }
        };
        refuse(job.input, group, kind)
    }
}

/// A refusal before the request was queued, with its parts.
struct Refused<I> {
    input: Arc<I>,
    priority: Priority,
    deadline: Option<Instant>,
    group: Option<String>,
    kind: RefusedKind,
}

enum RefusedKind {
    MemoryPressure,
    Full,
    Timeout,
    Closed,
    UnknownGroup,
    Unavailable,
    Invalid(String, InputError),
}

impl<I> Refused<I> {
    fn into_submit_error(self) -> SubmitError<I> {
        let Refused {
            input,
            priority,
            deadline,
            group,
            kind,
        } = self;
        // Refused before any queue saw it: the caller's input has one owner.
        let input = Arc::try_unwrap(input)
            .unwrap_or_else(|_| unreachable!("a refused input has one owner"));
        let request = Request {
            input,
            priority,
            deadline,
            group,
        };
        match kind {
            RefusedKind::Full => SubmitError::Full(request),
            RefusedKind::MemoryPressure => SubmitError::MemoryPressure(request),
            RefusedKind::Timeout => SubmitError::Timeout(request),
            RefusedKind::Closed => SubmitError::Closed(request),
            RefusedKind::UnknownGroup => SubmitError::UnknownGroup(request),
            RefusedKind::Unavailable => SubmitError::Unavailable(request),
            RefusedKind::Invalid(group, error) => SubmitError::Invalid {
                request,
                group,
                error,
            },
        }
    }

    fn describe(&self) -> String {
        match &self.kind {
            RefusedKind::Full => "every eligible queue is full".into(),
            RefusedKind::MemoryPressure => "memory pressure: low priorities are refused".into(),
            RefusedKind::Timeout => "the queues stayed full until the timeout".into(),
            RefusedKind::Closed => "the pool is shut down".into(),
            RefusedKind::UnknownGroup => format!(
                "no group named `{}`",
                self.group.as_deref().unwrap_or_default()
            ),
            RefusedKind::Unavailable => {
                "no group can take requests now (breakers open or no healthy worker)".into()
            }
            RefusedKind::Invalid(g, e) => format!("group `{g}`: {e}"),
        }
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> Drop for Pool<I, O> {
    fn drop(&mut self) {
        crate::shutdown::run(
            &self.current.load_full(),
            &mut self.lifecycle.lock(),
            crate::clock::saturating_add(Instant::now(), self.drop_timeout),
            crate::shutdown::Mode::Shutdown,
        );
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> std::fmt::Debug for Pool<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field(
                "groups",
                &self
                    .current
                    .load()
                    .groups
                    .iter()
                    .map(|g| g.name.to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Instant),
}

type OverflowHook<I> = Box<dyn Fn(DeadLetter<I>) + Send + Sync>;

/// Describes a pool: its groups with their session factories, retries and
/// the dead-letter queue. [`PoolBuilder::build`] starts it.
pub struct PoolBuilder<I, O> {
    config: PoolConfig,
    factories: Vec<(String, Arc<dyn SessionFactory<I, O>>)>,
    on_overflow: Option<OverflowHook<I>>,
    drop_timeout: Duration,
    clock: Arc<dyn Clock>,
    probe: Arc<dyn MemoryProbe>,
    on_pressure: Option<PressureHook>,
}

impl<I, O> std::fmt::Debug for PoolBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> Default for PoolBuilder<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> PoolBuilder<I, O> {
    /// An empty description with default retry and dead-letter settings.
    pub fn new() -> Self {
        Self {
            config: PoolConfig::default(),
            factories: Vec::new(),
            on_overflow: None,
            drop_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            probe: Arc::new(SysinfoProbe::new()),
            on_pressure: None,
        }
    }

    /// Sets memory-pressure control.
    pub fn memory(mut self, memory: MemoryConfig) -> Self {
        self.config.memory = memory;
        self
    }

    /// Sets where memory readings come from (default: [`SysinfoProbe`]).
    pub fn memory_probe(mut self, probe: Arc<dyn MemoryProbe>) -> Self {
        self.probe = probe;
        self
    }

    /// Called on every memory-pressure transition.
    pub fn on_pressure(mut self, hook: impl Fn(&PressureEvent) + Send + Sync + 'static) -> Self {
        self.on_pressure = Some(Box::new(hook));
        self
    }

    /// Sets the clock breakers and stuck-call detection read (tests use a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts from a whole configuration (for example one read from YAML);
    /// give each group its factory with [`PoolBuilder::factory`].
    pub fn from_config(config: PoolConfig) -> Self {
        Self {
            config,
            ..Self::new()
        }
    }

    /// Adds a device group and the factory of its sessions.
    pub fn group(mut self, config: GroupConfig, factory: impl SessionFactory<I, O>) -> Self {
        self.factories
            .push((config.name.clone(), Arc::new(factory)));
        self.config.groups.push(config);
        self
    }

    /// Sets the session factory of a group named in the configuration.
    pub fn factory(mut self, group: impl Into<String>, factory: impl SessionFactory<I, O>) -> Self {
        self.factories.push((group.into(), Arc::new(factory)));
        self
    }

    /// Adds a device group whose factory the caller keeps a handle on (to
    /// read its counters, or to share it).
    pub fn group_shared(
        mut self,
        config: GroupConfig,
        factory: Arc<dyn SessionFactory<I, O>>,
    ) -> Self {
        self.factories.push((config.name.clone(), factory));
        self.config.groups.push(config);
        self
    }

    /// Sets retry and backoff.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Sets how often the supervisor checks health and stuck calls.
    pub fn health_check_interval(mut self, every: Duration) -> Self {
        self.config.health_check_interval = every;
        self
    }

    /// Sets the dead-letter queue's bounds.
    pub fn dead_letter(mut self, config: DeadLetterConfig) -> Self {
        self.config.dead_letter = config;
        self
    }

    /// Called with each letter the dead-letter queue's overflow policy pushes out.
    pub fn on_dead_letter_overflow(
        mut self,
        hook: impl Fn(DeadLetter<I>) + Send + Sync + 'static,
    ) -> Self {
        self.on_overflow = Some(Box::new(hook));
        self
    }

    /// How long dropping the pool waits for queued work (default 30 s).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Validates the configuration, spawns the supervisor and the workers,
    /// and waits until every worker has built its first session.
    pub fn build(self) -> Result<Pool<I, O>, BuildError> {
        let PoolBuilder {
            config,
            factories,
            on_overflow,
            drop_timeout,
            clock,
            probe,
            on_pressure,
        } = self;
        config.validate()?;
        let env = Env {
            ledger: Arc::new(Ledger::default()),
            dlq: Arc::new(DeadLetterQueue::new(
                config.dead_letter.clone(),
                on_overflow,
            )),
            next_id: Arc::new(AtomicU64::new(1)),
            clock,
            probe,
            on_pressure: on_pressure.map(Arc::new),
            supervisor_panics: Arc::default(),
            history: Mutex::default(),
            factories: Mutex::new(Vec::new()),
        };
        let (shared, life) = start_generation(config, factories, &env)?;
        Ok(Pool {
            current: ArcSwap::new(shared),
            lifecycle: Mutex::new(life),
            env,
            drop_timeout,
        })
    }
}

/// Starts one generation: its groups, supervisor and workers, sharing the
/// pool's ledger and dead-letter queue. On failure nothing is left running.
fn start_generation<I: Send + Sync + 'static, O: Send + 'static>(
    mut config: PoolConfig,
    mut factories: Vec<NamedFactory<I, O>>,
    env: &Env<I, O>,
) -> Result<Generation<I, O>, BuildError> {
    // `config` was validated by the caller: at most MAX_GROUPS groups, so
    // a group index fits the routing bitmasks.
    debug_assert!(config.groups.len() <= crate::router::MAX_GROUPS);
    let mut groups = Vec::with_capacity(config.groups.len());
    let mut kept = Vec::new();
    for g in &mut config.groups {
        let Some(pos) = factories.iter().position(|(n, _)| *n == g.name) else {
            return Err(BuildError::Group {
                group: g.name.clone(),
                message:
                    "no session factory; add one with PoolBuilder::factory (or Pool::reload_with)"
                        .into(),
            });
        };
        let (name, factory) = factories.swap_remove(pos);
        kept.push((name, Arc::clone(&factory)));
        groups.push(Group::new(g.clone(), factory, Arc::clone(&env.clock)));
    }
    if let Some((name, _)) = factories.first() {
        return Err(BuildError::Group {
            group: name.clone(),
            message: "a factory was given for a group the configuration does not have".into(),
        });
    }
    // Stable: equal priorities keep their configured order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.config.priority));
    let has_ties = groups
        .windows(2)
        .any(|w| w[0].config.priority == w[1].config.priority);

    let (supervisor_tx, supervisor_rx) = unbounded();
    let (closing_tx, closing_rx) = bounded(0);
    let clock = Arc::clone(&env.clock);
    let shared = Arc::new(Shared {
        groups,
        has_ties,
        ledger: Arc::clone(&env.ledger),
        dlq: Arc::clone(&env.dlq),
        retry: config.retry.clone(),
        health_interval: config.health_check_interval,
        system_clock: clock.is_system(),
        epoch: clock.now(),
        clock,
        closed: AtomicBool::new(false),
        entering: CachePadded::new(AtomicUsize::new(0)),
        next_id: Arc::clone(&env.next_id),
        pending_retries: AtomicUsize::new(0),
        supervisor_tx,
        closing_rx,
        memory: config.memory.clone(),
        probe: Arc::clone(&env.probe),
        on_pressure: env.on_pressure.clone(),
        admit_floor: AtomicU8::new(0),
        pressure_high: AtomicBool::new(false),
        last_sample: Mutex::new(None),
        pressure_events: Counter::default(),
        supervisor_panics: Arc::clone(&env.supervisor_panics),
        supervisor_checks: Counter::default(),
    });
    let supervisor = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("accelpool-supervisor".into())
            .spawn(move || supervisor::run(shared, supervisor_rx))?
    };
    let mut life = Lifecycle::new(closing_tx, supervisor);
    if let Err(e) = start_workers(&shared) {
        let deadline = Instant::now() + Duration::from_secs(5);
        crate::shutdown::run(&shared, &mut life, deadline, crate::shutdown::Mode::Discard);
        return Err(e);
    }
    *env.factories.lock() = kept;
    Ok((shared, life))
}

/// Spawns every group's workers and waits for their first sessions.
///
/// The configured worker count is honoured whatever the cores: a worker
/// that drives an NPU, a GPU or a remote device mostly waits, so more
/// workers than cores can be right. When there are more pinned workers than
/// cores, cores are shared round-robin; the startup log says so and each
/// such worker's stats show `shares_core`.
fn start_workers<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Arc<Shared<I, O>>,
) -> Result<(), BuildError> {
    let plan = CorePlan::detect();
    let mut placed = Vec::new();
    let mut seq = 0;
    for (gi, g) in shared.groups.iter().enumerate() {
        for wi in 0..g.config.workers {
            let core = if g.config.pin {
                seq += 1;
                plan.core_for(seq - 1)
            } else {
                None
            };
            placed.push((gi, wi, core));
        }
    }
    let mut per_core = std::collections::HashMap::new();
    for core in placed.iter().filter_map(|p| p.2) {
        *per_core.entry(core.id).or_insert(0usize) += 1;
    }
    let total = placed.len();
    let cores = pinning::available_cores();
    if total > cores {
        log::info!(
            "{total} workers over {cores} available core(s): workers share cores \
             (each group keeps its configured count; see WorkerStats::shares_core)"
        );
    }
    let (ready_tx, ready_rx) = unbounded();
    let mut spawned = 0;
    for &(gi, wi, core) in &placed {
        let shares = core.is_some_and(|c| per_core[&c.id] > 1);
        let slot = spawn_worker(shared, gi, wi, core, shares, Some(ready_tx.clone()))?;
        spawned += 1;
        shared.groups[gi].workers.lock().push(slot);
    }
    drop(ready_tx);
    for _ in 0..spawned {
        match ready_rx.recv() {
            Ok((_, _, Ok(()))) => {}
            Ok((gi, wi, Err(error))) => {
                return Err(BuildError::Session {
                    group: shared.groups[gi].name.to_string(),
                    worker: wi,
                    error,
                })
            }
            Err(_) => break,
        }
    }
    Ok(())
}
