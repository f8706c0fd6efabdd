//! What happens after a failed attempt: retry with backoff, or the
//! dead-letter queue.
//!
//! A failed attempt records its error with the group and worker that ran it.
//! Then, in this order:
//! - the caller cancelled it (or the session said it was cancelled): it
//!   resolves as cancelled;
//! - the error is not retryable, or `max_attempts` is reached: it goes to the
//!   dead-letter queue with its input intact and resolves as failed;
//! - otherwise it goes back to `Queued` and the supervisor re-routes it after
//!   the backoff, preferring groups that have not failed it yet.
//!
//! A worker never sleeps through a backoff: the supervisor's timer does.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::breaker::FailureRecord;
use crate::dlq::DeadLetter;
use crate::handle::{AttemptError, CancelReason, Outcome};
use crate::pool::Shared;
use crate::request::Job;
use crate::session::{ErrorKind, SessionError};
use crate::worker::WorkerShared;

pub(crate) fn failed_attempt<I: Send + Sync + 'static, O: Send + 'static>(
    shared: &Shared<I, O>,
    gi: usize,
    me: &WorkerShared<I, O>,
    mut job: Job<I, O>,
    error: SessionError,
) {
    me.counts.failed_attempts.inc();
    let group = &shared.groups[gi];
    let cancelled = error.kind() == ErrorKind::Cancelled || job.slot.is_cancel_requested();
    let retryable = error.is_retryable();
    job.errors.push(AttemptError {
        attempt: job.attempts,
        group: Arc::clone(&group.name),
        worker: me.index,
        error,
        at: SystemTime::now(),
    });
    job.failed_groups |= 1u64 << gi;

    if !cancelled && retryable {
        group.breaker.record_failure(
            job.probe,
            FailureRecord {
                request: job.slot.id(),
                group: group.name.to_string(),
                worker: me.index,
                error: job
                    .errors
                    .last()
                    .map(|e| e.error.clone())
                    .expect("pushed above"),
                at: SystemTime::now(),
            },
        );
    } else {
        group.breaker.release_probe(job.probe);
    }

    if cancelled {
        if job.slot.resolve(Outcome::Cancelled(CancelReason::Caller)) {
            me.counts.cancelled.inc();
        } else {
            shared.ledger.late_results.inc();
        }
    } else if !retryable
        || job.attempts >= shared.retry.max_attempts
        || !shared.may_retry_somewhere(&job)
    {
        dead_letter(shared, job, || me.counts.dead_lettered.inc());
    } else if job.slot.requeue() {
        me.counts.retried.inc();
        let due = crate::clock::saturating_add(Instant::now(), shared.retry.backoff(job.attempts));
        shared.schedule_retry(due, job);
    } else {
        // Resolved elsewhere while running (shutdown gave up on this call).
        shared.ledger.late_results.inc();
    }
}

/// Moves a job to the dead-letter queue and resolves it as failed; the
/// letter is in the queue before the handle sees the failure. False if the
/// request was already resolved elsewhere (counted as a late result).
pub(crate) fn dead_letter<I, O>(
    shared: &Shared<I, O>,
    job: Job<I, O>,
    count: impl FnOnce(),
) -> bool {
    let group = job.only_group.map(|g| shared.groups[g].name.to_string());
    dead_letter_as(shared, job, group, count)
}

/// [`dead_letter`] with the letter's group restriction given by name: for a
/// request whose group index belongs to another generation.
pub(crate) fn dead_letter_as<I, O>(
    shared: &Shared<I, O>,
    job: Job<I, O>,
    group: Option<String>,
    count: impl FnOnce(),
) -> bool {
    let errors = job.errors.clone();
    let letter = DeadLetter {
        id: job.slot.id(),
        input: job.input,
        priority: job.priority,
        group,
        errors: job.errors,
        // Wall time of submission, derived here rather than read on the
        // submit path for every request.
        submitted_at: SystemTime::now() - job.submitted.elapsed(),
        dead_lettered_at: SystemTime::now(),
    };
    let won = job.slot.resolve_then(Outcome::DeadLettered(errors), || {
        shared.dlq.push(letter);
        count();
    });
    if !won {
        shared.ledger.late_results.inc();
    }
    won
}
