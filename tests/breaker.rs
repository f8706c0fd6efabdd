//! Every circuit-breaker transition, driven by a manual clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use accelpool::{
    Admission, BreakerConfig, BreakerMode, BreakerState, CircuitBreaker, FailureRecord,
    ManualClock, SessionError,
};

/// The consecutive-failure breaker (rate mode has its own tests below).
fn config() -> BreakerConfig {
    BreakerConfig {
        mode: BreakerMode::Consecutive,
        failure_threshold: 3,
        recovery_timeout: Duration::from_secs(10),
        backoff_multiplier: 2.0,
        max_backoff: Duration::from_secs(30),
        half_open_max_calls: 2,
        history: 4,
        ..BreakerConfig::default()
    }
}

fn failure(id: u64) -> FailureRecord {
    FailureRecord {
        request: id,
        group: "npu".into(),
        worker: 0,
        error: SessionError::transient("device lost"),
        at: SystemTime::now(),
    }
}

fn opened(clock: &ManualClock) -> CircuitBreaker {
    let b = CircuitBreaker::new(config(), Arc::new(clock.clone()));
    for i in 0..3 {
        b.record_failure(false, failure(i));
    }
    assert_eq!(b.state(), BreakerState::Open);
    b
}

#[test]
fn closed_opens_after_threshold_consecutive_failures_only() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::new(config(), Arc::new(clock.clone()));
    assert_eq!(b.admit(), Admission::Yes);
    b.record_failure(false, failure(1));
    b.record_failure(false, failure(2));
    b.record_success(false); // breaks the run
    b.record_failure(false, failure(3));
    b.record_failure(false, failure(4));
    assert_eq!(b.state(), BreakerState::Closed, "not three in a row yet");
    b.record_failure(false, failure(5));
    assert_eq!(b.state(), BreakerState::Open);
    let s = b.stats();
    assert_eq!(s.transitions.len(), 1);
    assert!(s.transitions[0].reason.contains("3 consecutive failures"));
}

#[test]
fn open_turns_requests_away_until_the_cooldown_and_counts_them() {
    let clock = ManualClock::new();
    let b = opened(&clock);
    assert_eq!(b.admit(), Admission::No);
    clock.advance(Duration::from_secs(9));
    assert_eq!(b.admit(), Admission::No);
    assert_eq!(b.stats().rejected, 2);
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.admit(), Admission::Probe, "cooldown over: half-open");
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn half_open_admits_only_its_probes_and_closes_when_all_succeed() {
    let clock = ManualClock::new();
    let b = opened(&clock);
    clock.advance(Duration::from_secs(10));
    assert_eq!(b.admit(), Admission::Probe);
    assert_eq!(b.admit(), Admission::Probe);
    assert_eq!(b.admit(), Admission::No, "half_open_max_calls = 2");
    b.record_success(true);
    assert_eq!(b.state(), BreakerState::HalfOpen, "one of two probes done");
    b.record_success(true);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.admit(), Admission::Yes);
    assert_eq!(b.stats().cooldown_ms, 10_000.0, "backoff reset");
}

#[test]
fn failed_probe_reopens_with_a_growing_capped_cooldown() {
    let clock = ManualClock::new();
    let b = opened(&clock); // cooldown 10 s
    clock.advance(Duration::from_secs(10));
    assert_eq!(b.admit(), Admission::Probe);
    b.record_failure(true, failure(7));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.stats().cooldown_ms, 20_000.0, "10 s x 2");

    clock.advance(Duration::from_millis(19_999));
    assert_eq!(b.admit(), Admission::No, "still cooling down");
    clock.advance(Duration::from_millis(1));
    assert_eq!(b.admit(), Admission::Probe);
    b.record_failure(true, failure(8));
    assert_eq!(
        b.stats().cooldown_ms,
        30_000.0,
        "20 s x 2 = 40 s, capped at 30 s"
    );

    clock.advance(Duration::from_secs(30));
    assert_eq!(b.admit(), Admission::Probe);
    b.release_probe(true);
    assert_eq!(
        b.admit(),
        Admission::Probe,
        "a released probe slot is free again"
    );
    assert_eq!(b.admit(), Admission::Probe);
    assert_eq!(b.admit(), Admission::No);
    b.record_failure(true, failure(9));
    assert_eq!(b.stats().cooldown_ms, 30_000.0, "stays at the cap");

    let s = b.stats();
    assert_eq!(
        s.transitions.len(),
        4,
        "history keeps the last 4 of 6 transitions"
    );
    assert_eq!(s.recent_failures.len(), 4);
    assert_eq!(s.recent_failures.last().unwrap().request, 9);
}

#[test]
fn manual_reset_closes_and_resets_the_backoff() {
    let clock = ManualClock::new();
    let b = opened(&clock);
    clock.advance(Duration::from_secs(10));
    assert_eq!(b.admit(), Admission::Probe);
    b.record_failure(true, failure(1));
    assert_eq!(b.stats().cooldown_ms, 20_000.0);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.admit(), Admission::Yes);
    assert_eq!(b.stats().cooldown_ms, 10_000.0);
    assert!(b
        .stats()
        .transitions
        .last()
        .unwrap()
        .reason
        .contains("manual reset"));
}
