//! `Pool::submit_batch`: results in order, refusals handed back whole,
//! blocking on full queues like `submit`, and no request lost or counted
//! twice when a reload or a shutdown closes the admission gate mid-batch.

mod common;

use std::time::Duration;

use accelpool::{GroupConfig, Pool, PoolConfig, Refusal, Request, SessionError, WorkerInfo};
use common::{assert_accounting, Gate, LONG};

fn doubling(cfg: GroupConfig) -> Pool<u64, u64> {
    Pool::builder()
        .group(cfg, |_: &WorkerInfo| {
            Ok(|x: &u64| -> Result<u64, SessionError> { Ok(x * 2) })
        })
        .build()
        .unwrap()
}

#[test]
fn results_come_back_in_order_and_refusals_whole() {
    let pool = doubling(GroupConfig::new("cpu").workers(2).pin(false));
    // Every seventh request asks for a group the pool does not have.
    let requests = (0..1_000u64).map(|i| {
        let r = Request::new(i).tenant("t");
        if i % 7 == 0 {
            r.group("gpu")
        } else {
            r
        }
    });
    let results = pool.submit_batch(requests);
    assert_eq!(results.len(), 1_000);
    let mut refused = 0;
    for (i, result) in results.into_iter().enumerate() {
        let i = i as u64;
        match result {
            Ok(h) => {
                assert_ne!(i % 7, 0);
                assert_eq!(h.wait().unwrap(), i * 2);
            }
            Err(e) => {
                assert_eq!(i % 7, 0);
                assert!(matches!(e.refusal(), Refusal::UnknownGroup { group } if group == "gpu"));
                let r = e.into_request();
                assert_eq!(
                    (*r.input(), r.get_group(), r.get_tenant()),
                    (i, Some("gpu"), Some("t"))
                );
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 143);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 857);
    assert_eq!(stats.refusals.unknown_group, 143);
    assert_eq!(stats.counts.rejected, 143);
    assert_accounting(&stats);
}

#[test]
fn a_batch_blocks_on_a_full_queue_and_finishes_when_room_frees() {
    let gate = Gate::new();
    let g = gate.clone();
    let pool: Pool<u64, u64> = Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1).pin(false).capacity(2),
            move |_: &WorkerInfo| {
                let g = g.clone();
                Ok(move |x: &u64| -> Result<u64, SessionError> {
                    if *x == 0 {
                        g.pass();
                    }
                    Ok(x * 2)
                })
            },
        )
        .build()
        .unwrap();
    std::thread::scope(|s| {
        let batch = s.spawn(|| pool.submit_batch((0..50u64).map(Request::new)));
        // The first request holds the only worker; the queue fills behind it.
        gate.wait_reached();
        common::eventually("the batch is blocked on the full queue", || {
            pool.stats().counts.accepted == 3
        });
        gate.open_one();
        let results = batch.join().unwrap();
        let outs: Vec<u64> = results
            .into_iter()
            .map(|r| r.unwrap().wait().unwrap())
            .collect();
        assert_eq!(outs, (0..50u64).map(|x| x * 2).collect::<Vec<_>>());
    });
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn a_reload_mid_batch_loses_nothing() {
    let pool = doubling(GroupConfig::new("cpu").workers(1).pin(false).capacity(64));
    for round in 0..5 {
        std::thread::scope(|s| {
            let batch = s.spawn(|| pool.submit_batch((0..20_000u64).map(Request::new)));
            common::eventually("the batch is under way", || {
                pool.stats().counts.accepted > round * 20_000 + 100
            });
            let workers = if round % 2 == 0 { 2 } else { 1 };
            let cfg = PoolConfig {
                groups: vec![GroupConfig::new("cpu")
                    .workers(workers)
                    .pin(false)
                    .capacity(64)],
                ..PoolConfig::default()
            };
            pool.reload(cfg, LONG).unwrap();
            for (i, r) in batch.join().unwrap().into_iter().enumerate() {
                assert_eq!(r.unwrap().wait().unwrap(), i as u64 * 2);
            }
        });
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 100_000);
    assert_eq!(stats.counts.rejected, 0);
    assert_accounting(&stats);
}

#[test]
fn a_shutdown_mid_batch_refuses_the_rest_whole() {
    for _ in 0..5 {
        let pool = doubling(GroupConfig::new("cpu").workers(1).pin(false).capacity(16));
        let (accepted, refused) = std::thread::scope(|s| {
            let batch = s.spawn(|| pool.submit_batch((0..50_000u64).map(Request::new)));
            common::eventually("the batch is under way", || {
                pool.stats().counts.accepted > 100
            });
            pool.shutdown(Duration::ZERO);
            let (mut accepted, mut refused) = (0u64, 0u64);
            for (i, r) in batch.join().unwrap().into_iter().enumerate() {
                match r {
                    Ok(h) => {
                        accepted += 1;
                        // Drained or cancelled by the shutdown; either way final.
                        let _ = h.wait();
                    }
                    Err(e) => {
                        assert_eq!(e.refusal(), &Refusal::Closed);
                        assert_eq!(*e.request().input(), i as u64);
                        refused += 1;
                    }
                }
            }
            (accepted, refused)
        });
        assert_eq!(accepted + refused, 50_000);
        assert!(refused > 0, "the shutdown came before the batch ended");
        let stats = pool.stats();
        assert_eq!(stats.counts.accepted, accepted);
        assert_eq!(stats.refusals.closed, refused);
        assert_accounting(&stats);
    }
}
