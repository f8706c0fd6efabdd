//! Routing between device groups: priority first, least in-flight work
//! within a priority, overflow to the next group when full, backpressure
//! only when every eligible group is full, and named-group requests.

mod common;

use std::time::Duration;

use accelpool::{GroupConfig, Pool, Refusal, Request, SessionError, WorkerInfo};
use common::{assert_accounting, Gate, LONG};

/// Each session answers with its group's name; input 0 waits at the gate.
fn pool(groups: &[(&str, u8, usize)], gate: &Gate) -> Pool<u32, String> {
    let mut b = Pool::builder();
    for &(name, priority, capacity) in groups {
        let gate = gate.clone();
        b = b.group(
            GroupConfig::new(name).priority(priority).capacity(capacity),
            move |w: &WorkerInfo| {
                let (gate, group) = (gate.clone(), w.group.clone());
                Ok(move |x: &u32| -> Result<String, SessionError> {
                    if *x == 0 {
                        gate.pass();
                    }
                    Ok(group.clone())
                })
            },
        );
    }
    b.build().unwrap()
}

#[test]
fn highest_priority_group_is_chosen_first() {
    let gate = Gate::new();
    let pool = pool(&[("cpu", 2, 8), ("npu", 9, 8), ("gpu", 5, 8)], &gate);
    assert_eq!(pool.group_names(), ["npu", "gpu", "cpu"], "routing order");
    for i in 1..20 {
        assert_eq!(pool.submit(Request::new(i)).unwrap().wait().unwrap(), "npu");
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn equal_priorities_prefer_the_least_loaded_group() {
    let gate = Gate::new();
    let pool = pool(&[("a", 5, 8), ("b", 5, 8)], &gate);
    // Load `a`: one call held at the gate and two queued behind it.
    let held = pool.submit(Request::new(0).group("a")).unwrap();
    gate.wait_reached();
    let queued: Vec<_> = (1..3)
        .map(|i| pool.submit(Request::new(i).group("a")).unwrap())
        .collect();
    for i in 10..15 {
        assert_eq!(
            pool.submit(Request::new(i)).unwrap().wait().unwrap(),
            "b",
            "b has less in flight"
        );
    }
    gate.open_one();
    held.wait().unwrap();
    for h in queued {
        assert_eq!(h.wait().unwrap(), "a");
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn full_group_overflows_to_the_next_and_only_all_full_pushes_back() {
    let gate = Gate::new();
    let pool = pool(&[("npu", 9, 1), ("cpu", 1, 1)], &gate);
    let npu_held = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let npu_queued = pool.submit(Request::new(1)).unwrap(); // fills npu's Normal queue
    let cpu_held = pool.submit(Request::new(0)).unwrap(); // overflows to cpu
    gate.wait_reached();
    let cpu_queued = pool.submit(Request::new(2)).unwrap(); // fills cpu's Normal queue
    let err = pool.try_submit(Request::new(3)).unwrap_err();
    assert!(matches!(err.refusal(), Refusal::Full { .. }), "{err}");
    let err = pool
        .submit_timeout(Request::new(4), Duration::from_millis(10))
        .unwrap_err();
    assert!(matches!(err.refusal(), Refusal::Timeout { .. }), "{err}");
    gate.open_one();
    gate.open_one();
    let served: Vec<_> = [npu_held, npu_queued, cpu_held, cpu_queued]
        .into_iter()
        .map(|h| h.wait().unwrap())
        .collect();
    assert_eq!(served, ["npu", "npu", "cpu", "cpu"]);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!((stats.groups[0].routed, stats.groups[1].routed), (2, 2));
    assert_accounting(&stats);
}

#[test]
fn a_request_may_name_its_group() {
    let gate = Gate::new();
    let pool = pool(&[("npu", 9, 8), ("cpu", 1, 8)], &gate);
    for i in 1..10 {
        assert_eq!(
            pool.submit(Request::new(i).group("cpu"))
                .unwrap()
                .wait()
                .unwrap(),
            "cpu"
        );
    }
    let err = pool.submit(Request::new(1).group("tpu")).unwrap_err();
    assert!(matches!(err.refusal(), Refusal::UnknownGroup { .. }));
    assert!(err.to_string().contains("`tpu`"));
    // A named group that is full is backpressure, not an overflow elsewhere.
    let held = pool.submit(Request::new(0).group("cpu")).unwrap();
    gate.wait_reached();
    let fill: Vec<_> = (0..8)
        .map(|i| pool.try_submit(Request::new(100 + i).group("cpu")).unwrap())
        .collect();
    assert!(matches!(
        pool.try_submit(Request::new(5).group("cpu"))
            .map_err(|e| e.into_parts().1),
        Err(Refusal::Full { .. })
    ));
    gate.open_one();
    held.wait().unwrap();
    for h in fill {
        assert_eq!(h.wait().unwrap(), "cpu");
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}
