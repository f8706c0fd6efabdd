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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, Select, Sender, TrySendError};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::config::{DeadLetterConfig, GroupConfig, PoolConfig, RetryPolicy};
use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::error::{BuildError, InputError, SubmitError};
use crate::group::{Group, WorkerSlot};
use crate::handle::{CancelReason, Outcome, Slot, TaskHandle};
use crate::pinning::{self, CorePlan};
use crate::request::{Job, Request};
use crate::router::{self, MAX_GROUPS};
use crate::session::{SessionError, SessionFactory};
use crate::shutdown::Lifecycle;
use crate::stats::{Latencies, Ledger, PoolStats};
use crate::supervisor::{self, Msg};
use crate::worker::{self, WorkerShared, WorkerStart};
use crate::ShutdownReport;

/// State shared by the pool handle, its workers and its supervisor.
pub(crate) struct Shared<I, O> {
    /// In routing order: priority, highest first.
    pub groups: Vec<Group<I, O>>,
    has_ties: bool,
    pub ledger: Arc<Ledger>,
    pub dlq: DeadLetterQueue<I>,
    pub retry: RetryPolicy,
    epoch: Instant,
    pub closed: AtomicBool,
    pub entering: CachePadded<AtomicUsize>,
    next_id: AtomicU64,
    pub supervisor_tx: Sender<Msg<I, O>>,
    closing_rx: Receiver<()>,
}

enum Refusal {
    Full,
    Invalid(String, InputError),
}

// Refusals hand the job back by value: boxing it would allocate on the
// submit path for every full queue.
#[allow(clippy::result_large_err)]
impl<I: Send + 'static, O: Send + 'static> Shared<I, O> {
    /// Nanoseconds since the pool started (never 0, which means idle).
    pub(crate) fn epoch_nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub(crate) fn schedule_retry(&self, due: Instant, job: Job<I, O>) {
        if let Err(e) = self.supervisor_tx.send(Msg::Retry(due, job)) {
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
            Err((job, Refusal::Full)) => Err(job),
            Err((mut job, Refusal::Invalid(group, error))) => {
                // Valid at submit, so only a reload could get here; fail it visibly.
                job.errors.push(crate::handle::AttemptError {
                    attempt: job.attempts,
                    group: Arc::from("router"),
                    worker: 0,
                    error: SessionError::permanent(format!("group `{group}`: {error}")),
                    at: SystemTime::now(),
                });
                crate::retry::dead_letter(self, job);
                Ok(())
            }
        }
    }

    /// Offers a job to the eligible groups in routing order.
    fn offer(&self, mut job: Job<I, O>) -> Result<usize, (Job<I, O>, Refusal)> {
        let route = router::candidates(
            &self.groups,
            self.has_ties,
            job.only_group,
            job.failed_groups,
        );
        let mut invalid = None;
        for &gi in route.as_slice() {
            let g = &self.groups[gi as usize];
            if let Err(error) = g.factory.validate(&job.input) {
                invalid.get_or_insert_with(|| (g.name.to_string(), error));
                continue;
            }
            invalid = None;
            match g.levels.try_send(job.priority, job) {
                Ok(()) => {
                    g.counts.accepted.inc();
                    return Ok(gi as usize);
                }
                Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => job = j,
            }
        }
        Err((
            job,
            invalid.map_or(Refusal::Full, |(g, e)| Refusal::Invalid(g, e)),
        ))
    }

    /// Blocks until one of the eligible queues has room, `until` passes, or
    /// the pool closes.
    fn wait_for_room(
        &self,
        mut job: Job<I, O>,
        until: Option<Instant>,
    ) -> Result<usize, (Job<I, O>, WaitEnd)> {
        loop {
            let route = router::candidates(&self.groups, self.has_ties, job.only_group, 0);
            let route: Vec<u8> = route
                .as_slice()
                .iter()
                .copied()
                .filter(|&gi| {
                    self.groups[gi as usize]
                        .factory
                        .validate(&job.input)
                        .is_ok()
                })
                .collect();
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
            match op.send(g.levels.sender(job.priority), job) {
                Ok(()) => {
                    g.counts.accepted.inc();
                    return Ok(gi);
                }
                Err(e) => job = e.into_inner(),
            }
        }
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| &*g.name == name)
    }
}

enum WaitEnd {
    Timeout,
    Closed,
}

/// Counts a submitter in and out of admission (see the module docs).
struct Entry<'a>(&'a AtomicUsize);

impl<'a> Entry<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        Self(c)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
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
pub struct Pool<I, O> {
    shared: Arc<Shared<I, O>>,
    lifecycle: Mutex<Lifecycle<I, O>>,
    drop_timeout: Duration,
}

// A refused request comes back whole inside `SubmitError`, by design: the
// caller gets its input back without an allocation on the refusal path.
#[allow(clippy::result_large_err)]
impl<I: Send + 'static, O: Send + 'static> Pool<I, O> {
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
        self.admit(request, Wait::Until(Instant::now() + timeout))
    }

    /// Submits many requests in order, blocking on each while queues are full.
    pub fn submit_batch(
        &self,
        requests: impl IntoIterator<Item = Request<I>>,
    ) -> Vec<Result<TaskHandle<O>, SubmitError<I>>> {
        requests.into_iter().map(|r| self.submit(r)).collect()
    }

    /// Puts a dead letter back into the pool as a new request (same input,
    /// priority and group; no deadline), blocking while queues are full.
    pub fn replay(&self, letter: DeadLetter<I>) -> Result<TaskHandle<O>, SubmitError<I>> {
        let mut r = Request::new(letter.input).priority(letter.priority);
        r.group = letter.group;
        self.submit(r)
    }

    /// Drains the dead-letter queue and replays every letter.
    pub fn replay_dead_letters(&self) -> Vec<Result<TaskHandle<O>, SubmitError<I>>> {
        self.shared
            .dlq
            .drain()
            .into_iter()
            .map(|l| self.replay(l))
            .collect()
    }

    /// The dead-letter queue: inspect or drain it.
    pub fn dead_letters(&self) -> &DeadLetterQueue<I> {
        &self.shared.dlq
    }

    /// The device group names, in routing order.
    pub fn group_names(&self) -> Vec<String> {
        self.shared
            .groups
            .iter()
            .map(|g| g.name.to_string())
            .collect()
    }

    /// A snapshot of every counter, queue depth and latency.
    pub fn stats(&self) -> PoolStats {
        let s = &*self.shared;
        let groups: Vec<_> = s.groups.iter().map(|g| g.stats()).collect();
        let mut counts = s.ledger.counts.snapshot();
        for g in &groups {
            counts.started += g.counts.started;
            counts.failed_attempts += g.counts.failed_attempts;
            counts.retried += g.counts.retried;
        }
        let workers: Vec<_> = s
            .groups
            .iter()
            .flat_map(|g| {
                g.workers
                    .lock()
                    .iter()
                    .map(|w| w.shared.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        PoolStats {
            counts,
            in_flight: s.ledger.in_flight(),
            late_results_discarded: s.ledger.late_results.get(),
            dead_letter: s.dlq.stats(),
            latency: Latencies::snapshot(workers.iter().map(|w| &w.latency)),
            groups,
        }
    }

    /// Stops admitting, lets the workers drain what is queued, joins them and
    /// reports. Requests still queued (or waiting for a retry) at the
    /// deadline are cancelled; a call still running then is given up on
    /// (its request cancelled, its thread detached). Calling it again returns
    /// the first report.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let report = crate::shutdown::run(&self.shared, &mut self.lifecycle.lock(), timeout);
        ShutdownReport {
            stats: self.stats(),
            ..report
        }
    }

    fn admit(&self, request: Request<I>, wait: Wait) -> Result<TaskHandle<O>, SubmitError<I>> {
        let s = &*self.shared;
        let _entry = Entry::new(&s.entering);
        if s.closed.load(Ordering::SeqCst) {
            s.ledger.counts.rejected.inc();
            return Err(SubmitError::Closed(request));
        }
        let Request {
            input,
            priority,
            deadline,
            group,
        } = request;
        let only_group = match &group {
            None => None,
            Some(name) => match s.group_index(name) {
                Some(i) => Some(i),
                None => {
                    s.ledger.counts.rejected.inc();
                    return Err(SubmitError::UnknownGroup(Request {
                        input,
                        priority,
                        deadline,
                        group,
                    }));
                }
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
            submitted_at: SystemTime::now(),
            enqueued: now,
            attempts: 0,
            errors: Vec::new(),
        };
        let refused = match s.offer(job) {
            Ok(_) => None,
            Err((job, Refusal::Invalid(g, error))) => Some(SubmitError::Invalid {
                request: job.into_request(group),
                group: g,
                error,
            }),
            Err((job, Refusal::Full)) => {
                let until = match wait {
                    Wait::No => return Err(self.refuse_full(job, group)),
                    Wait::Forever => None,
                    Wait::Until(t) => Some(t),
                };
                match s.wait_for_room(job, until) {
                    Ok(_) => None,
                    Err((job, WaitEnd::Timeout)) => {
                        Some(SubmitError::Timeout(job.into_request(group)))
                    }
                    Err((job, WaitEnd::Closed)) => {
                        Some(SubmitError::Closed(job.into_request(group)))
                    }
                }
            }
        };
        match refused {
            None => {
                s.ledger.counts.accepted.inc();
                Ok(TaskHandle::new(slot))
            }
            Some(e) => {
                s.ledger.counts.rejected.inc();
                Err(e)
            }
        }
    }

    #[cold]
    fn refuse_full(&self, job: Job<I, O>, group: Option<String>) -> SubmitError<I> {
        self.shared.ledger.counts.rejected.inc();
        if let Some(g) = job.only_group {
            self.shared.groups[g].counts.rejected.inc();
        }
        SubmitError::Full(job.into_request(group))
    }
}

impl<I, O> Drop for Pool<I, O> {
    fn drop(&mut self) {
        crate::shutdown::run(&self.shared, &mut self.lifecycle.lock(), self.drop_timeout);
    }
}

impl<I, O> std::fmt::Debug for Pool<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field(
                "groups",
                &self
                    .shared
                    .groups
                    .iter()
                    .map(|g| &*g.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

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
}

impl<I, O> std::fmt::Debug for PoolBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Default for PoolBuilder<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Send + 'static, O: Send + 'static> PoolBuilder<I, O> {
    /// An empty description with default retry and dead-letter settings.
    pub fn new() -> Self {
        Self {
            config: PoolConfig::default(),
            factories: Vec::new(),
            on_overflow: None,
            drop_timeout: Duration::from_secs(30),
        }
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
            mut config,
            mut factories,
            on_overflow,
            drop_timeout,
        } = self;
        config.validate()?;
        if config.groups.len() > MAX_GROUPS {
            return Err(BuildError::Config(crate::ConfigError::new(
                "groups",
                format!("{} groups is outside 1..={MAX_GROUPS}", config.groups.len()),
            )));
        }
        let max = pinning::max_workers();
        let mut groups = Vec::with_capacity(config.groups.len());
        for g in &mut config.groups {
            let Some(pos) = factories.iter().position(|(n, _)| *n == g.name) else {
                return Err(BuildError::Group {
                    group: g.name.clone(),
                    message: "no session factory; add one with PoolBuilder::factory".into(),
                });
            };
            let (_, factory) = factories.swap_remove(pos);
            if g.workers > max {
                log::warn!(
                    "group `{}`: {} workers asked, {max} cores available; using {max}",
                    g.name,
                    g.workers
                );
                g.workers = max;
            }
            groups.push(Group::new(g.clone(), factory));
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
        let shared = Arc::new(Shared {
            groups,
            has_ties,
            ledger: Arc::new(Ledger::default()),
            dlq: DeadLetterQueue::new(config.dead_letter.clone(), on_overflow),
            retry: config.retry.clone(),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            entering: CachePadded::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
            supervisor_tx,
            closing_rx,
        });
        let supervisor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("accelpool-supervisor".into())
                .spawn(move || supervisor::run(shared, supervisor_rx))?
        };
        let pool = Pool {
            shared: Arc::clone(&shared),
            lifecycle: Mutex::new(Lifecycle::new(closing_tx, supervisor)),
            drop_timeout,
        };
        start_workers(&shared).inspect_err(|_| {
            pool.shutdown(Duration::from_secs(5));
        })?;
        Ok(pool)
    }
}

/// Spawns every group's workers and waits for their first sessions.
fn start_workers<I: Send + 'static, O: Send + 'static>(
    shared: &Arc<Shared<I, O>>,
) -> Result<(), BuildError> {
    let plan = CorePlan::detect();
    let (ready_tx, ready_rx) = unbounded::<(usize, usize, Result<(), SessionError>)>();
    let mut seq = 0;
    let mut spawned = 0;
    for (gi, g) in shared.groups.iter().enumerate() {
        for wi in 0..g.config.workers {
            let core = if g.config.pin {
                plan.core_for(seq)
            } else {
                None
            };
            seq += 1;
            let me = Arc::new(WorkerShared::new(wi, core));
            let (control_tx, control_rx) = bounded(0);
            let (exited_tx, exited_rx) = bounded(0);
            let start = WorkerStart {
                shared: Arc::clone(shared),
                group: gi,
                me: Arc::clone(&me),
                control: control_rx,
                ready: ready_tx.clone(),
                _exited: exited_tx,
            };
            let thread = std::thread::Builder::new()
                .name(format!("accelpool-{}-{wi}", g.name))
                .spawn(move || worker::run(start))?;
            spawned += 1;
            g.workers.lock().push(WorkerSlot {
                shared: me,
                control: Some(control_tx),
                exited: exited_rx,
                thread: Some(thread),
            });
        }
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
