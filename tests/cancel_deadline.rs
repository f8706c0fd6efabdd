//! Cancel and deadlines: a cancelled queued request never runs, a running
//! one is flagged for its session, and a request whose deadline passed
//! before a worker took it ends expired without running.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accelpool::{
    CancelReason, GroupConfig, Pool, Request, RunContext, Session, SessionError, Status, TaskError,
    WorkerInfo,
};
use common::{assert_accounting, Gate, LONG};

/// Input 0 waits at the gate; input 1 runs until cancelled; others record themselves.
struct Recorder {
    gate: Gate,
    ran: Arc<Mutex<Vec<u32>>>,
    started: crossbeam_channel::Sender<u32>,
}

impl Session<u32, u32> for Recorder {
    fn run(&mut self, x: &u32, ctx: &RunContext<'_>) -> Result<u32, SessionError> {
        match x {
            0 => self.gate.pass(),
            1 => {
                self.started.send(1).unwrap();
                let give_up = Instant::now() + LONG;
                while !ctx.is_cancelled() {
                    assert!(Instant::now() < give_up, "cancel flag never arrived");
                    std::thread::yield_now();
                }
                return Err(SessionError::cancelled());
            }
            _ => self.ran.lock().unwrap().push(*x),
        }
        Ok(*x)
    }
}

fn recorder_pool(
    gate: &Gate,
    ran: &Arc<Mutex<Vec<u32>>>,
) -> (Pool<u32, u32>, crossbeam_channel::Receiver<u32>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (gate, ran) = (gate.clone(), ran.clone());
    let pool = Pool::builder()
        .group(GroupConfig::new("cpu").workers(1), move |_: &WorkerInfo| {
            Ok(Recorder {
                gate: gate.clone(),
                ran: ran.clone(),
                started: tx.clone(),
            })
        })
        .build()
        .unwrap();
    (pool, rx)
}

#[test]
fn cancelled_queued_request_never_runs() {
    let gate = Gate::new();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (pool, _) = recorder_pool(&gate, &ran);
    let blocker = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let keep = pool.submit(Request::new(10)).unwrap();
    let mut drop_me = pool.submit(Request::new(11)).unwrap();
    assert_eq!(drop_me.status(), Status::Queued);
    assert!(drop_me.cancel(), "a queued request is cancelled at once");
    assert_eq!(drop_me.status(), Status::Cancelled);
    assert!(!drop_me.cancel(), "a second cancel does nothing");
    assert!(matches!(
        drop_me.try_get(),
        Some(Err(TaskError::Cancelled {
            reason: CancelReason::Caller
        }))
    ));
    gate.open_one();
    blocker.wait().unwrap();
    assert_eq!(keep.wait().unwrap(), 10);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(*ran.lock().unwrap(), vec![10], "request 11 never ran");
    assert_eq!(stats.counts.cancelled, 1);
    assert_accounting(&stats);
}

#[test]
fn cancelling_a_running_request_flags_its_session() {
    let gate = Gate::new();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (pool, started) = recorder_pool(&gate, &ran);
    let mut h = pool.submit(Request::new(1)).unwrap();
    started.recv_timeout(LONG).unwrap();
    assert_eq!(h.status(), Status::Running);
    assert!(!h.cancel(), "a running request is only flagged");
    let result = h
        .wait_timeout(LONG)
        .expect("resolves once the session sees the flag");
    assert!(matches!(
        result,
        Err(TaskError::Cancelled {
            reason: CancelReason::Caller
        })
    ));
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.cancelled, 1);
    assert_eq!(
        stats.counts.retried, 0,
        "a cancelled request is not retried"
    );
    assert_accounting(&stats);
}

#[test]
fn request_past_its_deadline_expires_without_running() {
    let gate = Gate::new();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (pool, _) = recorder_pool(&gate, &ran);
    let blocker = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let deadline = Instant::now() + Duration::from_millis(5);
    let mut late = pool.submit(Request::new(20).deadline(deadline)).unwrap();
    let on_time = pool.submit(Request::new(21).timeout(LONG)).unwrap();
    assert!(late.try_get().is_none(), "not resolved while queued");
    // Hold the worker until the deadline has certainly passed.
    while Instant::now() <= deadline {
        std::thread::sleep(deadline - Instant::now());
    }
    gate.open_one();
    blocker.wait().unwrap();
    assert!(matches!(
        late.wait_timeout(LONG),
        Some(Err(TaskError::Expired))
    ));
    assert_eq!(late.status(), Status::Expired);
    assert_eq!(on_time.wait().unwrap(), 21);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(*ran.lock().unwrap(), vec![21]);
    assert_eq!(stats.counts.expired, 1);
    assert_accounting(&stats);
}
