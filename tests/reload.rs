//! Reload while the pool runs: worker counts, capacities and groups change;
//! a removed group drains first; what the old generation still holds at the
//! drain timeout is handed over; an invalid configuration leaves the pool
//! untouched. Nothing is lost or run twice.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    BuildError, GroupConfig, Pool, PoolConfig, Request, RunContext, SessionError, SessionFactory,
    TaskHandle, WorkerInfo,
};
use common::{assert_accounting, eventually, Count, Gate, LONG};

type Out = (String, usize, u32);

/// Sessions answer (group, session number, attempt); input 0 waits at the gate.
fn factory(gate: &Gate, builds: &Count) -> Arc<dyn SessionFactory<u32, Out>> {
    let (gate, builds) = (gate.clone(), builds.clone());
    Arc::new(move |w: &WorkerInfo| {
        let (gate, group, id) = (gate.clone(), w.group.clone(), builds.inc());
        Ok(move |x: &u32| -> Result<Out, SessionError> {
            if *x == 0 {
                gate.pass();
            }
            Ok((group.clone(), id, *x))
        })
    })
}

fn config(groups: &[GroupConfig]) -> PoolConfig {
    PoolConfig {
        groups: groups.to_vec(),
        ..Default::default()
    }
}

#[test]
fn reload_under_load_changes_workers_capacities_and_groups_without_loss() {
    let (gate, builds) = (Gate::new(), Count::default());
    let pool = Arc::new(
        Pool::builder()
            .group_shared(
                GroupConfig::new("cpu").workers(1).capacity(4),
                factory(&gate, &builds),
            )
            .build()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let submitters: Vec<_> = (0..3)
        .map(|t| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut handles: Vec<(u32, TaskHandle<Out>)> = Vec::new();
                let mut i = 1u32;
                while !stop.load(Ordering::Relaxed) {
                    let x = t * 1_000_000 + i;
                    handles.push((
                        x,
                        pool.submit(Request::new(x))
                            .expect("no refusal during a reload"),
                    ));
                    i += 1;
                }
                handles
            })
        })
        .collect();

    let r = pool
        .reload(
            config(&[GroupConfig::new("cpu").workers(2).capacity(64)]),
            LONG,
        )
        .unwrap();
    assert_eq!(
        (r.kept.clone(), r.added.len(), r.removed.len()),
        (vec!["cpu".to_string()], 0, 0)
    );
    let s = pool.stats();
    assert_eq!(
        (s.groups[0].workers.len(), s.groups[0].capacity.normal),
        (2, 64)
    );

    let r = pool
        .reload_with(
            config(&[
                GroupConfig::new("cpu").workers(2),
                GroupConfig::new("gpu").priority(9),
            ]),
            vec![("gpu".into(), factory(&gate, &builds))],
            LONG,
        )
        .unwrap();
    assert_eq!(r.added, ["gpu"]);
    assert_eq!(pool.group_names(), ["gpu", "cpu"]);

    let r = pool
        .reload(
            config(&[GroupConfig::new("gpu").priority(9).workers(2)]),
            LONG,
        )
        .unwrap();
    assert_eq!(r.removed, ["cpu"]);
    assert!(r.drained, "the removed group drained: {r:?}");
    assert_eq!(pool.group_names(), ["gpu"]);

    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::HashSet::new();
    for s in submitters {
        for (x, h) in s.join().unwrap() {
            let (_, _, got) = h.wait().expect("every request completes");
            assert_eq!(got, x);
            assert!(seen.insert(x), "request {x} ran once");
        }
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed as usize, seen.len());
    assert_eq!(stats.counts.cancelled, 0);
    assert_accounting(&stats);
}

#[test]
fn removed_group_drains_before_it_goes() {
    let (gate, builds) = (Gate::new(), Count::default());
    let pool = Arc::new(
        Pool::builder()
            .group_shared(GroupConfig::new("old").workers(1), factory(&gate, &builds))
            .group_shared(GroupConfig::new("new").priority(1), factory(&gate, &builds))
            .build()
            .unwrap(),
    );
    let held = pool.submit(Request::new(0).group("old")).unwrap();
    gate.wait_reached();
    let queued: Vec<_> = (1..=5)
        .map(|i| pool.submit(Request::new(i).group("old")).unwrap())
        .collect();
    let reload = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.reload(config(&[GroupConfig::new("new").priority(1)]), LONG)
        })
    };
    // The reload waits for the old group's queue; once the new generation
    // is in, new requests go to it meanwhile.
    eventually("the new generation to come in", || {
        pool.group_names() == ["new"]
    });
    let (g, _, _) = pool.submit(Request::new(9)).unwrap().wait().unwrap();
    assert_eq!(g, "new");
    gate.open_one();
    let report = reload.join().unwrap().unwrap();
    assert!(report.drained && report.handed_over == 0, "{report:?}");
    assert_eq!(report.removed, ["old"]);
    assert_eq!(held.wait().unwrap().0, "old");
    for h in queued {
        assert_eq!(
            h.wait().unwrap().0,
            "old",
            "served by the removed group before it went"
        );
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn what_the_old_generation_holds_at_the_timeout_is_handed_over() {
    let (gate, builds) = (Gate::new(), Count::default());
    let pool = Pool::builder()
        .group_shared(GroupConfig::new("cpu").workers(1), factory(&gate, &builds))
        .build()
        .unwrap();
    let mut stuck = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let queued: Vec<_> = (1..=4)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    let report = pool
        .reload(
            config(&[GroupConfig::new("cpu").workers(2)]),
            Duration::from_millis(30),
        )
        .unwrap();
    assert!(!report.drained);
    assert_eq!(
        (
            report.handed_over,
            report.handed_over_running,
            report.dead_lettered
        ),
        (4, 1, 0),
        "4 queued and the running one"
    );
    for (i, h) in queued.into_iter().enumerate() {
        let (_, session, x) = h.wait().unwrap();
        assert_eq!(x, i as u32 + 1);
        assert!(session >= 1, "served by the new generation's sessions");
    }
    // The running call was handed over too: it runs again in the new
    // generation (and waits at the gate there). Whichever of the two calls
    // finishes first answers the request; the other's result is discarded.
    gate.wait_reached();
    gate.open_one();
    gate.open_one();
    let (_, _, x) = stuck.wait_timeout(LONG).expect("resolved").unwrap();
    assert_eq!(x, 0);
    eventually("the second result to be discarded", || {
        pool.stats().late_results_discarded == 1
    });
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn invalid_reload_leaves_the_pool_untouched() {
    let (gate, builds) = (Gate::new(), Count::default());
    let pool = Pool::builder()
        .group_shared(
            GroupConfig::new("cpu").workers(1).capacity(8),
            factory(&gate, &builds),
        )
        .build()
        .unwrap();
    let err = pool
        .reload(config(&[GroupConfig::new("cpu").priority(12)]), LONG)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("groups[0].priority: 12 is outside 1..=10"),
        "{err}"
    );
    let err = pool
        .reload(config(&[GroupConfig::new("npu")]), LONG)
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::Group { group, .. } if group == "npu"),
        "{err}"
    );
    let failing: Arc<dyn SessionFactory<u32, Out>> = Arc::new(|_: &WorkerInfo| {
        Err::<fn(&u32) -> Result<Out, SessionError>, _>(SessionError::permanent("no device"))
    });
    let err = pool
        .reload_with(
            config(&[GroupConfig::new("cpu")]),
            vec![("cpu".into(), failing)],
            LONG,
        )
        .unwrap_err();
    assert!(matches!(err, BuildError::Session { .. }), "{err}");
    // Still the first generation, serving as before.
    let s = pool.stats();
    assert_eq!((s.groups.len(), s.groups[0].capacity.normal), (1, 8));
    assert_eq!(
        pool.submit(Request::new(5)).unwrap().wait().unwrap(),
        ("cpu".to_string(), 0, 5)
    );
    assert_eq!(builds.get(), 1);
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[allow(dead_code)]
fn _session_type_check(_: &RunContext<'_>) {}

/// A request restricted to a group runs only there: when a reload removes
/// the group while such requests are queued and running, they are
/// dead-lettered with an error naming the group, and never run elsewhere.
#[test]
fn requests_restricted_to_a_removed_group_are_dead_lettered_not_run_elsewhere() {
    let (gate, builds) = (Gate::new(), Count::default());
    let pool = Pool::builder()
        .group_shared(
            GroupConfig::new("npu").workers(1).priority(9),
            factory(&gate, &builds),
        )
        .group_shared(
            GroupConfig::new("cpu").workers(1).priority(1),
            factory(&gate, &builds),
        )
        .build()
        .unwrap();
    let running = pool.submit(Request::new(0).group("npu")).unwrap();
    gate.wait_reached();
    let queued: Vec<_> = (1..=3)
        .map(|i| pool.submit(Request::new(i).group("npu")).unwrap())
        .collect();
    let free = pool.submit(Request::new(7).group("cpu")).unwrap();
    assert_eq!(free.wait().unwrap().0, "cpu");

    // The drain timeout is the mechanism under test: the npu call is held
    // at the gate, so the drain cannot finish and the reload must decide.
    let report = pool
        .reload(
            config(&[GroupConfig::new("cpu").workers(1).priority(1)]),
            Duration::from_millis(20),
        )
        .unwrap();
    assert_eq!(report.removed, ["npu"]);
    assert!(!report.drained);
    assert_eq!(
        (
            report.handed_over,
            report.handed_over_running,
            report.dead_lettered
        ),
        (0, 0, 4),
        "{report:?}"
    );
    for h in queued.into_iter().chain([running]) {
        let err = h.wait().unwrap_err();
        let accelpool::TaskError::DeadLettered { attempts } = &err else {
            panic!("expected a dead letter, got {err}")
        };
        let last = attempts.last().unwrap();
        assert_eq!(&*last.group, "npu");
        assert!(
            last.error
                .message()
                .contains("group `npu` was removed by a reload"),
            "{err}"
        );
    }
    let letters = pool.dead_letters().drain();
    assert_eq!(letters.len(), 4);
    assert!(
        letters.iter().all(|l| l.group.as_deref() == Some("npu")),
        "letters keep the restriction for a replay"
    );
    // The held call ends at last: its result is late and discarded.
    gate.open_one();
    eventually("the held call's result to be discarded", || {
        pool.stats().late_results_discarded == 1
    });
    // The cpu group never ran them: it served request 7 and nothing else.
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.groups[0].name, "cpu");
    assert_eq!(
        stats.groups[0].counts.started, 0,
        "the new cpu group ran none"
    );
    assert_eq!(stats.counts.completed, 1);
    assert_eq!(stats.counts.dead_lettered, 4);
    assert_accounting(&stats);
}

/// Pool-wide counters carry on across reloads: never lower after one.
#[test]
fn pool_counters_are_monotonic_across_reloads() {
    let fails = Arc::new(AtomicBool::new(true));
    let flaky: Arc<dyn SessionFactory<u32, Out>> = {
        let fails = fails.clone();
        Arc::new(move |w: &WorkerInfo| {
            let (group, fails) = (w.group.clone(), fails.clone());
            Ok(move |x: &u32| -> Result<Out, SessionError> {
                // Every request fails its first attempt, then succeeds.
                if fails.swap(false, Ordering::SeqCst) {
                    return Err(SessionError::transient("first attempt fails"));
                }
                fails.store(true, Ordering::SeqCst);
                Ok((group.clone(), 0, *x))
            })
        })
    };
    let pool = Pool::builder()
        .group_shared(GroupConfig::new("cpu").workers(1), flaky)
        .build()
        .unwrap();
    let mut last = pool.stats().counts;
    for round in 0..3u32 {
        for i in 0..5 {
            pool.submit(Request::new(round * 10 + i))
                .unwrap()
                .wait()
                .unwrap();
        }
        let before = pool.stats().counts;
        assert!(before.started >= last.started + 10, "{before:?}");
        pool.reload(
            config(&[GroupConfig::new("cpu").workers(1 + round as usize % 2)]),
            LONG,
        )
        .unwrap();
        let after = pool.stats().counts;
        assert!(
            after.started >= before.started
                && after.failed_attempts >= before.failed_attempts
                && after.retried >= before.retried
                && after.accepted >= before.accepted
                && after.completed >= before.completed,
            "counters went down across reload {round}: {before:?} -> {after:?}"
        );
        assert_eq!(after.failed_attempts, u64::from(round + 1) * 5);
        last = after;
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}
