//! Loom models of the four protocols that carry the crate's promise. They
//! run the real code, built with loom's atomics, lock and condvar
//! (`core::sync`), through every interleaving loom explores:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --lib loom_models
//! ```
//!
//! (`scripts/loom.sh` runs them with the preemption bound CI uses.)
//!
//! 1. The result slot: a worker's `Queued -> Running` CAS racing a cancel,
//!    a taken-over call's late result racing its replacement's, and the
//!    waiter (`wait`, `wait_timeout`): each request resolves exactly once,
//!    is counted once, and its waiter is always woken with that result.
//! 2. Admission against shutdown: once `Gate::close` returns, every request
//!    a submitter got in is visible (no request slips into a queue unseen),
//!    and a submitter that was refused saw the gate closed.
//! 3. The ledger's idle wake-up: `wait_idle` returns once the last
//!    outcome is recorded; under loom a wait has no deadline, so a lost
//!    wake-up is a deadlock the model reports.
//! 4. A fair level's tenant queue: a worker's take racing a push either
//!    sees the pushed request or leaves the tenant inactive so the push
//!    announces it again (never neither: a stranded request; never both),
//!    and a submitter waiting for room in its tenant's share is woken by
//!    the take that makes room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loom::thread;

use crate::core::{CancelReason, Ledger, Outcome, Slot, Status, TaskError, TaskHandle};
use crate::exec::admission::Gate;
use crate::exec::fair::{Lane, Tenant};

/// A slot for one accepted request, with its ledger.
fn accepted_slot() -> (Arc<Ledger>, Arc<Slot<u32>>) {
    let ledger = Arc::new(Ledger::default());
    ledger.accepted();
    let slot = Arc::new(Slot::new(
        1,
        Arc::clone(&ledger),
        crate::core::trace::request(1, crate::core::Priority::Normal),
    ));
    (ledger, slot)
}

#[test]
fn slot_worker_start_races_cancel_and_the_waiter_sees_the_winner() {
    loom::model(|| {
        let (ledger, slot) = accepted_slot();
        let worker = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                if slot.start() {
                    assert!(
                        slot.resolve(Outcome::Completed(7)),
                        "a started request is ours"
                    );
                    true
                } else {
                    false
                }
            })
        };
        let handle = TaskHandle::new(Arc::clone(&slot));
        let cancelled = handle.cancel();
        let result = handle.wait();
        let ran = worker.join().unwrap();
        // Exactly one of them took the request.
        assert_ne!(cancelled, ran);
        match result {
            Ok(7) => assert!(ran),
            Err(TaskError::Cancelled {
                reason: CancelReason::Caller,
            }) => assert!(cancelled),
            other => panic!("unexpected result {other:?}"),
        }
        let c = ledger.snapshot();
        assert_eq!((c.accepted, c.resolved()), (1, 1));
    });
}

#[test]
fn slot_late_result_of_a_taken_over_call_loses_to_exactly_one_winner() {
    loom::model(|| {
        let (ledger, slot) = accepted_slot();
        assert!(slot.start());
        // The stuck call, finishing late.
        let stuck = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || slot.resolve(Outcome::Completed(1)))
        };
        // The take-over: the request goes back to `Queued` and runs again
        // on a fresh worker (unless the late result won already).
        let replacement = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                slot.requeue() && slot.start() && slot.resolve(Outcome::Completed(2))
            })
        };
        let mut handle = TaskHandle::new(Arc::clone(&slot));
        let result = handle.wait_timeout(Duration::from_secs(60));
        let (a, b) = (stuck.join().unwrap(), replacement.join().unwrap());
        assert!(a ^ b, "exactly one result wins: stuck {a}, replacement {b}");
        let expected = if a { 1 } else { 2 };
        assert_eq!(result.map(|r| r.ok()), Some(Some(expected)));
        assert_eq!(slot.status(), Status::Completed);
        assert_eq!(ledger.snapshot().resolved(), 1);
    });
}

#[test]
fn admission_never_lets_a_request_in_unseen_by_shutdown() {
    loom::model(|| {
        let gate = Arc::new(Gate::new());
        let ledger = Arc::new(Ledger::default());
        let submitter = {
            let (gate, ledger) = (Arc::clone(&gate), Arc::clone(&ledger));
            thread::spawn(move || match gate.enter() {
                // Queued and counted while inside, as `Pool::admit_in` does.
                Some(_inside) => {
                    ledger.accepted();
                    true
                }
                None => false,
            })
        };
        assert!(gate.close());
        // Shutdown counts what is in flight from here: it must see every
        // request admitted.
        let seen = ledger.snapshot().accepted;
        let admitted = submitter.join().unwrap();
        assert_eq!(seen, u64::from(admitted));
        assert!(gate.enter().is_none(), "a closed gate admits no one");
    });
}

#[test]
fn ledger_wakes_the_idle_waiter_after_the_last_outcome() {
    loom::model(|| {
        let ledger = Arc::new(Ledger::default());
        ledger.accepted();
        ledger.accepted();
        let worker = {
            let ledger = Arc::clone(&ledger);
            thread::spawn(move || {
                ledger.record_outcome(Status::Completed);
                ledger.record_outcome(Status::Expired);
            })
        };
        // No deadline under loom: only a notification (or seeing the count)
        // ends this wait.
        assert!(ledger.wait_idle(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(ledger.in_flight(), 0);
        worker.join().unwrap();
    });
}

#[test]
fn a_tenants_take_racing_a_push_strands_nothing() {
    loom::model(|| {
        let tenant = Arc::new(Tenant::<u32>::new(Arc::from("a"), 1));
        assert!(matches!(tenant.enqueue(1, 4, || true), Ok(true)));
        let mut lane = Lane::new(Arc::clone(&tenant));
        let submitter = {
            let tenant = Arc::clone(&tenant);
            thread::spawn(move || tenant.enqueue(2, 4, || true))
        };
        let (first, emptied) = lane.take().expect("one was queued");
        let announced = submitter.join().unwrap().expect("the share has room");
        assert_eq!(first, 1);
        // The take saw the second request and the tenant stays in the ring
        // with it, or it emptied the tenant and the push announced it again.
        assert_eq!(emptied, announced, "a request stranded or announced twice");
        let mut lane = if emptied {
            Lane::new(Arc::clone(&tenant))
        } else {
            lane
        };
        assert_eq!(lane.take(), Some((2, true)));
    });
}

#[test]
fn a_submitter_waiting_for_its_tenants_share_is_woken_by_the_take() {
    loom::model(|| {
        let tenant = Arc::new(Tenant::<u32>::new(Arc::from("a"), 1));
        assert!(matches!(tenant.enqueue(1, 1, || true), Ok(true)));
        let mut lane = Lane::new(Arc::clone(&tenant));
        let submitter = {
            let tenant = Arc::clone(&tenant);
            thread::spawn(move || {
                // No deadline under loom: only the take's bell (or seeing
                // the room) ends this wait.
                tenant.wait_for_room(1, Instant::now() + Duration::from_secs(3600));
                tenant.enqueue(2, 1, || true)
            })
        };
        assert_eq!(lane.take().map(|(x, _)| x), Some(1));
        assert!(submitter.join().unwrap().is_ok(), "the take made room");
    });
}
