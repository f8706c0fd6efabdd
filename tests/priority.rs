//! Strict priority: with the only worker busy, Low requests queued before
//! Urgent ones still run after every Urgent one.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use accelpool::{GroupConfig, Pool, Priority, Request, SessionError, WorkerInfo};
use common::{assert_accounting, Gate};

#[test]
fn urgent_runs_before_low_queued_earlier() {
    for spin in [Duration::ZERO, Duration::from_micros(100)] {
        let gate = Gate::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let pool = {
            let (gate, order) = (gate.clone(), order.clone());
            Pool::<(Priority, u32), ()>::builder()
                .group(
                    GroupConfig::new("cpu")
                        .workers(1)
                        .capacity(64)
                        .spin_before_park(spin),
                    move |_: &WorkerInfo| {
                        let (gate, order) = (gate.clone(), order.clone());
                        Ok(move |x: &(Priority, u32)| -> Result<(), SessionError> {
                            if x.1 == u32::MAX {
                                gate.pass();
                            } else {
                                order.lock().unwrap().push(*x);
                            }
                            Ok(())
                        })
                    },
                )
                .build()
                .unwrap()
        };
        // Occupy the only worker.
        let blocker = pool
            .submit(Request::new((Priority::Normal, u32::MAX)))
            .unwrap();
        gate.wait_reached();
        let mut handles = Vec::new();
        for i in 0..20 {
            handles.push(
                pool.try_submit(Request::new((Priority::Low, i)).priority(Priority::Low))
                    .unwrap(),
            );
        }
        for i in 0..20 {
            handles.push(
                pool.try_submit(Request::new((Priority::Normal, i)).priority(Priority::Normal))
                    .unwrap(),
            );
        }
        for i in 0..20 {
            handles.push(
                pool.try_submit(Request::new((Priority::Urgent, i)).priority(Priority::Urgent))
                    .unwrap(),
            );
        }
        gate.open_one();
        blocker.wait().unwrap();
        for h in handles {
            h.wait().unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 60);
        // Urgent first, then Normal, then Low; FIFO within a level.
        let expected: Vec<_> = [Priority::Urgent, Priority::Normal, Priority::Low]
            .iter()
            .flat_map(|&p| (0..20).map(move |i| (p, i)))
            .collect();
        assert_eq!(order, expected, "spin {spin:?}");
        assert_accounting(&pool.shutdown(Duration::from_secs(5)).stats);
    }
}
