//! After a failed attempt: the retry sender (the supervisor's timer holds
//! retries through their backoff, never a worker) and the dead-letter path.
//!
//! A failed attempt records its error with the group and worker that ran
//! it, tells the group's breaker, and then follows the retry policy's
//! decision (`policy::retry`): cancel, dead-letter, or go back to `Queued`
//! and be re-routed by the supervisor after the backoff, preferring groups
//! that have not failed it yet.

#![forbid(unsafe_code)]

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;

use super::group::Group;
use super::supervisor::Msg;
use super::worker_state::WorkerState;
use crate::config::RetryPolicy;
use crate::core::{
    saturating_add, AttemptError, CancelReason, ErrorKind, Event, FailureRecord, InputCache, Job,
    Ledger, Outcome, SessionError,
};
use crate::policy::retry::{decide, AfterFailure, Failure};
use crate::policy::router::{may_retry_somewhere, Eligibility};
use crate::policy::DeadLetterQueue;

/// A generation's retry sender and dead-letter path: what a worker (or the
/// supervisor, for a stuck call) needs to finish a failed attempt.
pub(crate) struct Retries<I, O> {
    policy: RetryPolicy,
    tx: Sender<Msg<I, O>>,
    /// Retries waiting in the supervisor, or on their way to it (a
    /// generation is idle only at 0).
    pending: AtomicUsize,
    /// Set when the supervisor stops taking retries (see [`Retries::close`]).
    closed: AtomicBool,
    dlq: Arc<DeadLetterQueue<I>>,
    ledger: Arc<Ledger>,
    /// The pool's input boxes, where a finished request's box goes back.
    inputs: Arc<InputCache<I>>,
    /// Group names by index, for dead letters' group restriction.
    names: Vec<Arc<str>>,
}

impl<I: Send + Sync + 'static, O: Send + 'static> Retries<I, O> {
    pub(crate) fn new(
        policy: RetryPolicy,
        tx: Sender<Msg<I, O>>,
        dlq: Arc<DeadLetterQueue<I>>,
        ledger: Arc<Ledger>,
        inputs: Arc<InputCache<I>>,
        names: Vec<Arc<str>>,
    ) -> Self {
        Self {
            policy,
            tx,
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            dlq,
            ledger,
            inputs,
            names,
        }
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A request is done with (resolved, or dropped unrun): its input is
    /// dropped and its box kept for the next request.
    #[inline]
    pub(crate) fn done_with(&self, job: Job<I, O>) {
        self.inputs.recycle(job.into_input());
    }

    /// Retries waiting in the supervisor now.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// A retry left the supervisor (re-routed, resolved or dead-lettered).
    pub(super) fn left(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// Hands a job to the supervisor, to be routed again once `due` passes.
    /// If the supervisor has stopped taking retries (the generation is
    /// stopping), the request is cancelled here instead.
    ///
    /// The hand-off and [`Retries::close`] are a handshake like the
    /// admission gate's: this side raises `pending` then reads `closed`; the
    /// supervisor sets `closed` then waits for `pending` to match what it
    /// received. A `SeqCst` fence between the write and the read on each
    /// side means at least one sees the other, so a retry is either
    /// received by the supervisor or cancelled here, never left in a
    /// channel nobody reads.
    pub(crate) fn schedule(&self, due: Instant, job: Job<I, O>) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        // SeqCst: orders raising `pending` before reading `closed` (the
        // handshake above).
        fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            job.slot()
                .resolve(Outcome::Cancelled(CancelReason::Shutdown));
            return;
        }
        if let Err(e) = self.tx.send(Msg::Retry(due, job)) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let Msg::Retry(_, job) = e.0 else { return };
            job.slot()
                .resolve(Outcome::Cancelled(CancelReason::Shutdown));
        }
    }

    /// The supervisor stops taking retries: a `schedule` that has not
    /// raised `pending` yet cancels its request; one that has is waited for
    /// by the supervisor (`supervisor::run`) until its retry arrives.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        // SeqCst: orders setting `closed` before the supervisor reads
        // `pending` (the handshake in `schedule`).
        fence(Ordering::SeqCst);
    }

    /// Asks the supervisor to stop (it hands back the retries it holds).
    pub(super) fn stop_supervisor(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// Finishes a failed attempt of `job` on `group`'s worker `me`, in a
    /// call of `batch` requests that ran for `elapsed`.
    pub(crate) fn failed_attempt(
        &self,
        group: &Group<I, O>,
        me: &WorkerState<I, O>,
        mut job: Job<I, O>,
        error: SessionError,
        elapsed: Duration,
        batch: usize,
    ) {
        me.failed(error.kind());
        let cancelled = error.kind() == ErrorKind::Cancelled || job.slot().is_cancel_requested();
        let retryable = error.is_retryable();
        let attempt = AttemptError {
            attempt: job.attempts(),
            group: Arc::clone(group.name()),
            worker: me.index(),
            error: error.clone(),
            batch,
            at: SystemTime::now(),
        };
        job.failed_on(group.index(), attempt);

        // Only the error kinds the breaker is told to count are the
        // device's fault; a cancel never is.
        if !cancelled && group.breaker().config().counts(error.kind()) {
            group.breaker().keep_failure(FailureRecord {
                request: job.slot().id(),
                group: group.name().to_string(),
                worker: me.index(),
                error,
                at: SystemTime::now(),
            });
            group.breaker().record_call(job.is_probe(), elapsed, true);
        } else {
            group.breaker().release_probe(job.is_probe());
        }

        let who = Eligibility {
            only: job.only_group(),
            failed: job.failed_groups(),
            same_group_fallback: self.policy.same_group_fallback,
        };
        let failure = Failure {
            cancelled,
            retryable,
            attempts: job.attempts(),
            somewhere_to_go: may_retry_somewhere(self.names.len(), who),
        };
        match decide(&self.policy, failure) {
            AfterFailure::Cancel => {
                if job.slot().resolve(Outcome::Cancelled(CancelReason::Caller)) {
                    me.count(Event::Cancelled);
                } else {
                    self.ledger.late_result();
                }
            }
            AfterFailure::DeadLetter => {
                self.dead_letter(job, || me.count(Event::DeadLettered));
            }
            AfterFailure::Retry(backoff) => {
                if job.slot().requeue() {
                    me.count(Event::Retried);
                    self.schedule(saturating_add(Instant::now(), backoff), job);
                } else {
                    // Resolved elsewhere while running (shutdown gave up on this call).
                    self.ledger.late_result();
                }
            }
        }
    }

    /// Moves a job to the dead-letter queue and resolves it as failed; the
    /// letter is in the queue before the handle sees the failure. False if
    /// the request was already resolved elsewhere (counted as a late result).
    pub(crate) fn dead_letter(&self, job: Job<I, O>, count: impl FnOnce()) -> bool {
        let group = job.only_group().map(|g| self.names[g].to_string());
        self.dead_letter_as(job, group, count)
    }

    /// [`Retries::dead_letter`] with the letter's group restriction given by
    /// name: for a request whose group index belongs to another generation.
    pub(crate) fn dead_letter_as(
        &self,
        job: Job<I, O>,
        group: Option<String>,
        count: impl FnOnce(),
    ) -> bool {
        let (slot, letter, errors) = job.into_letter(group);
        let won = slot.resolve_then(Outcome::DeadLettered(errors), || {
            self.dlq.push(letter);
            count();
        });
        if !won {
            self.ledger.late_result();
        }
        won
    }
}
