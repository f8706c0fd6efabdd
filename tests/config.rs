//! Configuration: every file under `config/` (pools) and `config/runtime/`
//! (runtimes of several models) loads and validates, and bad
//! fields are named with their path.

mod common;

use accelpool::PoolConfig;

#[test]
fn every_file_under_config_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let result = PoolConfig::from_yaml_file(&path);
            // A build without the remote group says how to turn it on.
            if !cfg!(feature = "remote") && path.to_string_lossy().contains("remote") {
                let e = result.unwrap_err().to_string();
                assert!(
                    e.contains("`remote` feature is off"),
                    "{}: {e}",
                    path.display()
                );
                continue;
            }
            let cfg = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!cfg.groups.is_empty(), "{}", path.display());
            loaded += 1;
        }
    }
    assert!(loaded > 0, "config/ holds YAML files");
    // Runtime configurations (several models) live in config/runtime/.
    let mut runtimes = 0;
    for entry in std::fs::read_dir(dir.join("runtime")).unwrap() {
        let path = entry.unwrap().path();
        let cfg = accelpool::RuntimeConfig::from_yaml_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cfg.models.is_empty(), "{}", path.display());
        runtimes += 1;
    }
    assert!(runtimes > 0, "config/runtime/ holds YAML files");
}

#[test]
fn bad_fields_are_named_with_their_path() {
    let cases = [
        (
            "groups: [{name: cpu, priority: 0}]",
            "groups[0].priority",
            "0 is outside 1..=10",
        ),
        (
            "groups: [{name: a}, {name: a}]",
            "groups[1].name",
            "names must be unique",
        ),
        (
            "groups: [{name: cpu, workers: 0}]",
            "groups[0].workers",
            "0 is outside 1..",
        ),
        (
            "groups: [{name: cpu, capacity: {low: 0}}]",
            "groups[0].capacity.low",
            "0 is outside 1..",
        ),
        (
            "groups: [{name: cpu, breaker: {failure_threshold: 0}}]",
            "groups[0].breaker.failure_threshold",
            "0 is outside 1..",
        ),
        (
            "groups: [{name: cpu, spin_before_park: fast}]",
            "groups[0].spin_before_park",
            "",
        ),
        (
            "groups: [{name: cpu, colour: red}]",
            "groups[0].colour",
            "unknown field `colour`",
        ),
        (
            "retry: {max_attempts: 0}\ngroups: [{name: cpu}]",
            "retry.max_attempts",
            "0 is outside 1..",
        ),
        (
            "retry: {multiplier: 0.5}\ngroups: [{name: cpu}]",
            "retry.multiplier",
            "outside 1.0..",
        ),
        ("groups: []", "groups", "at least one device group"),
        (
            "groups: [{name: cpu, backend: {tpu: {}}}]",
            "groups[0].backend.tpu",
            "unknown field `tpu`",
        ),
        (
            "groups: [{name: cpu, backend: {}}]",
            "groups[0].backend",
            "names no backend",
        ),
        #[cfg(feature = "openvino")]
        (
            "groups: [{name: cpu, backend: {openvino: {model: m.onnx, device: CPU, precision: fp32}}}]",
            "groups[0].backend.openvino.precision",
            "unknown variant `fp32`, expected one of `default`, `f32`, `bf16`, `f16`",
        ),
    ];
    common::assert_config_errors(&cases);
}

#[cfg(feature = "openvino")]
#[test]
fn npu_cpu_failover_config_builds_a_pool_that_serves_on_this_machine() {
    use accelpool::openvino::Tensor;
    use accelpool::{PoolBuilder, Request};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let cfg = PoolConfig::from_yaml_file("config/npu_cpu_failover.yaml").unwrap();
    assert_eq!(
        cfg.groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["npu", "cpu"]
    );
    let pool = PoolBuilder::from_openvino_config(cfg)
        .unwrap()
        .build()
        .unwrap();
    // Without an NPU here, the optional NPU group is left out.
    assert!(pool.group_names().contains(&"cpu".to_string()));
    let out = pool
        .submit(Request::new(vec![Tensor::f32(
            "x",
            [1, 4],
            vec![0.1, 0.2, 0.3, 0.4],
        )]))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(out[0].shape, [1, 3]);
    let cpu = pool
        .stats()
        .groups
        .into_iter()
        .find(|g| g.name == "cpu")
        .unwrap();
    assert_eq!(
        cpu.backend["precision"], "f32",
        "the YAML's precision is compiled"
    );
    common::assert_accounting(&pool.shutdown(common::LONG).stats);
}

// Arbitrary and mutated YAML is fuzzed, with a time budget, in tests/fuzz.rs.
