//! [`Request`]: what a caller submits, and the job the runtime carries
//! through queues, retries and the dead-letter queue.

#![forbid(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handle::{AttemptError, Slot};
use super::input::SharedInput;
use super::letter::DeadLetter;
use super::priority::Priority;
use super::session::SessionError;
use super::trace;

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
    tenant: Option<Arc<str>>,
    affinity: Option<u64>,
}

impl<I> Request<I> {
    /// A `Normal` request with no deadline, routed to the best group.
    pub fn new(input: I) -> Self {
        Self {
            input,
            priority: Priority::Normal,
            deadline: None,
            group: None,
            tenant: None,
            affinity: None,
        }
    }

    /// Sets the tenant this request is served for. With the pool's
    /// `tenants` fairness on, tenants of one priority level share the
    /// workers by weight, and each has its own queue bound; requests
    /// without a tenant share the default one. Without fairness the key is
    /// carried and ignored.
    ///
    /// ```
    /// use accelpool::Request;
    /// let r = Request::new(1u32).tenant("customer-42");
    /// assert_eq!(r.get_tenant(), Some("customer-42"));
    /// ```
    pub fn tenant(mut self, key: impl Into<Arc<str>>) -> Self {
        self.tenant = Some(key.into());
        self
    }

    /// The tenant, if one was set.
    pub fn get_tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Sets the affinity key: with the pool's `affinity` on, requests with
    /// the same key prefer the worker that last ran that key, for sessions
    /// that keep per-key state warm (see
    /// [`AffinityConfig`](crate::AffinityConfig)). Any hashable value will
    /// do; keys are kept as their 64-bit hash, so two keys with one hash
    /// share a worker. Without affinity the key is carried and ignored.
    ///
    /// ```
    /// use accelpool::Request;
    /// let a = Request::new(1u32).affinity("camera-3");
    /// let b = Request::new(2u32).affinity("camera-3");
    /// assert_eq!(a.get_affinity(), b.get_affinity());
    /// assert_ne!(a.get_affinity(), Request::new(3u32).affinity("camera-4").get_affinity());
    /// ```
    pub fn affinity(mut self, key: impl Hash) -> Self {
        // A fixed hasher: a key's hash is the same in every pool and run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        self.affinity = Some(h.finish());
        self
    }

    /// The affinity key's hash, if one was set.
    pub fn get_affinity(&self) -> Option<u64> {
        self.affinity
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

    /// The input, to change before submitting (adding a tensor, say).
    pub fn input_mut(&mut self) -> &mut I {
        &mut self.input
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
    /// Its parts: input, priority, deadline, group, keys.
    pub(crate) fn into_parts(self) -> (I, Priority, Option<Instant>, Option<String>, Keys) {
        let keys = Keys {
            tenant: self.tenant,
            affinity: self.affinity,
        };
        (self.input, self.priority, self.deadline, self.group, keys)
    }

    pub(crate) fn set_keys(&mut self, keys: Keys) {
        self.tenant = keys.tenant;
        self.affinity = keys.affinity;
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    pub(crate) fn set_group(&mut self, group: Option<String>) {
        self.group = group;
    }
}

/// Whom a request is for and what it is near: its tenant and affinity keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    /// Its tenant (`None`: the default one).
    pub(crate) tenant: Option<Arc<str>>,
    /// Its affinity key's hash.
    pub(crate) affinity: Option<u64>,
}

/// What never changes about an admitted request. It is kept in the
/// request's result slot, which every holder shares anyway, so the [`Job`]
/// that moves through the queues stays within one cache line with its
/// channel's stamp (a queue hand-off moves one line, not three).
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) deadline: Option<Instant>,
    pub(crate) submitted: Instant,
    pub(crate) keys: Keys,
}

impl Facts {
    /// A request submitted now with no deadline and no keys (the loom
    /// models').
    #[cfg(all(loom, test))]
    pub(crate) fn now() -> Self {
        Self {
            deadline: None,
            submitted: Instant::now(),
            keys: Keys::default(),
        }
    }
}

/// A request inside the runtime, owned by whichever queue, worker or timer
/// holds it. The input is shared ([`SharedInput`]) so a stuck call's
/// request can fail over while the stuck worker still borrows it. What
/// never changes about it is in its slot ([`Facts`]); a test holds the job
/// to 56 bytes.
pub(crate) struct Job<I, O> {
    slot: Arc<Slot<O>>,
    input: SharedInput<I>,
    priority: Priority,
    /// Restricted to this group index (below `MAX_GROUPS`, so a byte: the
    /// job stays small enough to hand back by value).
    only_group: Option<u8>,
    /// Groups that already failed it (bit per group index).
    failed_groups: u64,
    /// Set each time it enters a queue.
    enqueued: Instant,
    /// Attempts made so far.
    attempts: u32,
    /// Each failed attempt's error. Boxed on purpose (clippy would have a
    /// bare `Vec`): 8 bytes in the job instead of 24, and no allocation for
    /// a request that succeeds first time.
    #[allow(clippy::box_collection)]
    errors: Option<Box<Vec<AttemptError>>>,
    /// Admitted by a half-open breaker as a probe.
    probe: bool,
    /// The span of its current wait in a queue.
    queue_span: trace::QueueSpan,
}

/// A group index as a byte: indices are below `MAX_GROUPS` (64), which the
/// configuration enforces.
fn group_byte(i: usize) -> u8 {
    debug_assert!(i < MAX_GROUPS);
    i as u8
}

impl<I, O> Clone for Job<I, O> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
            input: self.input.clone(),
            priority: self.priority,
            only_group: self.only_group,
            failed_groups: self.failed_groups,
            enqueued: self.enqueued,
            attempts: self.attempts,
            errors: self.errors.clone(),
            probe: self.probe,
            queue_span: self.queue_span.clone(),
        }
    }
}

impl<I, O> Job<I, O> {
    /// A request just admitted (its facts in `slot`): no attempt yet,
    /// entering its first queue as it is submitted.
    #[inline]
    pub(crate) fn new(
        slot: Arc<Slot<O>>,
        input: SharedInput<I>,
        priority: Priority,
        only_group: Option<usize>,
    ) -> Self {
        let queue_span = trace::queue(slot.span());
        Self {
            queue_span,
            enqueued: slot.facts().submitted,
            slot,
            input,
            priority,
            only_group: only_group.map(group_byte),
            failed_groups: 0,
            attempts: 0,
            errors: None,
            probe: false,
        }
    }

    /// Who it is served for (`None`: the default tenant).
    #[inline]
    pub(crate) fn tenant(&self) -> Option<&Arc<str>> {
        self.slot.facts().keys.tenant.as_ref()
    }

    /// Its affinity key's hash, if it has one.
    #[inline]
    pub(crate) fn affinity(&self) -> Option<u64> {
        self.slot.facts().keys.affinity
    }

    #[inline]
    pub(crate) fn slot(&self) -> &Arc<Slot<O>> {
        &self.slot
    }

    #[inline]
    pub(crate) fn input(&self) -> &SharedInput<I> {
        &self.input
    }

    /// The input back (a refused request: the caller's; a finished one's,
    /// for its box to be reused).
    pub(crate) fn into_input(self) -> SharedInput<I> {
        self.input
    }

    #[inline]
    pub(crate) fn priority(&self) -> Priority {
        self.priority
    }

    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.slot.facts().deadline
    }

    /// The group index it may run on only, if restricted.
    #[inline]
    pub(crate) fn only_group(&self) -> Option<usize> {
        self.only_group.map(usize::from)
    }

    /// Moves the restriction (a reload's groups have other indices).
    pub(crate) fn restrict_to(&mut self, group: Option<usize>) {
        self.only_group = group.map(group_byte);
    }

    /// Groups that failed it, a bit per group index.
    #[inline]
    pub(crate) fn failed_groups(&self) -> u64 {
        self.failed_groups
    }

    /// Forgets which groups failed it (a new generation's groups are others).
    pub(crate) fn forget_failed_groups(&mut self) {
        self.failed_groups = 0;
    }

    pub(crate) fn submitted(&self) -> Instant {
        self.slot.facts().submitted
    }

    #[inline]
    pub(crate) fn enqueued(&self) -> Instant {
        self.enqueued
    }

    /// It enters a queue now, not as a probe unless `probe` says so.
    #[inline]
    pub(crate) fn entering_queue(&mut self, now: Instant, probe: bool) {
        self.enqueued = now;
        self.probe = probe;
        self.queue_span = trace::queue(self.slot.span());
    }

    /// A worker took it: its wait in the queue is over.
    #[inline]
    pub(crate) fn left_queue(&mut self) {
        self.queue_span = trace::no_queue();
    }

    /// Whether a half-open breaker admitted it as a probe.
    #[inline]
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    pub(crate) fn set_probe(&mut self, probe: bool) {
        self.probe = probe;
    }

    /// Attempts made so far (the running one included).
    #[inline]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A worker starts an attempt.
    #[inline]
    pub(crate) fn begin_attempt(&mut self) {
        self.attempts += 1;
    }

    /// The attempt begun did not run (its worker was taken over first).
    pub(crate) fn undo_attempt(&mut self) {
        self.attempts -= 1;
    }

    /// Records a failed attempt on group `group` (its index).
    pub(crate) fn failed_on(&mut self, group: usize, error: AttemptError) {
        self.errors.get_or_insert_default().push(error);
        self.failed_groups |= 1u64 << group;
    }

    /// Turns it into a dead letter (restricted to `group` by name), with
    /// its slot and every attempt's error for the handle.
    pub(crate) fn into_letter(
        self,
        group: Option<String>,
    ) -> (Arc<Slot<O>>, DeadLetter<I>, Vec<AttemptError>) {
        let errors = self.errors.map(|e| *e).unwrap_or_default();
        let now = std::time::SystemTime::now();
        let facts = self.slot.facts();
        let submitted = facts.submitted;
        let letter = DeadLetter {
            id: self.slot.id(),
            input: self.input,
            priority: self.priority,
            group,
            tenant: facts.keys.tenant.clone(),
            affinity: facts.keys.affinity,
            errors: errors.clone(),
            // Wall time of submission, derived here rather than read on the
            // submit path for every request.
            submitted_at: now - submitted.elapsed(),
            dead_lettered_at: now,
        };
        (self.slot, letter, errors)
    }

    #[inline]
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Records why the request failed outside any session (routing, a
    /// reload), as an attempt error of `group` with no worker.
    pub(crate) fn note_error(&mut self, group: Arc<str>, error: SessionError) {
        self.errors.get_or_insert_default().push(AttemptError {
            attempt: self.attempts,
            group,
            worker: 0,
            error,
            batch: 0,
            at: std::time::SystemTime::now(),
        });
    }
}

#[cfg(all(test, not(feature = "request-spans")))]
mod tests {
    use super::Job;

    /// A job and its channel's 8-byte stamp fit one 64-byte cache line, so
    /// a queue hand-off moves one line. (A request span makes it bigger.)
    #[test]
    fn a_job_fits_a_cache_line_with_its_channel_stamp() {
        assert!(std::mem::size_of::<Job<Vec<f32>, Vec<f32>>>() <= 56);
    }
}
