//! [`Request`]: what a caller submits, and the job the runtime carries
//! through queues, retries and the dead-letter queue.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handle::{AttemptError, Slot};
use super::priority::Priority;
use super::session::SessionError;

/// Most device groups in one pool (a request remembers the groups that
/// failed it as bits of a `u64`).
pub const MAX_GROUPS: usize = 64;

/// One inference request: the input and how to schedule it.
///
/// ```
/// use accelpool::{Priority, Request};
/// use std::time::Duration;
/// let r = Request::new(vec![1.0f32, 2.0])
///     .priority(Priority::High)
///     .timeout(Duration::from_millis(50))
///     .group("cpu");
/// assert_eq!(r.get_priority(), Priority::High);
/// assert_eq!(r.input(), &vec![1.0, 2.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Request<I> {
    input: I,
    priority: Priority,
    deadline: Option<Instant>,
    group: Option<String>,
}

impl<I> Request<I> {
    /// A `Normal` request with no deadline, routed to the best group.
    pub fn new(input: I) -> Self {
        Self {
            input,
            priority: Priority::Normal,
            deadline: None,
            group: None,
        }
    }

    /// Sets the priority level.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// The request expires, unrun, if no worker took it by `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Deadline relative to now. A timeout too large to be a point in time
    /// (such as `Duration::MAX`) means no deadline.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.deadline = super::clock::checked_deadline(t);
        self
    }

    /// Runs only on the named device group.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }

    /// The input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// Gives the input back.
    pub fn into_input(self) -> I {
        self.input
    }

    /// The priority level.
    pub fn get_priority(&self) -> Priority {
        self.priority
    }

    /// The deadline, if any.
    pub fn get_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The group it is restricted to, if any.
    pub fn get_group(&self) -> Option<&str> {
        self.group.as_deref()
    }
}

impl<I> Request<I> {
    /// Its parts: input, priority, deadline, group.
    pub(crate) fn into_parts(self) -> (I, Priority, Option<Instant>, Option<String>) {
        (self.input, self.priority, self.deadline, self.group)
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    pub(crate) fn set_group(&mut self, group: Option<String>) {
        self.group = group;
    }
}

/// A request inside the runtime. The input sits behind an `Arc` so a stuck
/// call's request can fail over while the stuck worker still borrows it.
pub(crate) struct Job<I, O> {
    pub slot: Arc<Slot<O>>,
    pub input: Arc<I>,
    pub priority: Priority,
    pub deadline: Option<Instant>,
    /// Restricted to this group index.
    pub only_group: Option<usize>,
    /// Groups that already failed it (bit per group index).
    pub failed_groups: u64,
    pub submitted: Instant,
    /// Set each time it enters a queue.
    pub enqueued: Instant,
    /// Attempts made so far.
    pub attempts: u32,
    pub errors: Vec<AttemptError>,
    /// Admitted by a half-open breaker as a probe.
    pub probe: bool,
}

impl<I, O> Clone for Job<I, O> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
            input: Arc::clone(&self.input),
            priority: self.priority,
            deadline: self.deadline,
            only_group: self.only_group,
            failed_groups: self.failed_groups,
            submitted: self.submitted,
            enqueued: self.enqueued,
            attempts: self.attempts,
            errors: self.errors.clone(),
            probe: self.probe,
        }
    }
}

impl<I, O> Job<I, O> {
    /// A request just admitted: no attempt yet, entering its first queue.
    #[inline]
    pub(crate) fn new(
        slot: Arc<Slot<O>>,
        input: Arc<I>,
        priority: Priority,
        deadline: Option<Instant>,
        only_group: Option<usize>,
    ) -> Self {
        let now = Instant::now();
        Self {
            slot,
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
        }
    }

    #[inline]
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Records why the request failed outside any session (routing, a
    /// reload), as an attempt error of `group` with no worker.
    pub(crate) fn note_error(&mut self, group: Arc<str>, error: SessionError) {
        self.errors.push(AttemptError {
            attempt: self.attempts,
            group,
            worker: 0,
            error,
            at: std::time::SystemTime::now(),
        });
    }
}
