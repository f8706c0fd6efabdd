//! Retry policy: the backoff between attempts, and what becomes of a
//! failed attempt.
//!
//! In this order:
//! - the caller cancelled it (or the session said it was cancelled): it
//!   resolves as cancelled;
//! - the error is not retryable, `max_attempts` is reached, or no group is
//!   left to try: it goes to the dead-letter queue;
//! - otherwise it is retried after [`RetryPolicy::backoff`].

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::config::RetryPolicy;

impl RetryPolicy {
    /// The wait after failed attempt number `failed` (1-based): the initial
    /// backoff times `multiplier` per earlier failure, capped at
    /// `max_backoff`. Never shorter for a later attempt.
    ///
    /// ```
    /// use accelpool::RetryPolicy;
    /// let r = RetryPolicy::default();
    /// assert_eq!(r.backoff(1), r.initial_backoff);
    /// assert_eq!(r.backoff(2), r.initial_backoff * 2);
    /// assert!(r.backoff(30) <= r.max_backoff);
    /// ```
    pub fn backoff(&self, failed: u32) -> Duration {
        if failed <= 1 {
            return self.initial_backoff.min(self.max_backoff);
        }
        let exp = self
            .multiplier
            .powi(failed.saturating_sub(1).min(64) as i32);
        let secs = self.initial_backoff.as_secs_f64() * exp;
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else {
            // Never below the first wait through float rounding.
            Duration::from_secs_f64(secs).max(self.initial_backoff)
        }
    }
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Resolve it as cancelled.
    Cancel,
    /// Into the dead-letter queue.
    DeadLetter,
    /// Run it again after this wait.
    Retry(Duration),
}

/// What one failed attempt tells the policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    /// The caller cancelled, or the session said it stopped for a cancel.
    pub(crate) cancelled: bool,
    /// The error may pass on another try.
    pub(crate) retryable: bool,
    /// Attempts made, this one included.
    pub(crate) attempts: u32,
    /// Some group may still take it (see `router::may_retry_somewhere`).
    pub(crate) somewhere_to_go: bool,
}

/// The retry-or-dead-letter decision.
pub(crate) fn decide(policy: &RetryPolicy, f: Failure) -> AfterFailure {
    if f.cancelled {
        AfterFailure::Cancel
    } else if !f.retryable || f.attempts >= policy.max_attempts || !f.somewhere_to_go {
        AfterFailure::DeadLetter
    } else {
        AfterFailure::Retry(policy.backoff(f.attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (
            1u32..=100,
            0u64..5_000,
            1.0f64..10.0,
            0u64..5_000,
            any::<bool>(),
        )
            .prop_map(
                |(max_attempts, initial, multiplier, extra, same_group_fallback)| RetryPolicy {
                    max_attempts,
                    initial_backoff: Duration::from_micros(initial),
                    multiplier,
                    max_backoff: Duration::from_micros(initial + extra),
                    same_group_fallback,
                },
            )
    }

    proptest! {
        /// Monotonic in the attempt number, starting at the initial backoff,
        /// never past the cap.
        #[test]
        fn backoff_is_monotonic_and_capped(p in policy(), n in 1u32..200) {
            prop_assert_eq!(p.backoff(1), p.initial_backoff.min(p.max_backoff));
            prop_assert!(p.backoff(n) <= p.max_backoff);
            prop_assert!(p.backoff(n) <= p.backoff(n + 1), "{:?} then {:?}", p.backoff(n), p.backoff(n + 1));
            prop_assert!(p.backoff(n) >= p.initial_backoff.min(p.max_backoff));
        }

        /// A cancel always wins; a retry happens only below `max_attempts`,
        /// for a retryable error with somewhere to go, after the backoff.
        #[test]
        fn decision_follows_the_documented_order(
            p in policy(),
            cancelled in any::<bool>(),
            retryable in any::<bool>(),
            attempts in 1u32..120,
            somewhere_to_go in any::<bool>(),
        ) {
            let d = decide(&p, Failure { cancelled, retryable, attempts, somewhere_to_go });
            let expected = if cancelled {
                AfterFailure::Cancel
            } else if retryable && attempts < p.max_attempts && somewhere_to_go {
                AfterFailure::Retry(p.backoff(attempts))
            } else {
                AfterFailure::DeadLetter
            };
            prop_assert_eq!(d, expected);
        }
    }
}
