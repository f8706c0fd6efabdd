//! A caller waiting on a handle spins for the pool's `wait_spin` before it
//! parks: a result published within the spin costs no park, a late one
//! parks the caller (and is counted), and a wait with a deadline never
//! spins or parks past it.

mod common;

use std::time::Duration;

use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
use common::{assert_accounting, eventually, Gate};

/// A pool of one worker whose calls pass `gate` first when the input is odd.
fn pool(wait_spin: Duration, gate: Option<Gate>) -> Pool<u64, u64> {
    Pool::builder()
        .wait_spin(wait_spin)
        .group(
            GroupConfig::new("cpu").workers(1).pin(false),
            move |_: &WorkerInfo| {
                let gate = gate.clone();
                Ok(move |x: &u64| -> Result<u64, SessionError> {
                    if x % 2 == 1 {
                        if let Some(g) = &gate {
                            g.pass();
                        }
                    }
                    Ok(x + 1)
                })
            },
        )
        .build()
        .unwrap()
}

#[test]
fn results_within_the_spin_never_park_the_caller() {
    // A spin far longer than a no-op call. (On one CPU the worker runs
    // when the scheduler preempts the spinning caller: slow, but no park.)
    let pool = pool(Duration::from_secs(1), None);
    for i in 0..200u64 {
        let h = pool.submit(Request::new(i * 2)).unwrap();
        assert_eq!(h.wait().unwrap(), i * 2 + 1);
    }
    let stats = pool.stats();
    assert_eq!(stats.waits_parked, 0);
    let report = pool.shutdown(Duration::MAX);
    assert_eq!(report.stats.counts.completed, 200);
    assert_accounting(&report.stats);
}

#[test]
fn a_late_result_parks_the_caller_once_and_wakes_it() {
    let gate = Gate::new();
    let pool = pool(Duration::ZERO, Some(gate.clone()));
    let h = pool.submit(Request::new(1)).unwrap();
    gate.wait_reached();
    std::thread::scope(|s| {
        let waiter = s.spawn(move || h.wait());
        // The result cannot be there: the call is held at the gate.
        eventually("the caller parked", || pool.stats().waits_parked == 1);
        gate.open_one();
        assert_eq!(waiter.join().unwrap().unwrap(), 2);
    });
    assert_eq!(pool.stats().waits_parked, 1);
    let report = pool.shutdown(Duration::MAX);
    assert_accounting(&report.stats);
}

#[test]
fn a_wait_whose_deadline_passed_returns_without_parking() {
    // With a spin of a whole second, a wait of no time must still return
    // at once: the spin stops at the wait's deadline.
    let gate = Gate::new();
    let pool = pool(Duration::from_secs(1), Some(gate.clone()));
    let mut h = pool.submit(Request::new(1)).unwrap();
    gate.wait_reached();
    for _ in 0..100 {
        assert!(h.wait_timeout(Duration::ZERO).is_none());
    }
    assert_eq!(pool.stats().waits_parked, 0);
    gate.open_one();
    assert_eq!(h.wait().unwrap(), 2);
    let report = pool.shutdown(Duration::MAX);
    assert_accounting(&report.stats);
}
