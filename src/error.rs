//! Errors of submitting and of building a pool.

#![forbid(unsafe_code)]

use std::fmt;

use crate::config::ConfigError;
use crate::session::SessionError;
use crate::Request;

/// A request the pool did not accept. The request comes back intact, input
/// included, so nothing is lost: take it with [`SubmitError::into_request`].
pub enum SubmitError<I> {
    /// Every eligible queue for the request's level is full (`try_submit`).
    Full(Request<I>),
    /// The queues stayed full until the timeout (`submit_timeout`).
    Timeout(Request<I>),
    /// The pool is shutting down or shut down.
    Closed(Request<I>),
    /// The request named a group the pool does not have.
    UnknownGroup(Request<I>),
    /// Memory is above the high watermark and the request's priority is
    /// below `memory.refuse_below`.
    MemoryPressure(Request<I>),
    /// No eligible group can take requests now: their circuit breakers are
    /// open or none has a healthy worker.
    Unavailable(Request<I>),
    /// The runtime refused the input before queueing it (for example a
    /// tensor whose shape the model cannot take).
    Invalid {
        /// The request, intact.
        request: Request<I>,
        /// The group whose model refused it (the first eligible one).
        group: String,
        /// What is wrong with it.
        error: InputError,
    },
}

impl<I> SubmitError<I> {
    /// Gives back the refused request.
    pub fn into_request(self) -> Request<I> {
        match self {
            SubmitError::Full(r)
            | SubmitError::Timeout(r)
            | SubmitError::Closed(r)
            | SubmitError::UnknownGroup(r)
            | SubmitError::Unavailable(r)
            | SubmitError::MemoryPressure(r)
            | SubmitError::Invalid { request: r, .. } => r,
        }
    }

    /// The refused request.
    pub fn request(&self) -> &Request<I> {
        match self {
            SubmitError::Full(r)
            | SubmitError::Timeout(r)
            | SubmitError::Closed(r)
            | SubmitError::UnknownGroup(r)
            | SubmitError::Unavailable(r)
            | SubmitError::MemoryPressure(r)
            | SubmitError::Invalid { request: r, .. } => r,
        }
    }

    /// True for `Full` and `Timeout`: the pool is open but saturated.
    pub fn is_backpressure(&self) -> bool {
        matches!(self, SubmitError::Full(_) | SubmitError::Timeout(_))
    }
}

impl<I> fmt::Display for SubmitError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.request().get_priority();
        match self {
            SubmitError::Full(_) => write!(f, "every eligible `{p}` queue is full; retry later, use `submit` to wait, or raise the group's `capacity.{p}`"),
            SubmitError::Timeout(_) => write!(f, "every eligible `{p}` queue stayed full until the timeout"),
            SubmitError::Closed(_) => f.write_str("the pool is shut down and accepts no requests"),
            SubmitError::UnknownGroup(r) => write!(f, "no device group named `{}`; use one of the names in the pool's config", r.get_group().unwrap_or_default()),
            SubmitError::MemoryPressure(_) => write!(f, "memory is above the high watermark and `{p}` requests are refused until it falls below the low one; retry later or submit at a higher priority"),
            SubmitError::Unavailable(_) => f.write_str("no eligible device group can take requests now (circuit breakers open or no healthy worker); retry after the breaker's cooldown, or see the pool's health in its stats"),
            SubmitError::Invalid { group, error, .. } => write!(f, "invalid request for group `{group}`: {error}"),
        }
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

/// A dead letter that [`Pool::replay`](crate::Pool::replay) could not put back, returned whole.
pub struct ReplayError<I> {
    /// The letter, unchanged.
    pub letter: crate::DeadLetter<I>,
    /// Why it was refused.
    pub reason: String,
}

impl<I> fmt::Display for ReplayError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dead letter {} not replayed: {}",
            self.letter.id, self.reason
        )
    }
}

impl<I> fmt::Debug for ReplayError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayError({self})")
    }
}

impl<I> std::error::Error for ReplayError<I> {}

/// Why a pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A group was configured without a session factory, or the other way round.
    #[error("group `{group}`: {message}")]
    Group {
        /// The group.
        group: String,
        /// What is wrong.
        message: String,
    },
    /// A worker could not build its first session.
    #[error("group `{group}` worker {worker}: could not build its session: {error}")]
    Session {
        /// The group.
        group: String,
        /// The worker index within the group.
        worker: usize,
        /// The factory's error.
        error: SessionError,
    },
    /// A thread could not be spawned.
    #[error("could not spawn a thread: {0}")]
    Spawn(#[from] std::io::Error),
}
