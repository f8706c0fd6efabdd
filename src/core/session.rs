//! The seam to any backend: [`Session`] and [`SessionFactory`].
//!
//! A session is one live model instance owned by one worker. It is created on
//! the worker's thread after the thread is pinned, once, and reused for every
//! request that worker runs. It never crosses threads, so it need not be
//! `Send`. The factory is shared by a device group's workers and is called
//! again whenever a session must be rebuilt (after a panic, or when a worker is
//! replaced).

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Why a session call failed, which decides what the runtime does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth trying again (possibly elsewhere): the request is retried.
    Transient,
    /// Retrying cannot help (bad input, unsupported model): straight to the dead-letter queue.
    Permanent,
    /// The session stopped because the request was cancelled.
    Cancelled,
    /// The session panicked; the panic was caught and the session is rebuilt.
    Panicked,
    /// The call ran past its group's `call_timeout`: the runtime gave up on
    /// it and the request is retried (possibly elsewhere).
    TimedOut,
}

/// An error from a session (or its factory).
///
/// ```
/// use accelpool::{ErrorKind, SessionError};
/// let e = SessionError::transient("device busy");
/// assert_eq!(e.kind(), ErrorKind::Transient);
/// assert_eq!(e.to_string(), "transient: device busy");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionError {
    kind: ErrorKind,
    message: String,
}

impl SessionError {
    /// An error with the given kind and message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A retryable error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// An error that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    /// The session gave up because the request was cancelled.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the runtime may run the request again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Transient | ErrorKind::Panicked | ErrorKind::TimedOut
        )
    }

    #[cold]
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        Self::new(ErrorKind::Panicked, msg)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Panicked => "panicked",
            ErrorKind::TimedOut => "timed out",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for SessionError {}

/// What a session sees of the request it runs, besides the input.
#[derive(Debug)]
pub struct RunContext<'a> {
    pub(crate) cancel: &'a AtomicBool,
    pub(crate) attempt: u32,
    pub(crate) deadline: Option<Instant>,
    pub(crate) request_id: u64,
    pub(crate) batch: usize,
}

impl RunContext<'_> {
    /// True once the caller cancelled this request. A long-running session
    /// may check it and return [`SessionError::cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The request's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The request's id (the same as its handle's).
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Requests in the call this one runs in: 1 unless the group batches.
    pub fn batch_size(&self) -> usize {
        self.batch
    }
}

/// One request of a batch: its input and its context.
#[derive(Debug)]
pub struct BatchItem<'a, I> {
    /// The input.
    pub input: &'a I,
    /// Its context (attempt, deadline, cancel flag, the batch's size).
    pub ctx: RunContext<'a>,
}

/// What a batch call returns: one result per request, in order; or an error
/// of the whole call.
pub type BatchResult<O> = Result<Vec<Result<O, SessionError>>, SessionError>;

/// One live inference session, owned by one worker for its whole life.
///
/// Closures work as sessions:
///
/// ```
/// use accelpool::{Session, SessionError};
/// let mut double = |x: &u32| -> Result<u32, SessionError> { Ok(x * 2) };
/// # fn run<S: Session<u32, u32>>(s: &mut S) {}
/// # run(&mut double);
/// ```
pub trait Session<I, O> {
    /// Runs one request. The input is borrowed: it stays intact for a retry
    /// or the dead-letter queue if this call fails.
    fn run(&mut self, input: &I, ctx: &RunContext<'_>) -> Result<O, SessionError>;

    /// Runs one warmup call before the session takes requests (called as many
    /// times as the group's `warmup` setting says). Does nothing by default.
    fn warmup(&mut self) -> Result<(), SessionError> {
        Ok(())
    }

    /// Runs several requests in one call (the group's `batching` is on and
    /// the factory's [`batch_key`](SessionFactory::batch_key) put them
    /// together): one result per request, in order. A per-request `Err`
    /// fails only that request. An `Err` of the whole call fails the batch
    /// as one: a permanent error makes the runtime run each request alone
    /// to find the one at fault; any other error retries each on its own.
    /// The default runs the requests one by one through [`Session::run`].
    fn run_batch(&mut self, batch: &[BatchItem<'_, I>]) -> BatchResult<O> {
        Ok(batch.iter().map(|b| self.run(b.input, &b.ctx)).collect())
    }
}

impl<I, O, F> Session<I, O> for F
where
    F: FnMut(&I) -> Result<O, SessionError>,
{
    fn run(&mut self, input: &I, _ctx: &RunContext<'_>) -> Result<O, SessionError> {
        self(input)
    }
}

/// Where a session is being built: passed to the factory.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// The device group's name.
    pub group: String,
    /// The worker's index within its group.
    pub worker: usize,
    /// The core the worker is pinned to, if pinned.
    pub core: Option<usize>,
    /// How many sessions this worker slot has built before (0 for the first).
    pub rebuild: u64,
}

/// Builds sessions for one device group.
///
/// Any `Fn(&WorkerInfo) -> Result<S, SessionError>` whose `S` is a session is
/// a factory:
///
/// ```
/// use accelpool::{SessionError, SessionFactory, WorkerInfo};
/// let factory = |_w: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(x + 1) });
/// # fn check<F: SessionFactory<u32, u32>>(_: F) {}
/// # check(factory);
/// ```
pub trait SessionFactory<I, O>: Send + Sync + 'static {
    /// Builds a session on the calling worker thread.
    fn create(&self, worker: &WorkerInfo) -> Result<Box<dyn Session<I, O>>, SessionError>;

    /// Checks an input before it is queued for this group, so a request the
    /// model cannot take is refused at submit (handed back with the reason)
    /// instead of failing on a worker. Accepts everything by default.
    fn validate(&self, input: &I) -> Result<(), super::refusal::InputError> {
        let _ = input;
        Ok(())
    }

    /// What the group's sessions run, as `(key, value)` pairs for the stats
    /// and the startup log (for example the device, the model and the
    /// precision it computes in). Empty by default.
    fn describe(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Whether the backend can serve now, as the backend itself knows it
    /// (a remote group: the servers' `server/ready` and
    /// `models/{name}/ready`). The supervisor asks at every health check;
    /// while the answer is [`BackendHealth::NotReady`] the router skips the
    /// group, and the change to it opens the group's breaker, which closes
    /// again through its probes once the backend is back. `Ready` by
    /// default.
    ///
    /// It runs on the supervisor's thread, which also times the retries:
    /// it must answer at once, from what the backend last reported (a
    /// factory that asks over the network does so in the background, as
    /// [`RemoteFactory`](crate::remote::RemoteFactory) does with the feature
    /// `remote`).
    fn health(&self) -> BackendHealth {
        BackendHealth::Ready
    }

    /// The servers the group's sessions call, with what each has done, for
    /// the group's stats ([`GroupStats::endpoints`](crate::GroupStats)).
    /// Empty by default (a local device has none).
    fn endpoints(&self) -> Vec<EndpointStats> {
        Vec::new()
    }

    /// Which queued requests may share a batch: those with equal keys
    /// (for a tensor model, the same shapes but the batch dimension).
    /// `None` runs the request alone. All requests are compatible by default.
    fn batch_key(&self, input: &I) -> Option<u64> {
        let _ = input;
        Some(0)
    }
}

/// A backend's own word on whether it can serve
/// ([`SessionFactory::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendHealth {
    /// It can serve (or cannot tell).
    Ready,
    /// It cannot serve now, and why (for the logs, the stats and the
    /// breaker's history).
    NotReady(String),
}

/// One server of a group's backend, as its stats show it
/// ([`SessionFactory::endpoints`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EndpointStats {
    /// Its address.
    pub endpoint: String,
    /// Calls in flight on it now.
    pub in_flight: usize,
    /// Calls it answered (a result or the server's own error status).
    pub answered: u64,
    /// Calls that failed on it (unreachable, reset, timed out, unavailable):
    /// each was tried on the next endpoint, when there was one.
    pub failed: u64,
    /// Times its own breaker set it aside.
    pub set_aside: u64,
    /// Whether it takes calls now (false while set aside, or while its
    /// last health poll found it not ready).
    pub in_service: bool,
    /// The last health poll's answer (`None` before the first).
    pub ready: Option<bool>,
    /// The last failure on it, if any.
    pub last_error: Option<String>,
}

impl<I, O, F, S> SessionFactory<I, O> for F
where
    F: Fn(&WorkerInfo) -> Result<S, SessionError> + Send + Sync + 'static,
    S: Session<I, O> + 'static,
{
    fn create(&self, worker: &WorkerInfo) -> Result<Box<dyn Session<I, O>>, SessionError> {
        self(worker).map(|s| Box::new(s) as Box<dyn Session<I, O>>)
    }
}
