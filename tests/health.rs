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
    assert_eq!(stats.health.status, Health::Degraded);
    assert!(
        stats
            .health
            .reasons
            .iter()
            .any(|r| r.contains("`npu`: no healthy worker")),
        "{:?}",
        stats.health
    );
    assert!(!stats.groups[0].workers[0].healthy);
    assert!(stats.groups[0].workers[0].session_build_failures > 0);
    assert_accounting(&pool.shutdown(LONG).stats);
}
