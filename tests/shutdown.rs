//! Shutdown: drains queued work, cancels what is left at the deadline,
//! detaches a worker stuck in a call, and always leaves nothing in flight.

mod common;

use std::time::Duration;

use accelpool::{
    CancelReason, GroupConfig, Pool, Refusal, Request, SessionError, TaskError, WorkerInfo,
};
use common::{assert_accounting, eventually, Gate, LONG};

fn gated(gate: &Gate, workers: usize) -> Pool<u32, u32> {
    let gate = gate.clone();
    Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(workers),
            move |_: &WorkerInfo| {
                let gate = gate.clone();
                Ok(move |x: &u32| -> Result<u32, SessionError> {
                    if *x == 0 {
                        gate.pass();
                    }
                    Ok(*x)
                })
            },
        )
        .build()
        .unwrap()
}

#[test]
fn shutdown_drains_queued_work() {
    let gate = Gate::new();
    let pool = gated(&gate, 1);
    let blocker = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let queued: Vec<_> = (1..=20)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.open_one())
    };
    let report = pool.shutdown(LONG);
    opener.join().unwrap();
    assert!(report.drained);
    assert_eq!((report.cancelled_queued, report.cancelled_running), (0, 0));
    assert_eq!(report.workers_joined, 1);
    assert_eq!(blocker.wait().unwrap(), 0);
    for (i, h) in queued.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), i as u32 + 1);
    }
    assert_eq!(report.stats.counts.completed, 21);
    assert_accounting(&report.stats);
    // Idempotent: a second call returns the same report.
    assert_eq!(pool.shutdown(LONG).cancelled_queued, 0);
    assert!(matches!(
        pool.try_submit(Request::new(1))
            .map_err(|e| e.into_parts().1),
        Err(Refusal::Closed)
    ));
}

#[test]
fn stuck_call_at_the_deadline_is_given_up_and_queued_work_cancelled() {
    let gate = Gate::new();
    let pool = gated(&gate, 1);
    let mut stuck = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let queued: Vec<_> = (1..=5)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    let report = pool.shutdown(Duration::from_millis(30));
    assert!(!report.drained);
    assert_eq!(report.cancelled_running, 1);
    assert_eq!(report.cancelled_queued, 5);
    assert_eq!((report.workers_joined, report.workers_detached), (0, 1));
    assert!(matches!(
        stuck.try_get(),
        Some(Err(TaskError::Cancelled {
            reason: CancelReason::Shutdown
        }))
    ));
    for mut h in queued {
        assert!(matches!(
            h.try_get(),
            Some(Err(TaskError::Cancelled {
                reason: CancelReason::Shutdown
            }))
        ));
    }
    assert_accounting(&report.stats);

    // The stuck call returns later: its result is discarded and counted.
    gate.open_one();
    eventually("the late result to be counted", || {
        pool.stats().late_results_discarded != 0
    });
    let stats = pool.stats();
    assert_eq!(stats.late_results_discarded, 1);
    assert_accounting(&stats);
}

#[test]
fn stats_serialize_to_json() {
    let gate = Gate::new();
    let pool = gated(&gate, 2);
    for i in 1..=10 {
        pool.submit(Request::new(i)).unwrap().wait().unwrap();
    }
    let stats = pool.shutdown(LONG).stats;
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["counts"]["completed"], 10);
    assert_eq!(json["groups"][0]["name"], "cpu");
    assert_eq!(json["groups"][0]["workers"].as_array().unwrap().len(), 2);
    assert!(json["latency"]["end_to_end"]["p99_us"].as_f64().unwrap() > 0.0);
    assert_eq!(json["latency"]["service"]["count"], 10);
}
