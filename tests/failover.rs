//! Failover between device groups: when the top group's sessions start
//! failing, traffic moves to the next group and the breaker opens; nothing
//! is lost; when the group recovers, the breaker closes and traffic returns.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    BreakerConfig, BreakerMode, BreakerState, GroupConfig, Health, ManualClock, Pool, Request,
    RetryPolicy, SessionError, WorkerInfo,
};
use common::{assert_accounting, LONG};

#[test]
fn traffic_moves_off_a_failing_group_and_returns_when_it_recovers() {
    let clock = ManualClock::new();
    let failing = Arc::new(AtomicBool::new(false));
    let factory = |failing: Arc<AtomicBool>| {
        move |w: &WorkerInfo| {
            let (group, failing) = (w.group.clone(), failing.clone());
            Ok(move |x: &u32| -> Result<(String, u32), SessionError> {
                if group == "npu" && failing.load(Ordering::SeqCst) {
                    Err(SessionError::transient("NPU device lost"))
                } else {
                    Ok((group.clone(), *x))
                }
            })
        }
    };
    // Consecutive mode: this test counts failures one by one (the rate
    // mode's failover is in tests/breaker_rate.rs).
    let breaker = BreakerConfig {
        mode: BreakerMode::Consecutive,
        failure_threshold: 3,
        recovery_timeout: Duration::from_secs(10),
        half_open_max_calls: 1,
        ..Default::default()
    };
    let pool = Pool::builder()
        .clock(Arc::new(clock.clone()))
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_micros(100),
            ..Default::default()
        })
        .group(
            GroupConfig::new("npu").priority(9).breaker(breaker),
            factory(failing.clone()),
        )
        .group(
            GroupConfig::new("cpu").priority(1),
            factory(failing.clone()),
        )
        .build()
        .unwrap();
    let served_by = |i: u32| pool.submit(Request::new(i)).unwrap().wait().unwrap().0;

    // Healthy: the top group serves everything.
    for i in 0..20 {
        assert_eq!(served_by(i), "npu");
    }

    // The NPU breaks mid-run: every request still completes, on the CPU.
    failing.store(true, Ordering::SeqCst);
    for i in 0..30 {
        assert_eq!(served_by(i), "cpu", "request {i} fails over");
    }
    let stats = pool.stats();
    let npu = &stats.groups[0];
    assert_eq!(npu.name, "npu");
    assert_eq!(
        npu.breaker.state,
        BreakerState::Open,
        "opened after 3 failures"
    );
    assert_eq!(
        npu.counts.failed_attempts, 3,
        "after it opened, no request was sent there"
    );
    assert_eq!(npu.routed, 23);
    assert!(npu.breaker.rejected >= 27);
    assert_eq!(npu.breaker.recent_failures.len(), 3);
    assert_eq!(stats.health.status, Health::Degraded);
    assert!(
        stats.dead_letter.len == 0,
        "nothing was lost to the dead-letter queue"
    );

    // Still open before the cooldown, even though the device is back.
    failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(9));
    assert_eq!(served_by(100), "cpu");

    // After the cooldown one probe goes to the NPU, succeeds, and closes it.
    clock.advance(Duration::from_secs(1));
    assert_eq!(served_by(101), "npu", "the probe");
    assert_eq!(pool.stats().groups[0].breaker.state, BreakerState::Closed);
    for i in 0..20 {
        assert_eq!(served_by(i), "npu", "traffic is back on the top group");
    }
    let report = pool.shutdown(LONG);
    let s = &report.stats;
    assert_eq!(s.counts.completed, 72);
    assert_eq!(s.counts.dead_lettered, 0);
    assert_eq!(s.health.status, Health::Healthy);
    let transitions: Vec<_> = s.groups[0]
        .breaker
        .transitions
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        transitions,
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed)
        ]
    );
    assert_accounting(s);
}

#[test]
fn without_fallback_a_request_every_group_failed_is_dead_lettered() {
    let pool = Pool::<u32, u32>::builder()
        .retry(RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_micros(100),
            same_group_fallback: false,
            ..Default::default()
        })
        .group(GroupConfig::new("a").priority(5), |_: &WorkerInfo| {
            Ok(|_: &u32| -> Result<u32, SessionError> { Err(SessionError::transient("down")) })
        })
        .group(GroupConfig::new("b").priority(3), |_: &WorkerInfo| {
            Ok(|_: &u32| -> Result<u32, SessionError> { Err(SessionError::transient("down")) })
        })
        .build()
        .unwrap();
    let err = pool.submit(Request::new(1)).unwrap().wait().unwrap_err();
    let accelpool::TaskError::DeadLettered { attempts } = err else {
        panic!()
    };
    let groups: Vec<_> = attempts.iter().map(|a| a.group.to_string()).collect();
    assert_eq!(
        groups,
        ["a", "b"],
        "each group tried once, then no group was left"
    );
    assert_accounting(&pool.shutdown(LONG).stats);
}
