//! Deadline-aware admission: with a known service time, a request whose
//! deadline is shorter than the work ahead of it is refused at submit; one
//! with room is accepted; a higher level sees only the work at its level and
//! above; off (the default), the same request is queued and expires.

mod common;

use std::time::{Duration, Instant};

use accelpool::{
    DeadlineAdmission, GroupConfig, Pool, PoolConfig, Priority, Refusal, Request, SessionError,
    TaskError, WorkerInfo,
};
use common::{assert_accounting, Gate, LONG};

/// The service time every call takes at least: requests sleep this long.
const SERVICE: Duration = Duration::from_millis(20);

/// Input 0 waits at the gate; any other input sleeps `SERVICE`. One worker.
fn pool(admission: bool, gate: &Gate) -> Pool<u32, u32> {
    let gate = gate.clone();
    Pool::builder()
        .deadline_admission(DeadlineAdmission {
            enabled: admission,
            safety_factor: 1.0,
        })
        .group(
            GroupConfig::new("cpu").workers(1).capacity(64).pin(false),
            move |_: &WorkerInfo| {
                let gate = gate.clone();
                Ok(move |x: &u32| -> Result<u32, SessionError> {
                    if *x == 0 {
                        gate.pass();
                    } else {
                        std::thread::sleep(SERVICE);
                    }
                    Ok(*x)
                })
            },
        )
        .build()
        .unwrap()
}

/// Measures the service time (three calls), then holds the worker at the
/// gate with `queued` requests of `SERVICE` behind it. Returns their
/// handles and the held one's.
fn saturate(
    pool: &Pool<u32, u32>,
    gate: &Gate,
    queued: u32,
) -> (accelpool::TaskHandle<u32>, Vec<accelpool::TaskHandle<u32>>) {
    for i in 1..=3 {
        pool.submit(Request::new(i)).unwrap().wait().unwrap();
    }
    let held = pool.submit(Request::new(0)).unwrap();
    gate.wait_reached();
    let behind = (0..queued)
        .map(|i| pool.submit(Request::new(10 + i)).unwrap())
        .collect();
    (held, behind)
}

#[test]
fn a_deadline_shorter_than_the_work_ahead_is_refused_at_submit() {
    let gate = Gate::new();
    let pool = pool(true, &gate);
    let (held, behind) = saturate(&pool, &gate, 4);
    // Ahead of a new request: 4 queued and 1 running, each at least
    // SERVICE, then its own call: at least 6 x SERVICE.
    let estimate = pool.estimate(Priority::Normal).expect("calls measured");
    assert!(estimate >= SERVICE * 6, "estimate {estimate:?}");

    let err = pool
        .try_submit(Request::new(7).timeout(SERVICE * 2))
        .unwrap_err();
    match err.refusal() {
        Refusal::DeadlineUnmeetable {
            priority,
            estimate,
            left,
        } => {
            assert_eq!(*priority, Priority::Normal);
            assert!(*estimate >= SERVICE * 6, "{err}");
            assert!(*left <= SERVICE * 2, "{err}");
        }
        other => panic!("refused for {other}, not for its deadline"),
    }
    assert!(err.to_string().contains("deadline"), "{err}");
    assert_eq!(err.into_request().into_input(), 7, "the request comes back");
    // `submit` refuses it the same way: waiting for room would not help.
    let err = pool
        .submit(Request::new(8).timeout(SERVICE * 2))
        .unwrap_err();
    assert!(
        matches!(err.refusal(), Refusal::DeadlineUnmeetable { .. }),
        "{err}"
    );

    // Room enough, or no deadline at all: accepted.
    let roomy = pool.submit(Request::new(9).timeout(LONG * 3)).unwrap();
    let open_ended = pool.submit(Request::new(11)).unwrap();

    gate.open_one();
    held.wait().unwrap();
    for h in behind {
        h.wait().unwrap();
    }
    assert_eq!(roomy.wait().unwrap(), 9);
    assert_eq!(open_ended.wait().unwrap(), 11);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.refusals.deadline_unmeetable, 2);
    assert_eq!(stats.counts.rejected, 2);
    // The moving average of the calls (the held one may have been short).
    let service_ms = stats.groups[0].service_time_ms;
    assert!(
        service_ms >= SERVICE.as_secs_f64() * 1e3 / 2.0,
        "{service_ms} ms"
    );
    assert_accounting(&stats);
}

#[test]
fn a_higher_level_counts_only_the_work_at_its_level_and_above() {
    let gate = Gate::new();
    let pool = pool(true, &gate);
    // 20 `normal` requests queued: at least 22 x SERVICE for another one;
    // an `urgent` one has only the running call ahead: about 2 x SERVICE.
    let (held, behind) = saturate(&pool, &gate, 20);
    let deadline = SERVICE * 15;
    let err = pool
        .try_submit(Request::new(5).timeout(deadline))
        .unwrap_err();
    assert!(
        matches!(err.refusal(), Refusal::DeadlineUnmeetable { .. }),
        "{err}"
    );
    let normal = pool.estimate(Priority::Normal).unwrap();
    let urgent = pool.estimate(Priority::Urgent).unwrap();
    assert!(urgent < normal, "urgent {urgent:?}, normal {normal:?}");
    // Accepted unless calls ran 7 times slower than they sleep.
    let jumps = pool
        .try_submit(Request::new(6).priority(Priority::Urgent).timeout(deadline))
        .unwrap();
    gate.open_one();
    held.wait().unwrap();
    // It may still expire on a machine slow enough; either way it is
    // accounted for.
    match jumps.wait() {
        Ok(6) | Err(TaskError::Expired) => {}
        other => panic!("urgent request ended as {other:?}"),
    }
    for h in behind {
        h.wait().unwrap();
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.refusals.deadline_unmeetable, 1);
    assert_accounting(&stats);
}

#[test]
fn off_by_default_the_same_request_is_queued_and_expires() {
    assert!(!PoolConfig::default().deadline_admission.enabled);
    let gate = Gate::new();
    let pool = pool(false, &gate);
    let (held, behind) = saturate(&pool, &gate, 4);
    let deadline = Instant::now() + SERVICE * 2;
    let doomed = pool.try_submit(Request::new(7).deadline(deadline)).unwrap();
    // Hold the worker until the request's deadline has passed.
    common::eventually("the deadline passes", || Instant::now() > deadline);
    gate.open_one();
    held.wait().unwrap();
    for h in behind {
        h.wait().unwrap();
    }
    assert!(matches!(doomed.wait(), Err(TaskError::Expired)));
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.refusals.deadline_unmeetable, 0);
    assert_eq!(stats.counts.expired, 1);
    assert_accounting(&stats);
}

#[test]
fn a_group_that_has_measured_nothing_admits() {
    let gate = Gate::new();
    let pool = pool(true, &gate);
    assert_eq!(pool.estimate(Priority::Normal), None);
    // No call finished yet: nothing to go on, so even a tight deadline
    // is queued (and expires if it must).
    let h = pool.try_submit(Request::new(1).timeout(Duration::from_nanos(1)));
    assert!(h.is_ok());
    let _ = h.unwrap().wait();
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn the_safety_factor_is_validated_with_its_field() {
    common::assert_config_errors(&[
        (
            "deadline_admission:\n  enabled: true\n  safety_factor: 0\ngroups:\n  - name: a\n",
            "deadline_admission.safety_factor",
            "0 is outside 0.1..=10.0",
        ),
        (
            "deadline_admission:\n  enable: true\ngroups:\n  - name: a\n",
            "deadline_admission.enable",
            "unknown field `enable`",
        ),
    ]);
    let cfg = PoolConfig::from_yaml(
        "deadline_admission:\n  enabled: true\n  safety_factor: 1.5\ngroups:\n  - name: a\n",
    )
    .unwrap();
    assert_eq!(
        cfg.deadline_admission,
        DeadlineAdmission {
            enabled: true,
            safety_factor: 1.5
        }
    );
}
