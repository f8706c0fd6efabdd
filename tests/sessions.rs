//! Sessions: one per worker, built on the worker, reused for every request,
//! warmed up, rebuilt after a panic; build failures are reported.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    BuildError, GroupConfig, Pool, Request, RetryPolicy, RunContext, Session, SessionError,
    TaskError, WorkerInfo,
};
use common::{assert_accounting, quiet_injected_panics, Count, LONG};

/// Reports which session instance served a request, and counts its warmups.
struct Numbered {
    id: usize,
    warmups: Arc<AtomicUsize>,
    thread: std::thread::ThreadId,
}

impl Session<u32, (usize, usize)> for Numbered {
    fn run(&mut self, x: &u32, _: &RunContext<'_>) -> Result<(usize, usize), SessionError> {
        assert_eq!(
            std::thread::current().id(),
            self.thread,
            "a session never changes thread"
        );
        if *x == 666 {
            panic!("injected panic");
        }
        Ok((self.id, self.warmups.load(Ordering::SeqCst)))
    }

    fn warmup(&mut self) -> Result<(), SessionError> {
        self.warmups.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn numbered_pool(
    workers: usize,
    calls: &Count,
    warmups: &Arc<AtomicUsize>,
) -> Pool<u32, (usize, usize)> {
    let (calls, warmups) = (calls.clone(), warmups.clone());
    Pool::builder()
        .retry(RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        })
        .group(
            GroupConfig::new("cpu").workers(workers).warmup(3),
            move |_: &WorkerInfo| {
                Ok(Numbered {
                    id: calls.inc(),
                    warmups: warmups.clone(),
                    thread: std::thread::current().id(),
                })
            },
        )
        .build()
        .unwrap()
}

#[test]
fn one_session_per_worker_reused_across_requests() {
    let calls = Count::default();
    let warmups = Arc::new(AtomicUsize::new(0));
    let pool = numbered_pool(2, &calls, &warmups);
    // `build` returns once every worker built its session and warmed it up.
    assert_eq!(calls.get(), 2);
    assert_eq!(warmups.load(Ordering::SeqCst), 6, "3 warmups per session");
    let handles: Vec<_> = (0..500)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    for h in handles {
        let (session, _) = h.wait().unwrap();
        assert!(session < 2);
    }
    assert_eq!(calls.get(), 2, "no session was built per request");
    let stats = pool.shutdown(LONG).stats;
    let builds: u64 = stats.groups[0]
        .workers
        .iter()
        .map(|w| w.session_builds)
        .sum();
    assert_eq!(builds, 2);
    assert_eq!(stats.counts.completed, 500);
    assert_accounting(&stats);
}

#[test]
fn panicking_session_is_rebuilt_by_its_factory() {
    quiet_injected_panics();
    let calls = Count::default();
    let warmups = Arc::new(AtomicUsize::new(0));
    let pool = numbered_pool(1, &calls, &warmups);
    assert_eq!(pool.submit(Request::new(1)).unwrap().wait().unwrap().0, 0);
    let err = pool.submit(Request::new(666)).unwrap().wait().unwrap_err();
    let TaskError::DeadLettered { attempts } = err else {
        panic!("expected a dead letter, got {err}")
    };
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error.kind(), accelpool::ErrorKind::Panicked);
    assert!(attempts[0].error.message().contains("injected panic"));
    // The worker rebuilt its session before taking the next request.
    let (session, warm) = pool.submit(Request::new(2)).unwrap().wait().unwrap();
    assert_eq!(session, 1, "served by a fresh session");
    assert_eq!(calls.get(), 2);
    assert_eq!(warm, 6, "the new session was warmed up too");
    let stats = pool.shutdown(LONG).stats;
    let w = &stats.groups[0].workers[0];
    assert_eq!((w.session_builds, w.panics), (2, 1));
    assert_accounting(&stats);
}

#[test]
fn failing_factory_fails_build_with_the_group_and_worker_named() {
    let err = Pool::<u32, u32>::builder()
        .group(GroupConfig::new("npu").workers(1), |_: &WorkerInfo| {
            Err::<fn(&u32) -> Result<u32, SessionError>, _>(SessionError::permanent(
                "device NPU not found",
            ))
        })
        .build()
        .unwrap_err();
    match &err {
        BuildError::Session {
            group,
            worker,
            error,
        } => {
            assert_eq!((group.as_str(), *worker), ("npu", 0));
            assert!(error.message().contains("NPU"));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("group `npu` worker 0"));
}

#[test]
fn dropping_the_pool_shuts_it_down_and_drops_the_sessions() {
    struct Tracked(Count);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.inc();
        }
    }
    impl Session<u32, u32> for Tracked {
        fn run(&mut self, x: &u32, _: &RunContext<'_>) -> Result<u32, SessionError> {
            Ok(*x)
        }
    }
    let dropped = Count::default();
    let pool = {
        let dropped = dropped.clone();
        Pool::<u32, u32>::builder()
            .group(GroupConfig::new("cpu").workers(2), move |_: &WorkerInfo| {
                Ok(Tracked(dropped.clone()))
            })
            .drop_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let h = pool.submit(Request::new(5)).unwrap();
    drop(pool);
    assert_eq!(h.wait().unwrap(), 5, "queued work is drained on drop");
    assert_eq!(
        dropped.get(),
        2,
        "both sessions dropped: workers were joined"
    );
}
