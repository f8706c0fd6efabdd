//! Health: a call stuck past the group's call timeout fails over to another
//! worker and its worker is replaced; a group with no healthy worker is
//! skipped by the router.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    GroupConfig, Health, ManualClock, Pool, Request, RunContext, Session, SessionError, WorkerInfo,
};
use common::{
    assert_accounting, eventually, quiet_injected_panics, stats_until, Count, Gate, LONG,
};

struct MaybeHang {
    gate: Gate,
    id: usize,
    hung: Arc<AtomicUsize>,
}

impl Session<&'static str, (usize, u32)> for MaybeHang {
    fn run(
        &mut self,
        x: &&'static str,
        ctx: &RunContext<'_>,
    ) -> Result<(usize, u32), SessionError> {
        if *x == "hang" && ctx.attempt() == 1 {
            self.hung.store(self.id, Ordering::SeqCst);
            self.gate.pass(); // hangs until the test opens the gate
        }
        Ok((self.id, ctx.attempt()))
    }
}

/// The pool is degraded, and one of the reasons says `why`.
fn assert_degraded_because(stats: &accelpool::PoolStats, why: &str) {
    assert_eq!(stats.health.status, Health::Degraded);
    assert!(
        stats.health.reasons.iter().any(|r| r.contains(why)),
        "{:?}",
        stats.health
    );
}

#[test]
fn stuck_call_fails_over_and_its_worker_is_replaced() {
    let clock = ManualClock::new();
    let gate = Gate::new();
    let builds = Count::default();
    let hung = Arc::new(AtomicUsize::new(usize::MAX));
    let pool = {
        let (gate, builds, hung) = (gate.clone(), builds.clone(), hung.clone());
        Pool::builder()
            .health_check_interval(Duration::from_millis(1))
            .clock(Arc::new(clock.clone()))
            .group(
                GroupConfig::new("cpu")
                    .workers(2)
                    .call_timeout(Duration::from_secs(5)),
                move |_: &WorkerInfo| {
                    Ok(MaybeHang {
                        gate: gate.clone(),
                        id: builds.inc(),
                        hung: hung.clone(),
                    })
                },
            )
            .build()
            .unwrap()
    };
    let mut h = pool.submit(Request::new("hang")).unwrap();
    gate.wait_reached();
    // Not stuck yet: the clock has not passed the call timeout.
    assert!(h.wait_timeout(Duration::from_millis(20)).is_none());
    clock.advance(Duration::from_secs(6));
    // The supervisor fails the call over: attempt 2 runs elsewhere and
    // completes while the first call is still hanging.
    let (session, attempt) = h.wait_timeout(LONG).expect("failed over").unwrap();
    assert_eq!(attempt, 2);
    assert_ne!(
        session,
        hung.load(Ordering::SeqCst),
        "served by another session than the stuck one"
    );

    // The replacement builds its session on its own new thread: wait for it.
    let stats = stats_until(&pool, "the replacement's session", |s| {
        s.groups[0].workers.len() == 2 && s.groups[0].workers.iter().all(|w| w.healthy)
    });
    let g = &stats.groups[0];
    assert_eq!((g.stuck_calls, g.workers_replaced), (1, 1));
    assert_eq!(builds.get(), 3, "one fresh session for the replacement");
    let first = &g.counts;
    assert_eq!(
        (first.failed_attempts, first.retried, first.completed),
        (1, 1, 1)
    );

    // The stuck call returns at last: its result is discarded and counted.
    gate.open_one();
    eventually("the late result to be counted", || {
        pool.stats().late_results_discarded != 0
    });
    // The pool goes on serving normally.
    assert_eq!(
        pool.submit(Request::new("ok")).unwrap().wait().unwrap().1,
        1
    );
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn group_without_healthy_workers_is_skipped() {
    quiet_injected_panics();
    let builds = Count::default();
    let pool = {
        let builds = builds.clone();
        Pool::<u32, String>::builder()
            .group(
                GroupConfig::new("npu").priority(9),
                move |_: &WorkerInfo| {
                    // The first session works; every rebuild fails.
                    if builds.inc() > 0 {
                        return Err(SessionError::transient("device firmware crashed"));
                    }
                    Ok(|x: &u32| -> Result<String, SessionError> {
                        if *x == 0 {
                            panic!("injected driver crash");
                        }
                        Ok("npu".into())
                    })
                },
            )
            .group(GroupConfig::new("cpu").priority(1), |_: &WorkerInfo| {
                Ok(|_: &u32| -> Result<String, SessionError> { Ok("cpu".into()) })
            })
            .build()
            .unwrap()
    };
    assert_eq!(pool.submit(Request::new(1)).unwrap().wait().unwrap(), "npu");
    // A crash: the request fails over to the CPU; the NPU session cannot be rebuilt.
    assert_eq!(pool.submit(Request::new(0)).unwrap().wait().unwrap(), "cpu");
    eventually("the npu group to turn unhealthy", || {
        !pool.stats().groups[0].healthy
    });
    for _ in 0..10 {
        assert_eq!(pool.submit(Request::new(1)).unwrap().wait().unwrap(), "cpu");
    }
    let stats = pool.stats();
    assert_degraded_because(&stats, "`npu`: no healthy worker");
    assert!(!stats.groups[0].workers[0].healthy);
    assert!(stats.groups[0].workers[0].session_build_failures > 0);
    assert_accounting(&pool.shutdown(LONG).stats);
}

/// A backend whose readiness the test sets, as a remote server's health
/// poll would report it.
struct Reported {
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl accelpool::SessionFactory<u32, &'static str> for Reported {
    fn create(&self, _: &WorkerInfo) -> Result<Box<dyn Session<u32, &'static str>>, SessionError> {
        Ok(Box::new(|_: &u32| -> Result<&'static str, SessionError> {
            Ok("fleet")
        }))
    }

    fn health(&self) -> accelpool::BackendHealth {
        if self.ready.load(Ordering::SeqCst) {
            accelpool::BackendHealth::Ready
        } else {
            accelpool::BackendHealth::NotReady("model `cls` is not ready".into())
        }
    }
}

#[test]
fn a_backend_that_says_it_is_not_ready_is_skipped_and_returns_through_its_breakers_probes() {
    use accelpool::{BreakerConfig, BreakerState};
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let clock = ManualClock::new();
    let pool = Pool::<u32, &'static str>::builder()
        .health_check_interval(Duration::from_millis(1))
        .clock(Arc::new(clock.clone()))
        .group(
            GroupConfig::new("fleet")
                .priority(9)
                .pin(false)
                .breaker(BreakerConfig {
                    recovery_timeout: Duration::from_secs(1),
                    half_open_max_calls: 2,
                    ..BreakerConfig::default()
                }),
            Reported {
                ready: ready.clone(),
            },
        )
        .group(GroupConfig::new("cpu").priority(1), |_: &WorkerInfo| {
            Ok(|_: &u32| -> Result<&'static str, SessionError> { Ok("cpu") })
        })
        .build()
        .unwrap();
    assert_eq!(
        pool.submit(Request::new(1)).unwrap().wait().unwrap(),
        "fleet"
    );

    ready.store(false, Ordering::SeqCst);
    let stats = stats_until(&pool, "the fleet to be not ready", |s| !s.groups[0].healthy);
    let fleet = &stats.groups[0];
    assert_eq!(fleet.not_ready.as_deref(), Some("model `cls` is not ready"));
    assert_eq!(fleet.breaker.state, BreakerState::Open);
    let opened = fleet.breaker.transitions.last().unwrap();
    assert!(
        opened
            .reason
            .contains("backend not ready: model `cls` is not ready"),
        "{opened:?}"
    );
    assert_degraded_because(&stats, "`fleet`: not ready: model `cls`");
    // Not a call failed: every request goes to the CPU while it is down,
    // even once its cooldown has passed (no probe goes to a backend that
    // says it cannot serve).
    clock.advance(Duration::from_secs(5));
    common::supervisor_checked(&pool);
    for _ in 0..20 {
        assert_eq!(pool.submit(Request::new(1)).unwrap().wait().unwrap(), "cpu");
    }

    ready.store(true, Ordering::SeqCst);
    stats_until(&pool, "the fleet to be ready", |s| s.groups[0].healthy);
    // Its cooldown has passed: the next requests are its probes, which
    // close the breaker.
    for _ in 0..2 {
        assert_eq!(
            pool.submit(Request::new(1)).unwrap().wait().unwrap(),
            "fleet"
        );
    }
    let stats = pool.stats();
    let fleet = &stats.groups[0];
    assert_eq!(fleet.breaker.state, BreakerState::Closed);
    assert_eq!(fleet.not_ready, None);
    assert_eq!(fleet.counts.failed_attempts, 0, "{:?}", fleet.counts);
    assert_eq!(stats.health.status, Health::Healthy);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 23);
    assert_accounting(&stats);
}
