//! Result slots are reused across requests: every handle still gets its own
//! request's result, whatever the other handles did (waited, dropped early,
//! cancelled, timed out), and every request is counted once.

mod common;

use std::time::Duration;

use accelpool::{GroupConfig, Pool, Request, SessionError, TaskError, WorkerInfo};
use common::{assert_accounting, LONG};

#[test]
fn every_handle_gets_its_own_result_while_slots_are_reused() {
    let pool = Pool::<u64, u64>::builder()
        .group(
            GroupConfig::new("cpu").workers(2).pin(false),
            |_: &WorkerInfo| {
                Ok(|x: &u64| -> Result<u64, SessionError> {
                    // Some calls take a moment, so handles drop and cancel
                    // while their requests are queued or running.
                    if x.is_multiple_of(7) {
                        std::thread::yield_now();
                    }
                    Ok(x * 3)
                })
            },
        )
        .build()
        .unwrap();
    let submitters = 4u64;
    let per = 5_000u64;
    let waited: u64 = std::thread::scope(|s| {
        let pool = &pool;
        let threads: Vec<_> = (0..submitters)
            .map(|t| {
                s.spawn(move || {
                    let mut waited = 0;
                    let mut kept = Vec::new();
                    for i in 0..per {
                        let x = t * per + i;
                        let mut h = pool.submit(Request::new(x)).unwrap();
                        match i % 5 {
                            // Dropped at once: its slot is given back later,
                            // or never, while others are reused.
                            0 => drop(h),
                            1 => {
                                if !h.cancel() {
                                    assert_eq!(h.wait().unwrap(), x * 3);
                                    waited += 1;
                                }
                            }
                            // Kept and waited for later, so slots given back
                            // meanwhile cannot be this one.
                            2 => kept.push((x, h)),
                            3 => {
                                if let Some(r) = h.wait_timeout(Duration::from_micros(1)) {
                                    assert_eq!(r.unwrap(), x * 3);
                                } else {
                                    assert_eq!(h.wait_timeout(LONG).unwrap().unwrap(), x * 3);
                                }
                                waited += 1;
                            }
                            _ => {
                                assert_eq!(h.wait().unwrap(), x * 3);
                                waited += 1;
                            }
                        }
                        if kept.len() == 16 {
                            for (x, h) in kept.drain(..) {
                                assert_eq!(h.wait().unwrap(), x * 3);
                                waited += 1;
                            }
                        }
                    }
                    for (x, mut h) in kept {
                        assert_eq!(h.wait_timeout(LONG).unwrap().unwrap(), x * 3);
                        // A second take of a result says so.
                        assert!(matches!(h.try_get(), Some(Err(TaskError::AlreadyTaken))));
                        waited += 1;
                    }
                    waited
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let stats = pool.shutdown(LONG).stats;
    assert_accounting(&stats);
    let c = stats.counts;
    assert_eq!(c.accepted, submitters * per);
    assert_eq!(c.dead_lettered + c.expired, 0);
    assert!(
        c.completed >= waited,
        "{} completed, {waited} waited for",
        c.completed
    );
}
