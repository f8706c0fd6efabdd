//! Deadline-aware admission: how long a request submitted now would take in
//! one group, from what is ahead of it and the group's measured service
//! time (see [`DeadlineAdmission`](crate::DeadlineAdmission) for the
//! formula as users read it).

#![forbid(unsafe_code)]

use std::time::Duration;

/// What a group has ahead of a request, and how fast it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backlog {
    /// Requests queued at the request's level and above, plus calls running.
    pub(crate) ahead: usize,
    /// Workers taking requests (not parked).
    pub(crate) workers: usize,
    /// Moving average of a call's service time, in nanoseconds (0: none
    /// measured yet).
    pub(crate) per_call: u64,
    /// The same divided by the call's batch size.
    pub(crate) per_request: u64,
}

/// The estimated time from now until the request's result, or `None` when
/// the group has not measured a call yet (nothing to go on: admit).
///
/// The work ahead is shared by the workers, each request of it costing
/// `per_request`; then the request's own call takes `per_call`. Running
/// calls count whole, though they are part done: the estimate leans long by
/// up to one call per worker, which suits a refusal meant to spare work
/// that would expire.
pub(crate) fn estimate(b: Backlog, safety_factor: f64) -> Option<Duration> {
    if b.per_call == 0 {
        return None;
    }
    let workers = b.workers.max(1) as f64;
    let nanos =
        (b.ahead as f64 / workers * b.per_request as f64 + b.per_call as f64) * safety_factor;
    Some(Duration::from_nanos(nanos.min(u64::MAX as f64) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn backlog(ahead: usize, workers: usize, per_call: u64, batch: u64) -> Backlog {
        Backlog {
            ahead,
            workers,
            per_call,
            per_request: per_call / batch,
        }
    }

    #[test]
    fn an_idle_group_takes_one_call_and_a_busy_one_shares_its_backlog() {
        let ms = Duration::from_millis;
        assert_eq!(estimate(backlog(0, 1, 10 * MS, 1), 1.0), Some(ms(10)));
        assert_eq!(estimate(backlog(4, 1, 10 * MS, 1), 1.0), Some(ms(50)));
        assert_eq!(estimate(backlog(4, 2, 10 * MS, 1), 1.0), Some(ms(30)));
        // Batches of 4: the backlog costs a quarter per request.
        assert_eq!(estimate(backlog(8, 1, 10 * MS, 4), 1.0), Some(ms(30)));
        assert_eq!(estimate(backlog(4, 1, 10 * MS, 1), 2.0), Some(ms(100)));
        // Nothing measured: no estimate (the request is admitted).
        assert_eq!(estimate(backlog(100, 1, 0, 1), 1.0), None);
    }

    proptest! {
        /// More ahead never shortens the estimate; more workers never
        /// lengthen it; a larger safety factor never shortens it.
        #[test]
        fn the_estimate_is_monotonic(
            ahead in 0usize..10_000,
            workers in 1usize..64,
            per_call in 1u64..10_000_000_000,
            batch in 1u64..64,
            factor in 0.1f64..10.0,
        ) {
            let b = backlog(ahead, workers, per_call, batch);
            let e = estimate(b, factor).unwrap();
            prop_assert!(estimate(backlog(ahead + 1, workers, per_call, batch), factor).unwrap() >= e);
            prop_assert!(estimate(backlog(ahead, workers + 1, per_call, batch), factor).unwrap() <= e);
            prop_assert!(estimate(b, factor * 1.5).unwrap() >= e);
        }
    }
}
