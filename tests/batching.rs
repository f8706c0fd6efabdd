//! Dynamic batching: batches form from the queue and split back to their
//! requests; priorities, deadlines, cancels, bad inputs, transient errors
//! and panics keep their per-request meaning; the accounting holds.

mod common;

use std::time::Duration;

use accelpool::{
    BatchItem, BatchResult, BatchingConfig, GroupConfig, Pool, Priority, Request, RetryPolicy,
    RunContext, Session, SessionError, TaskError, WorkerInfo,
};
use common::{assert_accounting, quiet_injected_panics, Gate, LONG};
use crossbeam_channel::{unbounded, Receiver, Sender};

/// What a call saw: the inputs, in order.
type Calls = Receiver<Vec<u32>>;

/// A batch-capable session: `x -> x * 10`. Input 0 blocks on the gate (so
/// the test can fill the queue behind it); 13 is a bad input (fails alone,
/// per request); 66 makes the whole batch call fail for good (the runtime
/// must find it); 77 fails the whole call transiently on its first
/// attempt; 88 panics on its first attempt; 99 always fails transiently.
struct Tens {
    gate: Gate,
    calls: Sender<Vec<u32>>,
}

impl Tens {
    fn one(&self, x: u32, ctx: &RunContext<'_>) -> Result<u32, SessionError> {
        match x {
            13 | 66 => Err(SessionError::permanent(format!("bad input {x}"))),
            77 if ctx.attempt() == 1 => Err(SessionError::transient("device hiccup")),
            88 if ctx.attempt() == 1 => panic!("injected panic on 88"),
            99 => Err(SessionError::transient("always")),
            _ => Ok(x * 10),
        }
    }
}

impl Session<u32, u32> for Tens {
    fn run(&mut self, x: &u32, ctx: &RunContext<'_>) -> Result<u32, SessionError> {
        if *x == 0 {
            self.gate.pass();
        }
        self.calls.send(vec![*x]).unwrap();
        self.one(*x, ctx)
    }

    fn run_batch(&mut self, batch: &[BatchItem<'_, u32>]) -> BatchResult<u32> {
        let xs: Vec<u32> = batch.iter().map(|b| *b.input).collect();
        assert!(batch.iter().all(|b| b.ctx.batch_size() == xs.len()));
        self.calls.send(xs.clone()).unwrap();
        if xs.contains(&66) {
            return Err(SessionError::permanent("the batch holds a bad input"));
        }
        for b in batch {
            match *b.input {
                77 if b.ctx.attempt() == 1 => return Err(SessionError::transient("device hiccup")),
                88 if b.ctx.attempt() == 1 => panic!("injected panic in a batch"),
                _ => {}
            }
        }
        Ok(batch.iter().map(|b| self.one(*b.input, &b.ctx)).collect())
    }
}

fn pool(max_batch: u32, delay: Duration) -> (Pool<u32, u32>, Gate, Calls) {
    let gate = Gate::new();
    let (tx, rx) = unbounded();
    let pool = {
        let gate = gate.clone();
        Pool::builder()
            .retry(RetryPolicy {
                initial_backoff: Duration::ZERO,
                ..RetryPolicy::default()
            })
            .group(
                GroupConfig::new("npu")
                    .workers(1)
                    .pin(false)
                    .capacity(64)
                    .batching(BatchingConfig {
                        max_batch_size: max_batch,
                        max_queue_delay: delay,
                        preferred_batch_sizes: vec![],
                    }),
                move |_: &WorkerInfo| {
                    Ok(Tens {
                        gate: gate.clone(),
                        calls: tx.clone(),
                    })
                },
            )
            .build()
            .unwrap()
    };
    (pool, gate, rx)
}

/// Blocks the only worker on input 0 (forgetting the calls seen so far);
/// returns its handle.
fn block(pool: &Pool<u32, u32>, gate: &Gate, calls: &Calls) -> accelpool::TaskHandle<u32> {
    let h = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    while calls.try_recv().is_ok() {}
    h
}

#[test]
fn batches_form_from_the_queue_and_split_back_to_their_requests() {
    let (pool, gate, calls) = pool(4, Duration::ZERO);
    let blocked = block(&pool, &gate, &calls);
    let handles: Vec<_> = (1..=6)
        .map(|x| (x, pool.submit(Request::new(x)).unwrap()))
        .collect();
    gate.open_one();
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [0]);
    assert_eq!(
        calls.recv_timeout(LONG).unwrap(),
        [1, 2, 3, 4],
        "queue order, up to the max"
    );
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [5, 6]);
    for (x, h) in handles {
        assert_eq!(
            h.wait().unwrap(),
            x * 10,
            "each request gets its own output"
        );
    }
    assert_eq!(blocked.wait().unwrap(), 0);
    let b = pool.stats().groups[0].batching.clone().unwrap();
    assert_eq!((b.batches, b.requests), (3, 7));
    assert_eq!(b.sizes.get(&4), Some(&1));
    assert_eq!(b.sizes.get(&2), Some(&1));
    assert!((b.mean_size - 7.0 / 3.0).abs() < 1e-9);
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn a_lower_level_never_joins_or_delays_a_higher_one() {
    // A long fill window: only a batch that has a reason to wait would.
    let (pool, gate, calls) = pool(8, Duration::from_secs(1));
    let blocked = block(&pool, &gate, &calls);
    let low: Vec<_> = (1..=3)
        .map(|x| {
            pool.submit(Request::new(x).priority(Priority::Low))
                .unwrap()
        })
        .collect();
    let urgent = pool
        .submit(Request::new(5).priority(Priority::Urgent))
        .unwrap();
    gate.open_one();
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [0]);
    assert_eq!(
        calls.recv_timeout(LONG).unwrap(),
        [5],
        "the urgent request runs first, and alone: no low request joins it"
    );
    assert_eq!(urgent.wait().unwrap(), 50);
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [1, 2, 3]);
    for h in low {
        h.wait().unwrap();
    }
    blocked.wait().unwrap();
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn an_urgent_request_never_waits_behind_a_low_batch_that_is_filling() {
    // A Low batch with a long fill window and nobody else to take new work
    // waits to fill. An Urgent request arriving meanwhile joins it (and the
    // batch then runs at once), or, if it came before the batch formed,
    // runs first; it never runs after the Low batch.
    let (pool, gate, calls) = pool(8, Duration::from_secs(1));
    let blocked = block(&pool, &gate, &calls);
    let low: Vec<_> = (1..=2)
        .map(|x| {
            pool.submit(Request::new(x).priority(Priority::Low))
                .unwrap()
        })
        .collect();
    gate.open_one();
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [0]);
    let urgent = pool
        .submit(Request::new(5).priority(Priority::Urgent))
        .unwrap();
    let first = calls.recv_timeout(LONG).unwrap();
    assert!(
        first.contains(&5),
        "the urgent request joined the filling batch or went first: {first:?}"
    );
    assert_eq!(urgent.wait().unwrap(), 50);
    for h in low {
        h.wait().unwrap();
    }
    blocked.wait().unwrap();
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn each_request_of_a_batch_keeps_its_own_outcome() {
    quiet_injected_panics();
    let (pool, gate, calls) = pool(8, Duration::ZERO);
    let blocked = block(&pool, &gate, &calls);
    // Expired and cancelled while queued: never in a batch.
    let expired = pool
        .submit(Request::new(1).timeout(Duration::ZERO))
        .unwrap();
    let cancelled = pool.submit(Request::new(2)).unwrap();
    assert!(cancelled.cancel());
    let bad = pool.submit(Request::new(13)).unwrap();
    let fine = pool.submit(Request::new(3)).unwrap();
    gate.open_one();
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [0]);
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [13, 3]);
    assert!(matches!(expired.wait(), Err(TaskError::Expired)));
    assert!(matches!(cancelled.wait(), Err(TaskError::Cancelled { .. })));
    // A bad input fails only its own request, at once (permanent).
    let Err(TaskError::DeadLettered { attempts }) = bad.wait() else {
        panic!("the bad input is dead-lettered")
    };
    assert_eq!(
        (attempts.len(), attempts[0].batch),
        (1, 2),
        "ran in a batch of 2"
    );
    assert_eq!(fine.wait().unwrap(), 30);
    blocked.wait().unwrap();
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn a_failed_batch_call_is_sorted_out_request_by_request() {
    quiet_injected_panics();
    let (pool, gate, calls) = pool(8, Duration::ZERO);
    let blocked = block(&pool, &gate, &calls);
    // The whole call fails for good because of 66: each runs alone, and
    // only 66 fails.
    let whole_bad: Vec<_> = [4, 66, 5]
        .map(|x| pool.submit(Request::new(x)).unwrap())
        .into();
    gate.open_one();
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [0]);
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [4, 66, 5]);
    for x in [4, 66, 5] {
        assert_eq!(calls.recv_timeout(LONG).unwrap(), [x], "each alone");
    }
    let [a, b, c]: [_; 3] = whole_bad.try_into().unwrap();
    assert_eq!(a.wait().unwrap(), 40);
    assert!(matches!(b.wait(), Err(TaskError::DeadLettered { .. })));
    assert_eq!(c.wait().unwrap(), 50);
    blocked.wait().unwrap();

    // A transient failure of the whole call (77) and a panic inside a batch
    // (88): every request is retried on its own and completes; 99 keeps
    // failing until its attempts run out, each attempt noting its batch.
    let blocked = block(&pool, &gate, &calls);
    let hs: Vec<_> = [6, 77, 7]
        .map(|x| (x, pool.submit(Request::new(x)).unwrap()))
        .into();
    gate.open_one();
    for (x, h) in hs {
        assert_eq!(h.wait().unwrap(), x * 10);
    }
    blocked.wait().unwrap();
    let blocked = block(&pool, &gate, &calls);
    let hs: Vec<_> = [8, 88, 9]
        .map(|x| (x, pool.submit(Request::new(x)).unwrap()))
        .into();
    let always = pool.submit(Request::new(99)).unwrap();
    gate.open_one();
    for (x, h) in hs {
        assert_eq!(h.wait().unwrap(), x * 10, "retried after the panic");
    }
    let Err(TaskError::DeadLettered { attempts }) = always.wait() else {
        panic!("99 is dead-lettered")
    };
    assert_eq!(attempts.len(), 3);
    assert!(attempts[0].batch >= 2, "its first attempt ran in a batch");
    blocked.wait().unwrap();
    let s = pool.shutdown(LONG).stats;
    assert_eq!(s.groups[0].workers[0].panics, 1);
    assert_accounting(&s);
}

#[test]
fn a_lone_request_runs_at_once_without_waiting_to_fill() {
    // With no queue behind it, a request never waits out max_queue_delay:
    // a batch waits only once it holds two requests. Checked by what the
    // worker does, not by timing: the lone request's call is a batch of 1.
    let (pool, _gate, calls) = pool(8, Duration::from_secs(1));
    for x in 1..=3 {
        assert_eq!(
            pool.submit(Request::new(x)).unwrap().wait().unwrap(),
            x * 10
        );
        assert_eq!(calls.recv_timeout(LONG).unwrap(), [x]);
    }
    let b = pool.stats().groups[0].batching.clone().unwrap();
    assert_eq!(b.sizes.get(&1), Some(&3));
    assert_eq!(b.fill_wait.count, 3);
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn batching_off_by_default_and_its_settings_are_validated() {
    let cfg = accelpool::PoolConfig::from_yaml(
        "groups:\n- name: cpu\n  batching: {max_batch_size: 8, max_queue_delay: 500us, preferred_batch_sizes: [4, 8]}\n",
    )
    .unwrap();
    assert!(cfg.groups[0].batching.enabled());
    assert!(!GroupConfig::new("x").batching.enabled());
    common::assert_config_errors(&[
        (
            "groups: [{name: a, batching: {max_batch_size: 0}}]",
            "groups[0].batching.max_batch_size",
            "0 is outside 1..=1024",
        ),
        (
            "groups: [{name: a, batching: {max_batch_size: 4, preferred_batch_sizes: [8]}}]",
            "groups[0].batching.preferred_batch_sizes[0]",
            "8 is outside 1..=4 (at most `max_batch_size`)",
        ),
        (
            "groups: [{name: a, batching: {max_queue_delay: 2s}}]",
            "groups[0].batching.max_queue_delay",
            "2s is outside 0s..=1s",
        ),
    ]);
}

#[test]
fn a_request_cancelled_while_queued_never_joins_a_batch() {
    let (pool, gate, calls) = pool(8, Duration::ZERO);
    let blocked = block(&pool, &gate, &calls);
    let a = pool.submit(Request::new(11)).unwrap();
    let b = pool.submit(Request::new(12)).unwrap();
    assert!(b.cancel(), "cancelled while queued");
    gate.open_one();
    assert_eq!(a.wait().unwrap(), 110);
    assert!(matches!(b.wait(), Err(TaskError::Cancelled { .. })));
    blocked.wait().unwrap();
    assert_eq!(calls.recv_timeout(LONG).unwrap(), [0]);
    assert_eq!(
        calls.recv_timeout(LONG).unwrap(),
        [11],
        "the cancelled one never ran"
    );
    assert_eq!(pool.stats().counts.cancelled, 1);
    assert_accounting(&pool.shutdown(LONG).stats);
}
