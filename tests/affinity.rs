//! Affinity: requests with one key run on the worker that last ran it
//! while that worker is free; a busy worker is waited for at most
//! `max_wait`, after which an idle worker takes the request (never lost,
//! never starved); without affinity keys are ignored.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use accelpool::{AffinityConfig, GroupConfig, Pool, PoolConfig, Request, SessionError, WorkerInfo};
use common::{assert_accounting, Gate, LONG};

/// Input: (key, hold at the gate); output: the worker that ran it.
type In = (u64, bool);

fn pool(workers: usize, affinity: AffinityConfig, gate: &Gate) -> Pool<In, usize> {
    let gate = gate.clone();
    Pool::builder()
        .affinity(affinity)
        .group(
            GroupConfig::new("cpu").workers(workers).pin(false),
            move |info: &WorkerInfo| {
                let (gate, me) = (gate.clone(), info.worker);
                Ok(move |x: &In| -> Result<usize, SessionError> {
                    if x.1 {
                        gate.pass();
                    }
                    Ok(me)
                })
            },
        )
        .build()
        .unwrap()
}

fn on(max_wait: Duration) -> AffinityConfig {
    AffinityConfig {
        enabled: true,
        max_wait,
        ..Default::default()
    }
}

fn run(pool: &Pool<In, usize>, key: u64) -> usize {
    let r = Request::new((key, false)).affinity(key);
    let mut h = pool.submit(r).unwrap();
    h.wait_timeout(LONG).expect("resolved").unwrap()
}

#[test]
fn each_key_runs_on_the_worker_that_ran_it_first() {
    // A wait long enough that a handed-over request is always its
    // worker's: the test is exact on any machine.
    let gate = Gate::new();
    let pool = pool(3, on(Duration::from_secs(10)), &gate);
    let keys = 9u64;
    let rounds = 30;
    let mut first: HashMap<u64, usize> = HashMap::new();
    for _ in 0..rounds {
        for key in 0..keys {
            let w = run(&pool, key);
            assert_eq!(*first.entry(key).or_insert(w), w, "key {key} moved");
        }
    }
    let stats = pool.shutdown(LONG).stats;
    assert_accounting(&stats);
    let a = stats.groups[0].affinity.expect("affinity stats");
    let total = keys * rounds;
    assert_eq!(a.new_keys, keys);
    assert_eq!(
        a.new_keys + a.on_worker + a.handed_over + a.elsewhere,
        total
    );
    assert_eq!((a.elsewhere, a.stolen, a.waiting), (0, 0, 0));
    assert_eq!(a.taken, a.handed_over);
    assert_eq!(a.keys, keys as usize);
    assert_eq!(a.hit_rate(), 1.0);
    assert_eq!(stats.counts.completed, total);
    #[cfg(feature = "metrics")]
    {
        let text = accelpool::metrics::render(&stats);
        for (outcome, n) in [("new_key", a.new_keys), ("taken", a.taken), ("stolen", 0)] {
            let line = format!(
                "accelpool_affinity_requests_total{{group=\"cpu\",outcome=\"{outcome}\"}} {n}\n"
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(text.contains(&format!(
            "accelpool_affinity_keys{{group=\"cpu\"}} {keys}\n"
        )));
    }
}

/// A first key-1 request holds the worker `x` that took it in a call (the
/// gate): `x` is key 1's worker from that moment, and which worker it is
/// does not depend on who was idle first. Another key-1 request is then
/// submitted while `x` is held. Returns the worker that ran it, `x`, and
/// the group's affinity stats.
fn while_its_worker_is_busy(max_wait: Duration) -> (usize, usize, accelpool::AffinityStats) {
    let gate = Gate::new();
    let pool = pool(2, on(max_wait), &gate);
    let mut held = pool.submit(Request::new((1, true)).affinity(1u64)).unwrap();
    gate.wait_reached();
    // Only the other worker is free: it takes the request, and either runs
    // it at once or hands it to `x` and takes it back after `max_wait`.
    // Either way it completes while `x` is still held.
    let ran_on = run(&pool, 1);
    gate.open_one();
    let x = held.wait_timeout(LONG).expect("resolved").unwrap();
    let stats = pool.shutdown(LONG).stats;
    assert_accounting(&stats);
    let a = stats.groups[0].affinity.unwrap();
    assert_eq!(a.new_keys, 1, "the held request was the key's first");
    (ran_on, x, a)
}

#[test]
fn a_busy_worker_is_not_waited_for_without_max_wait() {
    let (ran_on, x, a) = while_its_worker_is_busy(Duration::ZERO);
    assert_ne!(ran_on, x);
    assert_eq!((a.elsewhere, a.stolen, a.handed_over), (1, 0, 0));
}

#[test]
fn a_busy_worker_is_waited_for_at_most_max_wait_then_another_takes_over() {
    let (ran_on, x, a) = while_its_worker_is_busy(Duration::from_millis(30));
    assert_ne!(ran_on, x, "taken over while its worker was held");
    assert_eq!((a.stolen, a.elsewhere), (1, 0));
    assert_eq!(
        (a.handed_over, a.taken),
        (1, 0),
        "handed to `x`, then taken back"
    );
}

#[test]
fn without_affinity_keys_are_carried_and_ignored() {
    let gate = Gate::new();
    let pool = pool(2, AffinityConfig::default(), &gate);
    run(&pool, 5);
    let stats = pool.shutdown(LONG).stats;
    assert!(stats.groups[0].affinity.is_none());
    assert_eq!(stats.counts.completed, 1);
}

#[test]
fn the_yaml_keys_are_read_and_checked_with_their_paths() {
    let cfg = PoolConfig::from_yaml(
        "affinity:\n  enabled: true\n  max_wait: 2ms\n  max_keys: 100\ngroups:\n  - name: cpu\n",
    )
    .unwrap();
    assert_eq!(
        cfg.affinity,
        AffinityConfig {
            enabled: true,
            max_wait: Duration::from_millis(2),
            max_keys: 100,
        }
    );
    common::assert_config_errors(&[
        (
            "affinity:\n  max_wait: 1h\ngroups:\n  - name: cpu\n",
            "affinity.max_wait",
            "1h is outside 0s..=10s",
        ),
        (
            "affinity:\n  max_keys: 1\ngroups:\n  - name: cpu\n",
            "affinity.max_keys",
            "1 is outside 2..=1048576",
        ),
        (
            "affinity:\n  max_wiat: 1ms\ngroups:\n  - name: cpu\n",
            "affinity.max_wiat",
            "unknown field",
        ),
    ]);
}
