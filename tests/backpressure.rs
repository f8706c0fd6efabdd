//! Backpressure: a full queue hands the request back intact, other levels
//! keep their own room, `submit_timeout` returns at its deadline, and a
//! blocked `submit` proceeds as soon as room appears.

// Threads hand `SubmitError`s (which carry the refused request) back to the test.
#![allow(clippy::result_large_err)]

mod common;

use std::time::{Duration, Instant};

use accelpool::{
    GroupConfig, LevelCapacity, Pool, Priority, Refusal, Request, SessionError, WorkerInfo,
};
use common::{assert_accounting, Gate, LONG};

fn gated_pool(gate: &Gate) -> Pool<String, usize> {
    let gate = gate.clone();
    Pool::builder()
        .group(
            GroupConfig::new("cpu")
                .workers(1)
                .level_capacity(LevelCapacity {
                    urgent: 1,
                    high: 1,
                    normal: 2,
                    low: 1,
                }),
            move |_: &WorkerInfo| {
                let gate = gate.clone();
                Ok(move |s: &String| -> Result<usize, SessionError> {
                    if s == "block" {
                        gate.pass();
                    }
                    Ok(s.len())
                })
            },
        )
        .build()
        .unwrap()
}

#[test]
fn full_queue_hands_request_back_intact() {
    let gate = Gate::new();
    let pool = gated_pool(&gate);
    let blocker = pool.submit(Request::new("block".to_string())).unwrap();
    gate.wait_reached();
    let a = pool.try_submit(Request::new("a".into())).unwrap();
    let b = pool.try_submit(Request::new("bb".into())).unwrap();

    let deadline = Instant::now() + Duration::from_secs(3600);
    let refused = pool
        .try_submit(
            Request::new("payload".to_string())
                .deadline(deadline)
                .group("cpu"),
        )
        .unwrap_err();
    assert!(
        matches!(refused.refusal(), Refusal::Full { .. }),
        "{refused}"
    );
    assert!(refused.is_backpressure());
    assert!(
        refused.to_string().contains("capacity.normal"),
        "the error names the fix: {refused}"
    );
    let back = refused.into_request();
    assert_eq!(back.input(), "payload");
    assert_eq!(back.get_priority(), Priority::Normal);
    assert_eq!(back.get_deadline(), Some(deadline));
    assert_eq!(back.get_group(), Some("cpu"));

    // Capacity is per level: a full Normal queue does not block Urgent.
    let urgent = pool
        .try_submit(Request::new("u".into()).priority(Priority::Urgent))
        .unwrap();

    gate.open_one();
    assert_eq!(blocker.wait().unwrap(), 5);
    assert_eq!(a.wait().unwrap(), 1);
    assert_eq!(b.wait().unwrap(), 2);
    assert_eq!(urgent.wait().unwrap(), 1);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.rejected, 1);
    assert_accounting(&stats);
}

#[test]
fn submit_timeout_returns_at_its_deadline_with_the_request() {
    let gate = Gate::new();
    let pool = gated_pool(&gate);
    let blocker = pool.submit(Request::new("block".to_string())).unwrap();
    gate.wait_reached();
    let _ = pool
        .try_submit(Request::new("low".into()).priority(Priority::Low))
        .unwrap();

    let timeout = Duration::from_millis(50);
    let started = Instant::now();
    let err = pool
        .submit_timeout(
            Request::new("late".to_string()).priority(Priority::Low),
            timeout,
        )
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err.refusal(), Refusal::Timeout { .. }), "{err}");
    assert!(
        waited >= timeout,
        "returned before its deadline: {waited:?}"
    );
    assert_eq!(err.into_request().into_input(), "late");

    gate.open_one();
    blocker.wait().unwrap();
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn blocked_submit_proceeds_when_room_appears_and_closes_on_shutdown() {
    let gate = Gate::new();
    let pool = std::sync::Arc::new(gated_pool(&gate));
    let blocker = pool.submit(Request::new("block".to_string())).unwrap();
    gate.wait_reached();
    let _low = pool
        .try_submit(Request::new("x".into()).priority(Priority::Low))
        .unwrap();
    // The Low queue is full: this submit blocks until the worker frees a slot.
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.submit(Request::new("yy".into()).priority(Priority::Low))
                .map(|h| h.wait())
        })
    };
    gate.open_one();
    blocker.wait().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap().unwrap(), 2);

    // A submit blocked when the pool shuts down gets its request back.
    let blocker = pool.submit(Request::new("block".to_string())).unwrap();
    gate.wait_reached();
    let _low = pool
        .try_submit(Request::new("x".into()).priority(Priority::Low))
        .unwrap();
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            entered_tx.send(()).unwrap();
            pool.submit(Request::new("zz".into()).priority(Priority::Low))
        })
    };
    entered_rx.recv().unwrap();
    let closer = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown(LONG))
    };
    // Whether it was already blocked or arrived after closing, it is refused
    // as Closed (the worker is held at the gate, so the queue never frees).
    let refused = waiter.join().unwrap().unwrap_err();
    assert!(matches!(refused.refusal(), Refusal::Closed), "{refused}");
    assert_eq!(refused.into_request().into_input(), "zz");
    gate.open_one();
    blocker.wait().unwrap();
    let report = closer.join().unwrap();
    assert_accounting(&report.stats);
}
