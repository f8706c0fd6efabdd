//! Property-based fuzzing on stable Rust, each target run for a time budget:
//! `ACCELPOOL_FUZZ_SECS` seconds (default 1, so the suite stays quick; CI
//! gives each target 60). Every target prints how many inputs it tried and
//! its slowest input; a failing input is shrunk by proptest and printed.
//!
//! Targets: the YAML loader on arbitrary bytes, on YAML-shaped text and on
//! mutated real configs; tensor validation on arbitrary shapes, element
//! types and data lengths (against an oracle); the request path on
//! arbitrary sequences of submit, try-submit, cancel, wait and shutdown.

mod common;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use accelpool::{
    AffinityConfig, BreakerConfig, GroupConfig, Pool, PoolConfig, Priority, Request, RetryPolicy,
    SessionError, Status, TaskError, WorkerInfo,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `test` on values from `strategy` until the budget is spent; panics
/// (with the shrunk input) on the first failure or panic.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: Debug,
{
    let secs: f64 = std::env::var("ACCELPOOL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let (mut tried, mut slowest, mut slowest_input) = (0u64, Duration::ZERO, String::new());
    while started.elapsed() < budget {
        let tree = strategy.new_tree(&mut runner).expect("a value");
        let shown = format!("{:?}", tree.current());
        let t = Instant::now();
        if let Err(e) = runner.run_one(tree, &test) {
            panic!("fuzz {name}: failed after {tried} inputs: {e}");
        }
        if t.elapsed() > slowest {
            (slowest, slowest_input) = (t.elapsed(), shown);
        }
        tried += 1;
    }
    slowest_input.truncate(300);
    println!(
        "fuzz {name}: {tried} inputs in {:.1?}, 0 failures, slowest input {slowest:.2?}: {slowest_input}",
        started.elapsed()
    );
}

#[test]
fn yaml_loader_on_arbitrary_bytes() {
    fuzz(
        "yaml_bytes",
        proptest::collection::vec(any::<u8>(), 0..2048),
        |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let _ = PoolConfig::from_yaml(&text);
            let _ = accelpool::RuntimeConfig::from_yaml(&text);
            Ok(())
        },
    );
}

#[test]
fn yaml_loader_on_yaml_shaped_text() {
    let keys = prop::sample::select(vec![
        "groups:",
        "- name: cpu",
        "name:",
        "priority:",
        "workers:",
        "min_workers:",
        "capacity:",
        "low:",
        "retry:",
        "max_attempts:",
        "multiplier:",
        "memory:",
        "high_watermark:",
        "low_watermark:",
        "breaker:",
        "scaling:",
        "backend:",
        "openvino:",
        "model:",
        "device:",
        "spin_before_park:",
        "wait_spin:",
        "call_timeout:",
        "refuse_below:",
        "reshape:",
        "x:",
        "precision:",
        "health_check_interval:",
        "sample_interval:",
        "idle_timeout:",
        "max_tensor_elements:",
        "tenants:",
        "weights:",
        "affinity:",
        "enabled:",
        "max_wait:",
        "max_keys:",
    ]);
    let values = prop::sample::select(vec![
        "",
        " 0",
        " -1",
        " 1e309",
        " 18446744073709551616",
        " NaN",
        " .inf",
        " 5ms",
        " 3",
        " [1, 2]",
        " {a: 1}",
        " ~",
        " \"\"",
        " urgent",
        " 0.5",
        " !tag x",
        " &a",
        " *a",
        " 10s",
        " 500000000000y",
        " 100years",
        " f32",
        " [[[[[[",
        " {{{{",
    ]);
    let lines = proptest::collection::vec((0usize..6, keys, values), 0..40);
    fuzz("yaml_shaped", lines, |lines| {
        let text: String = lines
            .iter()
            .map(|(indent, key, value)| format!("{}{key}{value}\n", "  ".repeat(*indent)))
            .collect();
        let _ = PoolConfig::from_yaml(&text);
        Ok(())
    });
}

#[test]
fn yaml_loader_on_mutated_real_configs() {
    // Pool configurations in config/, runtime ones in config/runtime/.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut configs: Vec<String> = [dir.clone(), dir.join("runtime")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    configs.sort();
    let edits = proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8);
    fuzz(
        "yaml_mutated",
        (0..configs.len(), edits),
        |(pick, edits)| {
            let mut bytes = configs[pick].clone().into_bytes();
            for (at, b) in edits {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = PoolConfig::from_yaml(&text);
            let _ = accelpool::RuntimeConfig::from_yaml(&text);
            Ok(())
        },
    );
}

#[cfg(feature = "openvino")]
#[test]
fn tensor_validation_on_arbitrary_shapes_and_lengths() {
    use accelpool::openvino::{
        library, OpenVinoConfig, OpenVinoFactory, Precision, Tensor, TensorData,
    };
    use accelpool::SessionFactory;
    library::load(None, false).expect("the OpenVINO runtime from scripts/setup.sh");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/tiny.onnx");
    const LIMIT: usize = 1 << 12;
    let factory = OpenVinoFactory::new(
        &OpenVinoConfig::new(model, "CPU")
            .precision(Precision::F32)
            .max_tensor_elements(LIMIT),
    )
    .unwrap();
    let dim = prop_oneof![
        0usize..8,
        Just(usize::MAX),
        Just(usize::MAX / 2 + 1),
        Just(1usize << 32),
        Just(LIMIT / 4 + 1),
    ];
    let tensor = (
        prop::sample::select(vec!["x", "y", ""]),
        proptest::collection::vec(dim, 0..5),
        0usize..4,
        0usize..40,
    );
    fuzz(
        "tensor_validation",
        proptest::collection::vec(tensor, 0..3),
        |tensors| {
            let input: Vec<Tensor> = tensors
                .iter()
                .map(|(name, shape, kind, len)| {
                    let data = match kind {
                        0 => TensorData::F32(vec![0.5; *len]),
                        1 => TensorData::I32(vec![1; *len]),
                        2 => TensorData::I64(vec![1; *len]),
                        _ => TensorData::U8(vec![1; *len]),
                    };
                    Tensor::new(*name, shape.clone(), data)
                })
                .collect();
            // The oracle: one f32 tensor (named `x`, or the only one), shape
            // [n, 4] with 0 < n, n * 4 elements given, within the limit.
            let fits = |(name, shape, kind, len): &(&str, Vec<usize>, usize, usize)| {
                (*name == "x" || tensors.len() == 1)
                    && *kind == 0
                    && shape.len() == 2
                    && shape[0] > 0
                    && shape[1] == 4
                    && shape[0]
                        .checked_mul(4)
                        .is_some_and(|n| n == *len && n <= LIMIT)
            };
            let want = tensors.len() == 1 && fits(&tensors[0]);
            let got = factory.validate(&input);
            prop_assert_eq!(got.is_ok(), want, "{:?}: {:?}", tensors, got);
            Ok(())
        },
    );
}

/// One step of the request-path fuzz.
#[derive(Debug, Clone)]
enum Op {
    Submit(u32, u8, bool),
    TrySubmit(u32, u8),
    Cancel(usize),
    Wait(usize),
    Shutdown,
}

#[test]
fn request_path_on_arbitrary_call_sequences() {
    let op = prop_oneof![
        4 => (any::<u32>(), 0u8..4, any::<bool>()).prop_map(|(x, p, d)| Op::Submit(x, p, d)),
        3 => (any::<u32>(), 0u8..4).prop_map(|(x, p)| Op::TrySubmit(x, p)),
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => any::<usize>().prop_map(Op::Wait),
        1 => Just(Op::Shutdown),
    ];
    fuzz(
        "request_path",
        proptest::collection::vec(op, 0..40),
        |ops| {
            // Affinity on: keyed requests are handed between the two
            // workers, and the accounting below covers the mailboxes too.
            let pool = Pool::builder()
                .retry(RetryPolicy {
                    initial_backoff: Duration::ZERO,
                    ..RetryPolicy::default()
                })
                .affinity(AffinityConfig {
                    enabled: true,
                    max_wait: Duration::from_micros(100),
                    ..AffinityConfig::default()
                })
                .group(
                    // A breaker that opens and recovers within milliseconds:
                    // its paths are exercised without waiting out real cooldowns.
                    GroupConfig::new("cpu")
                        .workers(2)
                        .capacity(4)
                        .breaker(BreakerConfig {
                            recovery_timeout: Duration::from_millis(1),
                            max_backoff: Duration::from_millis(4),
                            ..BreakerConfig::default()
                        }),
                    |_: &WorkerInfo| {
                        Ok(|x: &u32| -> Result<u32, SessionError> {
                            match x % 7 {
                                0 => Err(SessionError::transient("every seventh input fails")),
                                1 => Err(SessionError::permanent("and one in seven more for good")),
                                _ => Ok(x.wrapping_add(1)),
                            }
                        })
                    },
                )
                .build()
                .unwrap();
            let mut handles = Vec::new();
            for op in &ops {
                match *op {
                    Op::Submit(x, p, with_deadline) => {
                        let mut r = Request::new(x)
                            .priority(Priority::ALL[p as usize])
                            .affinity(x % 3);
                        if with_deadline {
                            r = r.timeout(Duration::from_micros(50));
                        }
                        match pool.submit_timeout(r, Duration::from_millis(50)) {
                            Ok(h) => handles.push((x, h, None)),
                            // A refusal hands the request back intact.
                            Err(e) => prop_assert_eq!(e.into_request().into_input(), x),
                        }
                    }
                    Op::TrySubmit(x, p) => {
                        let r = Request::new(x)
                            .priority(Priority::ALL[p as usize])
                            .affinity(x % 3);
                        match pool.try_submit(r) {
                            Ok(h) => handles.push((x, h, None)),
                            Err(e) => prop_assert_eq!(e.into_request().into_input(), x),
                        }
                    }
                    Op::Cancel(i) if !handles.is_empty() => {
                        let n = handles.len();
                        handles[i % n].1.cancel();
                    }
                    Op::Wait(i) if !handles.is_empty() => {
                        let n = handles.len();
                        let (_, h, taken) = &mut handles[i % n];
                        if taken.is_none() {
                            // A result taken here is the handle's one outcome.
                            *taken = h.wait_timeout(Duration::from_millis(1));
                        }
                    }
                    Op::Shutdown => {
                        // Later submissions are refused as Closed and handed back.
                        pool.shutdown(Duration::from_millis(20));
                    }
                    Op::Cancel(_) | Op::Wait(_) => {}
                }
            }
            let stats = pool.shutdown(common::LONG).stats;
            let c = stats.counts;
            prop_assert_eq!(c.accepted, handles.len() as u64);
            prop_assert_eq!(
                c.accepted,
                c.completed + c.dead_lettered + c.cancelled + c.expired
            );
            prop_assert_eq!(stats.in_flight, 0);
            for (x, mut h, taken) in handles {
                prop_assert!(h.status() != Status::Queued && h.status() != Status::Running);
                let outcome = match taken {
                    Some(r) => r,
                    None => h.wait_timeout(common::LONG).expect("resolved"),
                };
                match outcome {
                    Ok(y) => prop_assert_eq!(y, x.wrapping_add(1)),
                    Err(TaskError::DeadLettered { .. }) => prop_assert!(x % 7 <= 1),
                    Err(TaskError::Cancelled { .. } | TaskError::Expired) => {}
                    Err(e) => prop_assert!(false, "unexpected outcome for {}: {}", x, e),
                }
            }
            Ok(())
        },
    );
}
