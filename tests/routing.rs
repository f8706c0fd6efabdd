//! Routing between device groups: priority first, then the routing
//! strategy within a priority (least in-flight work, round robin, seeded
//! random, weighted), overflow to the next group when full, backpressure
//! only when every eligible group is full, and named-group requests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    GroupConfig, ManualClock, Pool, PoolConfig, Refusal, Request, RoutingConfig, RoutingStrategy,
    SessionError, WorkerInfo,
};
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

/// Groups `a`, `b` and `c` at one priority, each answering with its name,
/// routed by `routing` under a manual clock (nothing moves by time).
fn tied_pool(routing: RoutingConfig, weights: [u32; 3]) -> Pool<u32, String> {
    let mut b = Pool::builder()
        .routing(routing)
        .clock(Arc::new(ManualClock::new()));
    for (name, weight) in ["a", "b", "c"].into_iter().zip(weights) {
        b = b.group(
            GroupConfig::new(name).priority(5).weight(weight).pin(false),
            |w: &WorkerInfo| {
                let group = w.group.clone();
                Ok(move |_: &u32| -> Result<String, SessionError> { Ok(group.clone()) })
            },
        );
    }
    b.build().unwrap()
}

/// The group of each of `n` requests submitted one after another.
fn routes(pool: &Pool<u32, String>, n: u32) -> Vec<String> {
    (0..n)
        .map(|i| pool.submit(Request::new(i)).unwrap().wait().unwrap())
        .collect()
}

fn routing(strategy: RoutingStrategy, seed: Option<u64>) -> RoutingConfig {
    RoutingConfig { strategy, seed }
}

#[test]
fn round_robin_alternates_exactly() {
    let pool = tied_pool(routing(RoutingStrategy::RoundRobin, None), [1, 1, 1]);
    let got = routes(&pool, 12);
    assert_eq!(got.join(""), "abcabcabcabc");
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.routing, RoutingStrategy::RoundRobin);
    assert!(stats.groups.iter().all(|g| g.counts.completed == 4));
    assert_accounting(&stats);
}

#[test]
fn random_routing_is_reproducible_with_a_seed_and_spreads_evenly() {
    let run = |seed| {
        let pool = tied_pool(routing(RoutingStrategy::Random, Some(seed)), [1, 1, 1]);
        let got = routes(&pool, 300);
        assert_accounting(&pool.shutdown(LONG).stats);
        got
    };
    let first = run(7);
    assert_eq!(run(7), first, "the same seed gives the same routes");
    assert_ne!(run(8), first, "another seed gives other routes");
    for g in ["a", "b", "c"] {
        let n = first.iter().filter(|r| *r == g).count();
        // 100 expected; a fair draw stays within 60..=140 (about 5 sigma).
        assert!((60..=140).contains(&n), "group {g}: {n} of 300");
    }
}

#[test]
fn weighted_routing_follows_the_weights() {
    let pool = tied_pool(routing(RoutingStrategy::Weighted, Some(1)), [6, 3, 1]);
    let got = routes(&pool, 2000);
    let share = |g: &str| got.iter().filter(|r| *r == g).count() as f64 / 2000.0;
    for (g, want) in [("a", 0.6), ("b", 0.3), ("c", 0.1)] {
        assert!(
            (share(g) - want).abs() < 0.05,
            "group {g}: share {} for weight share {want}",
            share(g)
        );
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(
        stats.groups.iter().map(|g| g.weight).collect::<Vec<_>>(),
        [6, 3, 1]
    );
    assert_accounting(&stats);
}

#[test]
fn a_strategy_never_overrides_priority_or_a_group_restriction() {
    let mut b = Pool::builder().routing(routing(RoutingStrategy::RoundRobin, None));
    for (name, priority) in [("low", 2), ("hi1", 8), ("hi2", 8)] {
        b = b.group(
            GroupConfig::new(name).priority(priority).pin(false),
            |w: &WorkerInfo| {
                let group = w.group.clone();
                Ok(move |_: &u32| -> Result<String, SessionError> { Ok(group.clone()) })
            },
        );
    }
    let pool = b.build().unwrap();
    let got = routes(&pool, 6);
    assert_eq!(got, ["hi1", "hi2", "hi1", "hi2", "hi1", "hi2"]);
    for _ in 0..3 {
        let h = pool.submit(Request::new(1).group("low")).unwrap();
        assert_eq!(h.wait().unwrap(), "low");
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn routing_reads_from_yaml_and_bad_values_name_their_field() {
    let cfg = PoolConfig::from_yaml(
        "routing:\n  strategy: weighted\n  seed: 42\ngroups:\n  - name: a\n    weight: 5\n  - name: b\n",
    )
    .unwrap();
    assert_eq!(cfg.routing, routing(RoutingStrategy::Weighted, Some(42)));
    assert_eq!((cfg.groups[0].weight, cfg.groups[1].weight), (5, 1));
    common::assert_config_errors(&[
        (
            "routing:\n  strategy: fastest\ngroups:\n  - name: a\n",
            "routing.strategy",
            "unknown variant `fastest`",
        ),
        (
            "groups:\n  - name: a\n    weight: 0\n",
            "groups[0].weight",
            "0 is outside 1..=1000",
        ),
        (
            "routing:\n  sead: 1\ngroups:\n  - name: a\n",
            "routing.sead",
            "unknown field `sead`",
        ),
    ]);
}
