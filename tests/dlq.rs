//! Retries and the dead-letter queue: failed attempts are retried with
//! backoff up to `max_attempts`; then the request is dead-lettered with its
//! input intact and every attempt's error, and can be replayed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    DeadLetterConfig, GroupConfig, OverflowPolicy, Pool, Refusal, Request, RetryPolicy,
    SessionError, TaskError, WorkerInfo,
};
use common::{assert_accounting, Count, LONG};

fn flaky_pool(
    healthy: &Arc<AtomicBool>,
    attempts: &Count,
    dlq_capacity: usize,
) -> Pool<Vec<u8>, usize> {
    let (healthy, attempts) = (healthy.clone(), attempts.clone());
    Pool::builder()
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_micros(100),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(5),
            ..Default::default()
        })
        .dead_letter(DeadLetterConfig {
            capacity: dlq_capacity,
            overflow: OverflowPolicy::DropOldest,
        })
        .group(GroupConfig::new("cpu").workers(2), move |_: &WorkerInfo| {
            let (healthy, attempts) = (healthy.clone(), attempts.clone());
            Ok(move |x: &Vec<u8>| -> Result<usize, SessionError> {
                attempts.inc();
                if x.is_empty() {
                    return Err(SessionError::permanent("empty input"));
                }
                if healthy.load(Ordering::SeqCst) {
                    Ok(x.len())
                } else {
                    Err(SessionError::transient("device reset"))
                }
            })
        })
        .build()
        .unwrap()
}

#[test]
fn exhausted_request_is_dead_lettered_intact_and_replayable() {
    let healthy = Arc::new(AtomicBool::new(false));
    let attempts = Count::default();
    let pool = flaky_pool(&healthy, &attempts, 16);
    let input = vec![1u8, 2, 3, 4];
    let h = pool
        .submit(
            Request::new(input.clone())
                .priority(accelpool::Priority::High)
                .tenant("acme")
                .affinity("camera-3"),
        )
        .unwrap();
    let err = h.wait().unwrap_err();
    let TaskError::DeadLettered { attempts: errs } = &err else {
        panic!("{err}")
    };
    assert_eq!(errs.len(), 3, "max_attempts = 3");
    assert_eq!(
        errs.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(errs
        .iter()
        .all(|a| a.error.message() == "device reset" && &*a.group == "cpu"));
    assert!(errs.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(attempts.get(), 3);
    assert!(err.to_string().contains("3 attempt(s)"));

    // In the queue before the handle saw the failure, input intact.
    assert_eq!(pool.dead_letters().len(), 1);
    pool.dead_letters().inspect(|l| {
        assert_eq!(*l.input, input);
        assert_eq!(l.priority, accelpool::Priority::High);
        // Whom it was for, kept for the replay.
        assert_eq!(l.tenant.as_deref(), Some("acme"));
        assert_eq!(
            l.affinity,
            Request::new(()).affinity("camera-3").get_affinity()
        );
        assert_eq!(l.errors.len(), 3);
        assert!(l.submitted_at <= l.dead_lettered_at);
    });

    // Recovered: replaying completes it, and the queue is empty.
    healthy.store(true, Ordering::SeqCst);
    let replayed = pool.replay_dead_letters();
    assert_eq!(replayed.len(), 1);
    let h = replayed.into_iter().next().unwrap().unwrap();
    assert_eq!(h.wait().unwrap(), 4);
    assert!(pool.dead_letters().is_empty());

    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.accepted, 2);
    assert_eq!(stats.counts.retried, 2);
    assert_eq!(stats.counts.failed_attempts, 3);
    assert_eq!((stats.counts.dead_lettered, stats.counts.completed), (1, 1));
    assert_accounting(&stats);
}

#[test]
fn permanent_errors_skip_retries() {
    let healthy = Arc::new(AtomicBool::new(true));
    let attempts = Count::default();
    let pool = flaky_pool(&healthy, &attempts, 16);
    let err = pool
        .submit(Request::new(vec![]))
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(matches!(&err, TaskError::DeadLettered { attempts } if attempts.len() == 1));
    assert_eq!(attempts.get(), 1);
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn full_dead_letter_queue_counts_what_it_pushes_out() {
    let healthy = Arc::new(AtomicBool::new(true));
    let attempts = Count::default();
    let pool = flaky_pool(&healthy, &attempts, 2);
    for _ in 0..5 {
        let _ = pool.submit(Request::new(vec![])).unwrap().wait();
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.dead_letter.len, 2);
    assert_eq!(stats.dead_letter.overflowed, 3);
    assert_eq!(
        stats.counts.dead_lettered, 5,
        "all five are counted even if pushed out"
    );
    assert_accounting(&stats);
}

#[test]
fn a_refused_replay_returns_the_letter_and_says_why() {
    let healthy = Arc::new(AtomicBool::new(false));
    let attempts = Count::default();
    let pool = flaky_pool(&healthy, &attempts, 16);
    // A permanent error: dead-lettered at once, restricted to its group.
    let err = pool
        .submit(
            Request::new(vec![])
                .group("cpu")
                .tenant("t-7")
                .affinity(7u32),
        )
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(matches!(err, TaskError::DeadLettered { .. }), "{err}");
    let letter = pool.dead_letters().drain().pop().unwrap();
    let id = letter.id;
    pool.shutdown(LONG);

    let refused = pool.replay(letter).unwrap_err();
    // The caller can match on why, and has the letter back whole.
    assert_eq!(refused.refusal, Refusal::Closed);
    assert_eq!(refused.letter.id, id);
    assert_eq!(refused.letter.group.as_deref(), Some("cpu"));
    assert_eq!(refused.letter.tenant.as_deref(), Some("t-7"));
    assert_eq!(
        refused.letter.affinity,
        Request::new(()).affinity(7u32).get_affinity()
    );
    assert!(refused.letter.input.is_empty());
    assert_eq!(refused.letter.errors.len(), 1);
    assert_eq!(
        refused.to_string(),
        format!("dead letter {id} not replayed: the pool is shut down and accepts no requests")
    );
    assert_accounting(&pool.stats());
}
