//! Load scaling between `min_workers` and `workers`: an idle worker parks
//! after `idle_timeout` (manual clock), and a parked one wakes when queued
//! requests wait longer than `queue_wait_target`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::{GroupConfig, ManualClock, Pool, Request, ScalingConfig, SessionError, WorkerInfo};
use common::{assert_accounting, stats_until, supervisor_checked, Gate, LONG};

#[test]
fn idle_workers_park_and_wake_when_queue_wait_grows() {
    let clock = ManualClock::new();
    let gate = Gate::new();
    let pool = {
        let gate = gate.clone();
        Pool::builder()
            .clock(Arc::new(clock.clone()))
            .health_check_interval(Duration::from_millis(1))
            .group(
                GroupConfig::new("cpu")
                    .workers(2)
                    .min_workers(1)
                    .scaling(ScalingConfig {
                        enabled: true,
                        queue_wait_target: Duration::from_micros(100),
                        idle_timeout: Duration::from_secs(10),
                    }),
                move |_: &WorkerInfo| {
                    let gate = gate.clone();
                    Ok(move |x: &u32| -> Result<u32, SessionError> {
                        if *x > 0 {
                            gate.pass();
                        }
                        Ok(*x)
                    })
                },
            )
            .build()
            .unwrap()
    };
    assert_eq!(pool.stats().groups[0].active_workers, 2);
    clock.advance(Duration::from_secs(5));
    assert_eq!(pool.submit(Request::new(0)).unwrap().wait().unwrap(), 0);
    // Idle past the timeout: scaled down to the minimum, never below it.
    clock.advance(Duration::from_secs(11));
    let s = stats_until(&pool, "one worker parked", |s| {
        s.groups[0].active_workers == 1 && s.memory.parked_workers == 1
    });
    assert_eq!(s.groups[0].workers.iter().filter(|w| w.parked).count(), 1);
    clock.advance(Duration::from_secs(60));
    supervisor_checked(&pool);
    assert_eq!(
        pool.stats().groups[0].active_workers,
        1,
        "min_workers stays"
    );

    // Load: the one active worker is held while requests queue up behind it.
    let handles: Vec<_> = (1..=6)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    gate.wait_reached();
    let held_since = Instant::now();
    while held_since.elapsed() < Duration::from_millis(3) {
        std::hint::spin_loop(); // the queued requests' wait grows past the target
    }
    gate.open_one(); // request 1 done; request 2 is taken after a long wait
    gate.wait_reached();
    // The waits exceed the target with work still queued: a second worker wakes
    // and takes request 3, so two sessions are at the gate at once.
    gate.wait_reached();
    let s = pool.stats();
    assert_eq!(s.groups[0].active_workers, 2);
    for _ in 0..5 {
        gate.open_one();
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), i as u32 + 1);
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}
