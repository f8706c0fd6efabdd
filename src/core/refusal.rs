//! Refusals: why a request was handed back instead of queued. One kind
//! enum, [`Refusal`], with one `Display`, carried by [`SubmitError`] (with
//! the request) and [`ReplayError`] (with the dead letter).

#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use super::letter::DeadLetter;
use super::priority::Priority;
use super::request::Request;

/// Why the pool did not take a request. Its `Display` says what happened
/// and what to do about it.
///
/// ```
/// use accelpool::{Priority, Refusal};
/// let r = Refusal::Full { priority: Priority::Low };
/// assert!(r.is_backpressure());
/// assert!(r.to_string().starts_with("every eligible `low` queue is full"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Every eligible queue for the request's level is full (`try_submit`).
    Full {
        /// The request's level.
        priority: Priority,
    },
    /// The queues stayed full until the timeout (`submit_timeout`).
    Timeout {
        /// The request's level.
        priority: Priority,
    },
    /// The pool is shutting down or shut down.
    Closed,
    /// The request named a group the pool does not have.
    UnknownGroup {
        /// The name it gave.
        group: String,
    },
    /// The request named a model the [`Runtime`](crate::Runtime) does not
    /// have.
    UnknownModel {
        /// The name it gave.
        model: String,
    },
    /// Memory is above the high watermark and the request's priority is
    /// below `memory.refuse_below`.
    MemoryPressure {
        /// The request's level.
        priority: Priority,
    },
    /// No eligible group can take requests now: their circuit breakers are
    /// open or none has a healthy worker.
    Unavailable,
    /// Deadline-aware admission estimated that the request would miss its
    /// deadline in every group that could take it (see
    /// [`DeadlineAdmission`](crate::DeadlineAdmission)).
    DeadlineUnmeetable {
        /// The request's level.
        priority: Priority,
        /// The shortest estimate of the groups it could go to.
        estimate: Duration,
        /// The time that was left until its deadline.
        left: Duration,
    },
    /// The runtime refused the input before queueing it (for example a
    /// tensor whose shape the model cannot take).
    Invalid {
        /// The group whose model refused it (the first eligible one).
        group: String,
        /// What is wrong with it.
        error: InputError,
    },
}

impl Refusal {
    /// True for `Full` and `Timeout`: the pool is open but saturated.
    pub fn is_backpressure(&self) -> bool {
        matches!(self, Refusal::Full { .. } | Refusal::Timeout { .. })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full { priority: p } => write!(f, "every eligible `{p}` queue is full; retry later, use `submit` to wait, or raise the group's `capacity.{p}`"),
            Refusal::Timeout { priority: p } => write!(f, "every eligible `{p}` queue stayed full until the timeout"),
            Refusal::Closed => f.write_str("the pool is shut down and accepts no requests"),
            Refusal::UnknownGroup { group } => write!(f, "no device group named `{group}`; use one of the names in the pool's config"),
            Refusal::UnknownModel { model } => write!(f, "no model named `{model}`; use one of the runtime's models (Runtime::models)"),
            Refusal::MemoryPressure { priority: p } => write!(f, "memory is above the high watermark and `{p}` requests are refused until it falls below the low one; retry later or submit at a higher priority"),
            Refusal::Unavailable => f.write_str("no eligible device group can take requests now (circuit breakers open or no healthy worker); retry after the breaker's cooldown, or see the pool's health in its stats"),
            Refusal::DeadlineUnmeetable { priority: p, estimate, left } => write!(f, "a `{p}` request now would take about {estimate:?} with the work ahead of it, but its deadline is {left:?} away; give it a later deadline, a higher priority, or retry when the queues are shorter"),
            Refusal::Invalid { group, error } => write!(f, "invalid request for group `{group}`: {error}"),
        }
    }
}

/// A request the pool did not accept. The request comes back intact, input
/// included, so nothing is lost: take it with [`SubmitError::into_request`].
///
/// ```
/// use accelpool::{GroupConfig, LevelCapacity, Pool, Refusal, Request, SessionError, WorkerInfo};
/// let pool = Pool::<u32, u32>::builder()
///     .group(GroupConfig::new("cpu").workers(1).pin(false),
///            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) }))
///     .build()?;
/// let err = pool.try_submit(Request::new(1).group("gpu")).unwrap_err();
/// assert!(matches!(err.refusal(), Refusal::UnknownGroup { group } if group == "gpu"));
/// assert_eq!(err.into_request().into_input(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SubmitError<I> {
    request: Request<I>,
    refusal: Refusal,
}

impl<I> SubmitError<I> {
    pub(crate) fn new(request: Request<I>, refusal: Refusal) -> Self {
        Self { request, refusal }
    }

    /// Why it was refused.
    pub fn refusal(&self) -> &Refusal {
        &self.refusal
    }

    /// Gives back the refused request.
    pub fn into_request(self) -> Request<I> {
        self.request
    }

    /// The refused request and why.
    pub fn into_parts(self) -> (Request<I>, Refusal) {
        (self.request, self.refusal)
    }

    /// The refused request.
    pub fn request(&self) -> &Request<I> {
        &self.request
    }

    /// True for `Full` and `Timeout`: the pool is open but saturated.
    pub fn is_backpressure(&self) -> bool {
        self.refusal.is_backpressure()
    }
}

impl<I> fmt::Display for SubmitError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.refusal.fmt(f)
    }
}

impl<I> fmt::Debug for SubmitError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubmitError({self})")
    }
}

impl<I> std::error::Error for SubmitError<I> {}

/// An input the model cannot take, found before the request is queued.
///
/// ```
/// use accelpool::InputError;
/// let e = InputError::new("x", "shape [?,3,48,192] f32", "shape [1,3,48] f32");
/// assert_eq!(e.to_string(), "input `x`: expected shape [?,3,48,192] f32, given shape [1,3,48] f32");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}`: expected {expected}, given {given}")]
pub struct InputError {
    /// The input's name.
    pub input: String,
    /// What the model takes.
    pub expected: String,
    /// What the request holds.
    pub given: String,
}

impl InputError {
    /// An error naming the input, what it should be and what it was.
    pub fn new(
        input: impl Into<String>,
        expected: impl Into<String>,
        given: impl Into<String>,
    ) -> Self {
        Self {
            input: input.into(),
            expected: expected.into(),
            given: given.into(),
        }
    }
}

/// A dead letter that [`Pool::replay`](crate::Pool::replay) could not put
/// back, returned whole with the reason.
pub struct ReplayError<I> {
    /// The letter, unchanged.
    pub letter: DeadLetter<I>,
    /// Why it was refused.
    pub refusal: Refusal,
}

impl<I> fmt::Display for ReplayError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dead letter {} not replayed: {}",
            self.letter.id, self.refusal
        )
    }
}

impl<I> fmt::Debug for ReplayError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayError({self})")
    }
}

impl<I> std::error::Error for ReplayError<I> {}
