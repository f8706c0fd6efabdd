//! The failure-rate breaker inside a pool: failover when a device dies,
//! probes that do not wait behind queued work, what happens when every
//! group is open, slow calls, and the settings in YAML.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::{
    AllOpenPolicy, BreakerConfig, BreakerState, GroupConfig, Health, ManualClock, Pool, Refusal,
    Request, RetryPolicy, SessionError, WorkerInfo,
};
use common::{assert_accounting, assert_config_errors, Gate, LONG};
use crossbeam_channel::unbounded;

fn small_window(calls: u32) -> BreakerConfig {
    BreakerConfig {
        window: calls,
        minimum_calls: calls,
        half_open_max_calls: 1,
        ..BreakerConfig::default()
    }
}

/// One group whose session blocks input `i` on `gates[i]`, fails inputs of
/// 100 and more (transient), reports every other input it runs on `ran`,
/// and returns it; no retries.
fn gated_pool(
    clock: &ManualClock,
    workers: usize,
    capacity: usize,
    gates: &[Gate],
    ran: crossbeam_channel::Sender<u32>,
) -> Pool<u32, u32> {
    let gates = gates.to_vec();
    Pool::builder()
        .clock(Arc::new(clock.clone()))
        .retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .group(
            GroupConfig::new("npu")
                .workers(workers)
                .pin(false)
                .capacity(capacity)
                .breaker(small_window(3)),
            move |_: &WorkerInfo| {
                let (gates, ran) = (gates.clone(), ran.clone());
                Ok(move |x: &u32| -> Result<u32, SessionError> {
                    match *x as usize {
                        i if i < gates.len() => gates[i].pass(),
                        f if f >= 100 => return Err(SessionError::transient("injected")),
                        _ => {}
                    }
                    let _ = ran.send(*x);
                    Ok(*x)
                })
            },
        )
        .build()
        .unwrap()
}

/// Opens the pool's breaker (window of 3) with three failing calls.
fn open_breaker(pool: &Pool<u32, u32>) {
    for f in 100..103 {
        assert!(pool.submit(Request::new(f)).unwrap().wait().is_err());
    }
    assert_eq!(pool.stats().groups[0].breaker.state, BreakerState::Open);
}

#[test]
fn a_dead_device_stops_taking_work_after_the_minimum_calls_and_traffic_fails_over() {
    let clock = ManualClock::new();
    let dead = Arc::new(AtomicBool::new(false));
    let factory = |dead: Arc<AtomicBool>| {
        move |info: &WorkerInfo| {
            let (group, dead) = (info.group.clone(), dead.clone());
            Ok(move |x: &u32| -> Result<(String, u32), SessionError> {
                if group == "npu" && dead.load(Ordering::SeqCst) {
                    Err(SessionError::transient("NPU lost"))
                } else {
                    Ok((group.clone(), *x))
                }
            })
        }
    };
    let pool = Pool::builder()
        .clock(Arc::new(clock.clone()))
        .retry(RetryPolicy {
            initial_backoff: Duration::ZERO,
            ..RetryPolicy::default()
        })
        .group(
            GroupConfig::new("npu")
                .priority(9)
                .breaker(small_window(20)),
            factory(dead.clone()),
        )
        .group(GroupConfig::new("cpu").priority(1), factory(dead.clone()))
        .build()
        .unwrap();
    let run = |i: u32| pool.submit(Request::new(i)).unwrap().wait().unwrap().0;
    for i in 0..30 {
        assert_eq!(run(i), "npu");
    }
    dead.store(true, Ordering::SeqCst);
    // Each request fails once on the NPU and is retried on the CPU: no
    // request is lost while the window turns. The window of 20 calls held
    // 20 successes, so the 10th failure makes it half failures: open.
    let npu = |pool: &Pool<u32, (String, u32)>| pool.stats().groups[0].clone();
    for i in 0..10 {
        assert_eq!(npu(&pool).breaker.state, BreakerState::Closed, "call {i}");
        assert_eq!(run(i), "cpu");
    }
    let s = npu(&pool);
    assert_eq!(s.breaker.state, BreakerState::Open, "{:?}", s.breaker);
    assert_eq!(s.counts.started, 30 + 10, "opened on the 10th failed call");
    let t = s.breaker.transitions.last().unwrap();
    assert_eq!((t.window.calls, t.window.failure_rate), (20, 0.5));
    assert!(
        t.reason.contains("failure rate 50.0 % of 20 calls"),
        "{}",
        t.reason
    );
    // Open: the next requests go straight to the CPU, not one more NPU call.
    for i in 0..10 {
        assert_eq!(run(i), "cpu");
    }
    assert_eq!(npu(&pool).counts.started, 40);
    assert_eq!(pool.stats().counts.failed_attempts, 10);
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn a_probe_is_taken_before_the_work_queued_while_the_breaker_was_open() {
    let clock = ManualClock::new();
    let (ran_tx, ran_rx) = unbounded();
    let gates = [Gate::new(), Gate::new()];
    let pool = gated_pool(&clock, 2, 16, &gates, ran_tx);
    // Worker A blocks on gate 0; worker B fails three calls: open.
    let blocked_a = pool.submit(Request::new(0)).unwrap();
    gates[0].wait_reached();
    open_breaker(&pool);
    // The only group is open, so requests still come in (least bad), as
    // plain work: worker B blocks on gate 1, three more wait in the queue.
    let blocked_b = pool.submit(Request::new(1)).unwrap();
    gates[1].wait_reached();
    let queued: Vec<_> = (10..13)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    assert_eq!(pool.stats().groups[0].queue_depth.normal, 3);
    assert_eq!(pool.stats().groups[0].breaker.overridden, 4);
    // The cooldown passes; the next request is the half-open probe.
    clock.advance(Duration::from_secs(1));
    let probe = pool.submit(Request::new(50)).unwrap();
    assert_eq!(pool.stats().groups[0].breaker.state, BreakerState::HalfOpen);
    // Worker A is freed: it runs the probe before the queued work.
    gates[0].open_one();
    assert_eq!(ran_rx.recv_timeout(LONG).unwrap(), 0);
    assert_eq!(
        ran_rx.recv_timeout(LONG).unwrap(),
        50,
        "the probe goes first"
    );
    assert_eq!(probe.wait().unwrap(), 50);
    assert_eq!(pool.stats().groups[0].breaker.state, BreakerState::Closed);
    gates[1].open_one();
    for h in queued {
        h.wait().unwrap();
    }
    blocked_a.wait().unwrap();
    blocked_b.wait().unwrap();
    assert_accounting(&pool.shutdown(LONG).stats);
}

/// One group whose calls all fail, opened, under each `when_all_open`.
fn open_single_group(policy: AllOpenPolicy) -> Pool<u32, u32> {
    let pool = Pool::builder()
        .when_all_open(policy)
        .clock(Arc::new(ManualClock::new()))
        .retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .group(
            GroupConfig::new("npu").breaker(small_window(3)),
            |_: &WorkerInfo| {
                Ok(|_: &u32| -> Result<u32, SessionError> {
                    Err(SessionError::transient("injected"))
                })
            },
        )
        .build()
        .unwrap();
    for i in 0..3 {
        assert!(pool.submit(Request::new(i)).unwrap().wait().is_err());
    }
    assert_eq!(pool.stats().groups[0].breaker.state, BreakerState::Open);
    pool
}

#[test]
fn when_every_group_is_open_the_policy_decides_and_the_stats_say_so() {
    // Refuse: the caller gets its request back, as Unavailable.
    let pool = open_single_group(AllOpenPolicy::Refuse);
    let err = pool.try_submit(Request::new(7)).unwrap_err();
    assert_eq!(err.refusal(), &Refusal::Unavailable);
    assert_eq!(err.into_request().into_input(), 7);
    assert_eq!(pool.stats().groups[0].breaker.overridden, 0);
    assert_accounting(&pool.shutdown(LONG).stats);

    // Least bad (the default): the request runs on the open group anyway,
    // and the stats and the health summary say that this is happening.
    let pool = open_single_group(AllOpenPolicy::LeastBad);
    let h = pool.try_submit(Request::new(7)).unwrap();
    assert!(h.wait().is_err(), "the device still fails, visibly");
    let s = pool.stats();
    assert_eq!(s.groups[0].breaker.overridden, 1);
    assert_eq!(s.health.status, Health::Unhealthy);
    assert!(
        s.health
            .reasons
            .iter()
            .any(|r| r.contains("when_all_open: least_bad")),
        "{:?}",
        s.health.reasons
    );
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn slow_calls_open_the_breaker_at_their_own_rate() {
    let pool = Pool::builder()
        .when_all_open(AllOpenPolicy::Refuse)
        .clock(Arc::new(ManualClock::new()))
        .group(
            GroupConfig::new("npu").breaker(BreakerConfig {
                // Far above what a trivial call takes even on a loaded machine.
                slow_call_duration: Some(Duration::from_millis(200)),
                slow_call_rate_threshold: 0.5,
                ..small_window(4)
            }),
            |_: &WorkerInfo| {
                Ok(|x: &u32| -> Result<u32, SessionError> {
                    // Odd inputs take at least 250 ms: slow, but successful.
                    if x % 2 == 1 {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(250) {
                            std::thread::yield_now();
                        }
                    }
                    Ok(*x)
                })
            },
        )
        .build()
        .unwrap();
    for x in [0, 2, 4, 1] {
        pool.submit(Request::new(x)).unwrap().wait().unwrap();
    }
    assert_eq!(
        pool.stats().groups[0].breaker.state,
        BreakerState::Closed,
        "1 slow of 4"
    );
    pool.submit(Request::new(3)).unwrap().wait().unwrap();
    let b = pool.stats().groups[0].breaker.clone();
    assert_eq!(b.state, BreakerState::Open, "2 slow of the last 4: {b:?}");
    assert!(b.transitions[0].reason.contains("slow-call rate 50.0 %"));
    assert_eq!(b.transitions[0].window.slow_call_rate, 0.5);
    assert_eq!(
        pool.try_submit(Request::new(6)).unwrap_err().refusal(),
        &Refusal::Unavailable
    );
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn the_breaker_settings_read_from_yaml_and_bad_ones_name_the_field() {
    let cfg = accelpool::PoolConfig::from_yaml(
        "when_all_open: refuse\n\
         groups:\n\
         - name: npu\n\
         \x20 breaker:\n\
         \x20   window_duration: 30s\n\
         \x20   minimum_calls: 20\n\
         \x20   failure_rate_threshold: 0.25\n\
         \x20   slow_call_duration: 250ms\n\
         \x20   slow_call_rate_threshold: 0.8\n\
         \x20   count_as_failure: [transient, timed_out]\n\
         \x20   half_open_max_calls: 4\n\
         \x20   healthy_reset_after: 1m\n",
    )
    .unwrap();
    assert_eq!(cfg.when_all_open, AllOpenPolicy::Refuse);
    let b = &cfg.groups[0].breaker;
    assert_eq!(b.window_duration, Some(Duration::from_secs(30)));
    assert_eq!(b.failure_rate_threshold, 0.25);
    assert!(b.counts(accelpool::ErrorKind::TimedOut));
    assert!(!b.counts(accelpool::ErrorKind::Panicked));
    assert_eq!(b.max_backoff, Duration::from_secs(10), "default cap");

    assert_config_errors(&[
        (
            "groups: [{name: a, breaker: {failure_rate_threshold: 1.5}}]",
            "groups[0].breaker.failure_rate_threshold",
            "1.5 is outside 0.0 (excluded)..=1.0",
        ),
        (
            "groups: [{name: a, breaker: {minimum_calls: 300}}]",
            "groups[0].breaker.minimum_calls",
            "300 is outside 1..=200 (at most `window`)",
        ),
        (
            "groups: [{name: a, breaker: {window: 0}}]",
            "groups[0].breaker.window",
            "0 is outside 1..=100000",
        ),
        (
            "groups: [{name: a, breaker: {window_duration: 1ms}}]",
            "groups[0].breaker.window_duration",
            "1ms is outside 10ms..=1h",
        ),
        (
            "groups: [{name: a, breaker: {count_as_failure: [sometimes]}}]",
            "groups[0].breaker.count_as_failure[0]",
            "unknown variant `sometimes`",
        ),
        (
            "groups: [{name: a, breaker: {mode: streaky}}]",
            "groups[0].breaker.mode",
            "unknown variant `streaky`, expected `failure_rate` or `consecutive`",
        ),
        (
            "when_all_open: panic\ngroups: [{name: a}]",
            "when_all_open",
            "unknown variant `panic`, expected `least_bad` or `refuse`",
        ),
    ]);
}

#[test]
fn a_blocked_submitter_waits_for_room_in_an_open_group_when_all_are_open() {
    let gate = Gate::new();
    let (ran_tx, _ran) = unbounded();
    let pool = gated_pool(
        &ManualClock::new(),
        1,
        1,
        std::slice::from_ref(&gate),
        ran_tx,
    );
    open_breaker(&pool);
    // The worker blocks; one request fills the queue.
    let blocked = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let queued = pool.submit(Request::new(1)).unwrap();
    assert_eq!(
        pool.try_submit(Request::new(2)).unwrap_err().refusal(),
        &Refusal::Full {
            priority: accelpool::Priority::Normal
        },
        "full, not unavailable: the open group still takes work"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| pool.submit(Request::new(2)).unwrap().wait().unwrap());
        gate.open_one();
        // Whether it found the queue still full (and waited) or not, it
        // is taken by the open group, never refused.
        assert_eq!(waiter.join().unwrap(), 2);
    });
    assert_eq!(blocked.wait().unwrap(), 0);
    assert_eq!(queued.wait().unwrap(), 1);
    assert_eq!(pool.stats().groups[0].breaker.overridden, 3, "0, 1 and 2");
    assert_accounting(&pool.shutdown(LONG).stats);
}
