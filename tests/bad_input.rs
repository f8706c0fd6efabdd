//! Bad input gets a typed error that names the field and the fix, or the
//! behaviour a user means; it never panics and never loses a request.
//! Durations of any size, absurd configuration values, hostile YAML, a
//! panic inside the supervisor, more workers than cores.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    BuildError, GroupConfig, InputError, Pool, PoolConfig, Request, RetryPolicy, SessionError,
    SessionFactory, TaskError, WorkerInfo, MAX_CONFIG_BYTES, MAX_GROUPS,
};
use common::{assert_accounting, LONG};

fn echo_pool() -> Pool<u32, u32> {
    Pool::builder()
        .group(GroupConfig::new("cpu").workers(1), |_: &WorkerInfo| {
            Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) })
        })
        .build()
        .unwrap()
}

#[test]
fn huge_durations_mean_no_deadline_and_never_panic() {
    let pool = echo_pool();
    // A timeout too large for an Instant is no deadline at all.
    let r = Request::new(1).timeout(Duration::MAX);
    let mut h = pool.submit(r).unwrap();
    assert_eq!(h.wait_timeout(Duration::MAX).unwrap().unwrap(), 1);
    let h = pool
        .submit_timeout(Request::new(2).timeout(Duration::MAX), Duration::MAX)
        .unwrap();
    assert_eq!(h.wait().unwrap(), 2);
    // An ordinary timeout still expires.
    let expired = pool.submit(Request::new(3).timeout(Duration::ZERO));
    if let Ok(h) = expired {
        // Taken by a worker only after its deadline: it expires unrun,
        // unless the worker took it within the same nanosecond.
        assert!(matches!(h.wait(), Err(TaskError::Expired) | Ok(3)));
    }
    let report = pool.shutdown(Duration::MAX);
    assert!(report.drained);
    assert_accounting(&report.stats);
}

#[test]
fn out_of_range_settings_are_refused_with_the_field_and_the_range() {
    let cases = [
        (
            "health_check_interval: 500000000000y\ngroups: [{name: cpu}]",
            "health_check_interval",
            "",
        ),
        (
            "health_check_interval: 2h\ngroups: [{name: cpu}]",
            "health_check_interval",
            "2h is outside 100us..=1m",
        ),
        (
            "memory: {sample_interval: 100years}\ngroups: [{name: cpu}]",
            "memory.sample_interval",
            "is outside 1ms..=1h",
        ),
        (
            "wait_spin: 2s\ngroups: [{name: cpu}]",
            "wait_spin",
            "2s is outside 0s..=1s",
        ),
        (
            "groups: [{name: cpu, spin_before_park: 100years}]",
            "groups[0].spin_before_park",
            "is outside 0s..=1s",
        ),
        (
            "groups: [{name: cpu, call_timeout: 0s}]",
            "groups[0].call_timeout",
            "0s is outside 1ms..=7days",
        ),
        (
            "groups: [{name: cpu, scaling: {idle_timeout: 1000years}}]",
            "groups[0].scaling.idle_timeout",
            "is outside 1ms..=7days",
        ),
        (
            "groups: [{name: cpu, breaker: {recovery_timeout: 30days, max_backoff: 60days}}]",
            "groups[0].breaker.recovery_timeout",
            "is outside 1ms..=1day",
        ),
        (
            "retry: {max_backoff: 2h}\ngroups: [{name: cpu}]",
            "retry.max_backoff",
            "2h is outside 0s..=1h",
        ),
        (
            "groups: [{name: cpu, workers: 2, min_workers: 3}]",
            "groups[0].min_workers",
            "3 is outside 1..=2",
        ),
        (
            "groups: [{name: cpu, workers: 2, min_workers: 0}]",
            "groups[0].min_workers",
            "0 is outside 1..=2",
        ),
        (
            "groups: [{name: cpu, workers: 18446744073709551615}]",
            "groups[0].workers",
            "18446744073709551615 is outside 1..=1024",
        ),
        (
            "groups: [{name: cpu, capacity: {urgent: 1099511627776}}]",
            "groups[0].capacity.urgent",
            "is outside 1..=1048576",
        ),
        (
            "dead_letter: {capacity: 1099511627776}\ngroups: [{name: cpu}]",
            "dead_letter.capacity",
            "is outside 1..=1048576",
        ),
        (
            "retry: {max_attempts: 4000000000}\ngroups: [{name: cpu}]",
            "retry.max_attempts",
            "is outside 1..=100",
        ),
        (
            "groups: [{name: cpu, warmup: 4000000000}]",
            "groups[0].warmup",
            "is outside 0..=1000",
        ),
    ];
    common::assert_config_errors(&cases);
    // The builder applies the same checks to settings made in code.
    let err = Pool::<u32, u32>::builder()
        .group(
            GroupConfig::new("cpu").spin_before_park(Duration::MAX),
            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) }),
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(err, BuildError::Config(ref e) if e.field == "groups[0].spin_before_park"),
        "{err}"
    );
}

#[test]
fn hostile_yaml_is_refused_before_the_parser_sees_it() {
    // Nested 100,000 deep: refused by a linear scan, with the line.
    for deep in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        "- ".repeat(100_000),
    ] {
        let err = PoolConfig::from_yaml(&deep).unwrap_err();
        assert!(
            err.message.contains("nested") && err.message.contains("over the limit of 32"),
            "{err}"
        );
    }
    // Larger than any configuration: refused by size, even from a file,
    // which is read no further than the limit.
    let big = format!("groups:\n{}", "  - name: g\n".repeat(MAX_CONFIG_BYTES / 10));
    assert!(big.len() > MAX_CONFIG_BYTES);
    let err = PoolConfig::from_yaml(&big).unwrap_err();
    assert!(err.message.contains("over the limit of 1048576"), "{err}");
    let path = std::env::temp_dir().join(format!("accelpool-big-{}.yaml", std::process::id()));
    std::fs::write(&path, &big).unwrap();
    let err = PoolConfig::from_yaml_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(err.message.contains("over the limit of 1048576"), "{err}");
    // More groups than a pool has: refused while the list is read.
    let many: String = (0..=MAX_GROUPS)
        .map(|i| format!("  - name: g{i}\n"))
        .collect();
    let err = PoolConfig::from_yaml(&format!("groups:\n{many}")).unwrap_err();
    assert_eq!(err.field, "groups");
    assert!(err.message.contains("more than 64 groups"), "{err}");
}

#[cfg(not(feature = "openvino"))]
#[test]
fn an_openvino_backend_without_the_feature_says_how_to_turn_it_on() {
    let err = PoolConfig::from_yaml(
        "groups: [{name: cpu, backend: {openvino: {model: m.onnx, device: CPU}}}]",
    )
    .unwrap_err();
    assert_eq!(err.field, "groups[0].backend.openvino");
    assert!(
        err.message.contains("`openvino` feature is off")
            && err.message.contains("default-features"),
        "{err}"
    );
}

/// Passes every input at submit; panics in `validate` once `armed`, which
/// only a retry's re-route then meets (on the supervisor's thread).
struct ArmedValidate(Arc<AtomicBool>);

impl SessionFactory<u32, u32> for ArmedValidate {
    fn create(
        &self,
        _: &WorkerInfo,
    ) -> Result<Box<dyn accelpool::Session<u32, u32>>, SessionError> {
        let armed = Arc::clone(&self.0);
        Ok(Box::new(move |x: &u32| -> Result<u32, SessionError> {
            if *x == 0 {
                armed.store(true, Ordering::SeqCst);
                return Err(SessionError::transient("fails once, to be retried"));
            }
            Ok(*x)
        }))
    }

    fn validate(&self, _: &u32) -> Result<(), InputError> {
        if self.0.swap(false, Ordering::SeqCst) {
            panic!("injected: validate panics during a re-route");
        }
        Ok(())
    }
}

#[test]
fn a_panic_in_the_supervisor_dead_letters_the_request_and_the_supervisor_carries_on() {
    common::quiet_injected_panics();
    let armed = Arc::new(AtomicBool::new(false));
    let pool = Pool::builder()
        .retry(RetryPolicy {
            initial_backoff: Duration::ZERO,
            ..RetryPolicy::default()
        })
        .group(GroupConfig::new("cpu").workers(1), ArmedValidate(armed))
        .build()
        .unwrap();
    let err = pool.submit(Request::new(0)).unwrap().wait().unwrap_err();
    let TaskError::DeadLettered { attempts } = &err else {
        panic!("expected a dead letter, got {err}")
    };
    let last = attempts.last().unwrap();
    assert_eq!(&*last.group, "router");
    assert!(last.error.message().contains("injected"), "{err}");
    assert_eq!(pool.dead_letters().len(), 1, "its input is kept");
    // Not mis-reported as a shutdown, and the supervisor still runs retries.
    let stats = pool.stats();
    assert_eq!(stats.supervisor_panics, 1);
    assert_eq!(pool.submit(Request::new(5)).unwrap().wait().unwrap(), 5);
    let letter = pool.dead_letters().drain().pop().unwrap();
    assert_eq!(*letter.input, 0);
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn more_workers_than_cores_are_all_started_and_share_cores() {
    // Far more than any test machine has cores: every worker is started
    // (none capped), and the stats say that cores are shared.
    const WORKERS: usize = 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = Pool::builder()
        .group(
            GroupConfig::new("npu").workers(WORKERS),
            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x + 1) }),
        )
        .build()
        .unwrap();
    let stats = pool.stats();
    let workers = &stats.groups[0].workers;
    assert_eq!(workers.len(), WORKERS);
    assert_eq!(stats.groups[0].active_workers, WORKERS);
    if cores < WORKERS {
        let sharing = workers.iter().filter(|w| w.shares_core).count();
        assert!(
            sharing >= WORKERS - cores,
            "{sharing} of {WORKERS} workers share {cores} cores"
        );
    }
    let handles: Vec<_> = (0..200)
        .map(|i| pool.submit(Request::new(i)).unwrap())
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), i as u32 + 1);
    }
    assert_accounting(&pool.shutdown(LONG).stats);
}
