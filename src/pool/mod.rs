//! [`Pool`]: the one place that wires the layers together. Admission and
//! routing run on the caller's thread (this module); the builder starts a
//! generation (`generation`); reload swaps generations (`reload`); stats
//! are assembled from every layer's snapshot (`stats`).

#![forbid(unsafe_code)]

#[cfg(any(feature = "openvino", feature = "remote"))]
mod backends;
mod builder;
mod error;
mod generation;
#[cfg(feature = "openvino")]
mod openvino;
mod persistent;
mod reload;
mod stats;

#[cfg(any(feature = "openvino", feature = "remote"))]
pub use backends::BackendError;
pub use builder::PoolBuilder;
pub use error::BuildError;
pub use persistent::NamedFactory;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::core::trace;
use crate::core::{
    checked_deadline, saturating_add, CancelReason, DeadLetter, Job, Outcome, Priority, Refusal,
    ReplayError, Request, SharedInput, ShutdownReport, SubmitError, TaskHandle,
};
use crate::core::{Facts, Keys};
use crate::exec::drain::{Drain, Stopped};
use crate::policy::router::Eligibility;
use crate::policy::DeadLetterQueue;
use generation::Generation;
use persistent::Persistent;

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
    current: ArcSwap<Generation<I, O>>,
    /// Serialises reload and shutdown, and keeps the shutdown's report.
    lifecycle: Mutex<Option<ShutdownReport>>,
    persistent: Persistent<I, O>,
    drop_timeout: Duration,
}

/// How long a submitter waits for room.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Instant),
}

/// A refused request's parts, before it is given back whole.
/// What a request asks of the scheduler, carried through admission.
struct Asks {
    priority: Priority,
    deadline: Option<Instant>,
    keys: Keys,
}

struct Refused<I> {
    input: SharedInput<I>,
    group: Option<String>,
    refusal: Refusal,
}

impl<I> Refused<I> {
    /// The caller's input back: refused before any queue saw it, it has
    /// one owner.
    fn into_input(input: SharedInput<I>) -> I {
        input
            .into_inner()
            .unwrap_or_else(|_| unreachable!("a refused input has one owner"))
    }
}

// A refused request comes back whole inside `SubmitError`, by design: the
// caller gets its input back without an allocation on the refusal path.
#[allow(clippy::result_large_err)]
impl<I: Send + Sync + 'static, O: Send + 'static> Pool<I, O> {
    fn new(
        generation: Arc<Generation<I, O>>,
        persistent: Persistent<I, O>,
        drop_timeout: Duration,
    ) -> Self {
        Self {
            current: ArcSwap::new(generation),
            lifecycle: Mutex::new(None),
            persistent,
            drop_timeout,
        }
    }

    /// Starts describing a pool.
    pub fn builder() -> PoolBuilder<I, O> {
        PoolBuilder::new()
    }

    /// Queues a request if a queue has room now; otherwise hands it back at
    /// once, refused as [`Refusal::Full`].
    pub fn try_submit(&self, request: Request<I>) -> Result<TaskHandle<O>, SubmitError<I>> {
        self.admit(request, Wait::No)
    }

    /// Queues a request, blocking while every eligible queue is full.
    pub fn submit(&self, request: Request<I>) -> Result<TaskHandle<O>, SubmitError<I>> {
        self.admit(request, Wait::Forever)
    }

    /// Queues a request, blocking up to `timeout` while every eligible queue
    /// is full; then hands it back, refused as [`Refusal::Timeout`].
    pub fn submit_timeout(
        &self,
        request: Request<I>,
        timeout: Duration,
    ) -> Result<TaskHandle<O>, SubmitError<I>> {
        // A timeout too large to be a point in time waits as long as `submit`.
        let wait = checked_deadline(timeout).map_or(Wait::Forever, Wait::Until);
        self.admit(request, wait)
    }

    /// Submits many requests in order, blocking on each while queues are
    /// full, as [`Pool::submit`] would one by one; the results come back in
    /// the same order.
    ///
    /// Admission's fixed costs are paid once for the batch instead of once
    /// per request: finding the running configuration and entering its
    /// admission gate (a full memory fence). A reload or shutdown that
    /// closes the gate meanwhile is seen before each request; the rest then
    /// go one by one, to the new configuration (or are refused as
    /// [`Refusal::Closed`]).
    ///
    /// ```
    /// use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
    /// let pool = Pool::<u32, u32>::builder()
    ///     .group(GroupConfig::new("cpu").workers(2).pin(false),
    ///            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(x * 2) }))
    ///     .build()
    ///     .unwrap();
    /// let handles = pool.submit_batch((0..100).map(Request::new));
    /// let sum: u32 = handles.into_iter().map(|h| h.unwrap().wait().unwrap()).sum();
    /// assert_eq!(sum, 9900);
    /// ```
    pub fn submit_batch(
        &self,
        requests: impl IntoIterator<Item = Request<I>>,
    ) -> Vec<Result<TaskHandle<O>, SubmitError<I>>> {
        let mut requests = requests.into_iter();
        let mut out = Vec::with_capacity(requests.size_hint().0);
        loop {
            // Held for the whole batch: a long-lived guard would pin
            // `arc_swap`'s debt slots.
            let generation = self.current.load_full();
            let Some(inside) = generation.gate().enter() else {
                // Closed by a reload or shutdown: this request goes alone,
                // to the new configuration or refused.
                match requests.next() {
                    Some(r) => out.push(self.submit(r)),
                    None => return out,
                }
                continue;
            };
            let mut alone = None;
            for request in requests.by_ref() {
                if generation.gate().is_closed() {
                    alone = Some(request);
                    break;
                }
                let (input, asks, group) = Self::asks(request);
                let input = self.persistent.inputs().wrap(input);
                match self.admit_inside(&generation, input, &asks, group, Wait::Forever) {
                    Ok(handle) => out.push(Ok(handle)),
                    // Woken from a full queue by the gate closing.
                    Err(r) if r.refusal == Refusal::Closed => {
                        alone = Some(Self::refused(r, asks).into_request());
                        break;
                    }
                    Err(r) => {
                        self.persistent.ledger().rejected(&r.refusal);
                        out.push(Err(Self::refused(r, asks)));
                    }
                }
            }
            drop(inside);
            match alone {
                Some(r) => out.push(self.submit(r)),
                None => return out,
            }
        }
    }

    /// Puts a dead letter back into the pool as a new request (same input,
    /// priority, group, tenant and affinity key; no deadline), blocking
    /// while queues are full. A refused letter comes back inside the error,
    /// with the reason.
    pub fn replay(&self, letter: DeadLetter<I>) -> Result<TaskHandle<O>, ReplayError<I>> {
        let DeadLetter {
            id,
            input,
            priority,
            group,
            tenant,
            affinity,
            errors,
            submitted_at,
            dead_lettered_at,
        } = letter;
        // A replayed letter has no deadline: its old one has passed.
        let asks = Asks {
            priority,
            deadline: None,
            keys: Keys { tenant, affinity },
        };
        self.admit_shared(input, &asks, group, Wait::Forever)
            .map_err(|r| ReplayError {
                letter: DeadLetter {
                    id,
                    input: r.input,
                    priority,
                    group: r.group,
                    tenant: asks.keys.tenant,
                    affinity: asks.keys.affinity,
                    errors,
                    submitted_at,
                    dead_lettered_at,
                },
                refusal: r.refusal,
            })
    }

    /// Drains the dead-letter queue and replays every letter.
    pub fn replay_dead_letters(&self) -> Vec<Result<TaskHandle<O>, ReplayError<I>>> {
        self.persistent
            .dlq()
            .drain()
            .into_iter()
            .map(|l| self.replay(l))
            .collect()
    }

    /// The dead-letter queue: inspect or drain it.
    pub fn dead_letters(&self) -> &DeadLetterQueue<I> {
        self.persistent.dlq()
    }

    /// The device group names, in routing order.
    pub fn group_names(&self) -> Vec<String> {
        self.current
            .load()
            .groups()
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .collect()
    }

    /// Closes a group's circuit breaker by hand. False if there is no such group.
    pub fn reset_breaker(&self, group: &str) -> bool {
        let s = self.current.load();
        match s.groups().group_index(group) {
            Some(g) => {
                s.groups().groups()[g].breaker().reset();
                true
            }
            None => false,
        }
    }

    /// Stops admitting, lets the workers drain what is queued, joins them and
    /// reports. Requests still queued (or waiting for a retry) at the
    /// deadline are cancelled; a call still running then is given up on
    /// (its request cancelled, its thread detached). Calling it again returns
    /// the first report.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let mut life = self.lifecycle.lock();
        if let Some(report) = &*life {
            return report.clone();
        }
        let generation = self.current.load_full();
        let stopped = generation.stop(
            saturating_add(Instant::now(), timeout),
            Drain::Ledger(self.persistent.ledger()),
            &mut |job: Job<I, O>| {
                job.slot()
                    .resolve(Outcome::Cancelled(CancelReason::Shutdown))
            },
        );
        let report = shutdown_report(stopped, self.stats());
        *life = Some(report.clone());
        report
    }

    fn admit(&self, request: Request<I>, wait: Wait) -> Result<TaskHandle<O>, SubmitError<I>> {
        let (input, asks, group) = Self::asks(request);
        let input = self.persistent.inputs().wrap(input);
        self.admit_shared(input, &asks, group, wait)
            .map_err(|r| Self::refused(r, asks))
    }

    /// A request's input, what it asks of the scheduler, and its group.
    fn asks(request: Request<I>) -> (I, Asks, Option<String>) {
        let (input, priority, deadline, group, keys) = request.into_parts();
        let asks = Asks {
            priority,
            deadline,
            keys,
        };
        (input, asks, group)
    }

    /// A refused request, whole again, with the reason.
    fn refused(r: Refused<I>, asks: Asks) -> SubmitError<I> {
        let mut request = Request::new(Refused::into_input(r.input)).priority(asks.priority);
        request.set_deadline(asks.deadline);
        request.set_group(r.group);
        request.set_keys(asks.keys);
        SubmitError::new(request, r.refusal)
    }

    fn admit_shared(
        &self,
        mut input: SharedInput<I>,
        asks: &Asks,
        mut group: Option<String>,
        wait: Wait,
    ) -> Result<TaskHandle<O>, Refused<I>> {
        let mut generation = self.current.load();
        loop {
            match self.admit_in(&generation, input, asks, group, wait) {
                // A reload closed the generation this submitter was entering:
                // the request goes to the new one.
                Err(r) if r.refusal == Refusal::Closed => {
                    let now = self.current.load();
                    if Arc::ptr_eq(&*now, &*generation) {
                        self.persistent.ledger().rejected(&r.refusal);
                        return Err(r);
                    }
                    generation = now;
                    (input, group) = (r.input, r.group);
                }
                Err(r) => {
                    self.persistent.ledger().rejected(&r.refusal);
                    return Err(r);
                }
                ok => return ok,
            }
        }
    }

    fn admit_in(
        &self,
        s: &Generation<I, O>,
        input: SharedInput<I>,
        asks: &Asks,
        group: Option<String>,
        wait: Wait,
    ) -> Result<TaskHandle<O>, Refused<I>> {
        let Some(_inside) = s.gate().enter() else {
            return Err(Refused {
                input,
                group,
                refusal: Refusal::Closed,
            });
        };
        self.admit_inside(s, input, asks, group, wait)
    }

    /// Admits a request into generation `s`, whose gate the caller is
    /// inside.
    fn admit_inside(
        &self,
        s: &Generation<I, O>,
        input: SharedInput<I>,
        asks: &Asks,
        group: Option<String>,
        wait: Wait,
    ) -> Result<TaskHandle<O>, Refused<I>> {
        let Asks {
            priority, deadline, ..
        } = *asks;
        let refuse = |input, group, refusal| {
            Err(Refused {
                input,
                group,
                refusal,
            })
        };
        if !s.pressure().admits(priority) {
            return refuse(input, group, Refusal::MemoryPressure { priority });
        }
        let only_group = match &group {
            None => None,
            Some(name) => match s.groups().group_index(name) {
                Some(i) => Some(i),
                None => {
                    let refusal = Refusal::UnknownGroup {
                        group: name.clone(),
                    };
                    return refuse(input, group, refusal);
                }
            },
        };
        let id = s.next_id();
        let span = trace::request(id, priority);
        let facts = Facts {
            deadline,
            submitted: Instant::now(),
            keys: asks.keys.clone(),
        };
        let slot = s.slots().take(id, span, s.wait_spin(), facts);
        let job = Job::new(Arc::clone(&slot), input, priority, only_group);
        let who = Eligibility {
            only: only_group,
            failed: 0,
            same_group_fallback: s.retries().policy().same_group_fallback,
        };
        let waits = !matches!(wait, Wait::No);
        let (job, refusal) = match s.groups().offer(job, who, true, waits) {
            Ok(_) => {
                s.ledger().accepted();
                return Ok(TaskHandle::new(slot));
            }
            Err((job, Refusal::Full { .. })) => {
                let until = match wait {
                    Wait::No => {
                        if let Some(g) = job.only_group() {
                            s.groups().groups()[g].count(crate::core::Event::Rejected);
                        }
                        return refuse(job.into_input(), group, Refusal::Full { priority });
                    }
                    Wait::Forever => None,
                    Wait::Until(t) => Some(t),
                };
                match s.groups().wait_for_room(job, until, s.gate().closing()) {
                    Ok(_) => {
                        s.ledger().accepted();
                        return Ok(TaskHandle::new(slot));
                    }
                    Err(refused) => refused,
                }
            }
            Err(refused) => refused,
        };
        refuse(job.into_input(), group, refusal)
    }
}

/// A shutdown's report: what stopping the generation did, and the stats
/// once it is stopped.
fn shutdown_report(stopped: Stopped, stats: crate::core::PoolStats) -> ShutdownReport {
    ShutdownReport {
        drained: stopped.drained,
        cancelled_queued: stopped.leftover_queued,
        cancelled_running: stopped.leftover_running,
        workers_joined: stopped.workers_joined,
        workers_detached: stopped.workers_detached,
        elapsed: stopped.elapsed,
        stats,
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> Drop for Pool<I, O> {
    fn drop(&mut self) {
        self.shutdown(self.drop_timeout);
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> std::fmt::Debug for Pool<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("groups", &self.group_names())
            .finish()
    }
}
