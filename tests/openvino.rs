//! The real OpenVINO backend on real models. These tests need the runtime
//! that `scripts/setup.sh` installs; without it they fail with the install
//! hint rather than skip.
#![cfg(feature = "openvino")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use accelpool::openvino::{
    library, OpenVinoConfig, OpenVinoError, OpenVinoFactory, Precision, Tensor, TensorData,
};
use accelpool::{GroupConfig, Pool, PoolBuilder, Refusal, Request};
use common::{assert_accounting, LONG};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The tiny model in f32: results compare with the f32 reference closely
/// whatever the CPU (bf16-capable CPUs would otherwise compute in bf16).
fn tiny() -> OpenVinoConfig {
    OpenVinoConfig::new(models().join("tiny/tiny.onnx"), "CPU")
        .inference_threads(1)
        .precision(Precision::F32)
}

/// Loads the runtime or fails the test with the install hint.
fn runtime() {
    if let Err(e) = library::load(None, false) {
        panic!("the OpenVINO tests need the runtime: {e}");
    }
}

#[test]
fn tiny_model_matches_its_independent_reference() {
    runtime();
    let factory = OpenVinoFactory::new(&tiny()).unwrap();
    assert_eq!(
        factory.precision(),
        "f32",
        "the precision asked for is the one compiled"
    );
    check_against_reference(factory, 1e-5);
}

/// The device's default precision (bf16 on CPUs that have it, f32 on the
/// others) is exercised too: within a tolerance that bf16's 8-bit mantissa
/// allows (relative error 2^-8 per rounding, through two layers).
#[test]
fn tiny_model_at_the_device_default_precision_is_within_bf16_tolerance() {
    runtime();
    let cfg = OpenVinoConfig::new(models().join("tiny/tiny.onnx"), "CPU");
    assert_eq!(cfg.precision, Precision::Default);
    let factory = OpenVinoFactory::new(&cfg).unwrap();
    let precision = factory.precision().to_owned();
    assert!(
        ["f32", "bf16", "f16"].contains(&precision.as_str()),
        "OpenVINO reports a known precision: {precision}"
    );
    let tolerance = if precision == "f32" { 1e-5 } else { 2e-2 };
    let pool = check_against_reference(factory, tolerance);
    let stats = pool.stats();
    assert_eq!(
        stats.groups[0].backend["precision"], precision,
        "the stats say which"
    );
    assert_eq!(stats.groups[0].backend["device"], "CPU");
}

/// A JSON array of numbers as f32.
fn f32s(v: &serde_json::Value) -> Vec<f32> {
    let all = v.as_array().expect("an array");
    all.iter()
        .map(|n| n.as_f64().expect("a number") as f32)
        .collect()
}

/// Runs every case of `models/tiny/reference.json` (computed with numpy in
/// f64) through a two-worker pool: probabilities within `tolerance`, labels
/// equal wherever the top two classes are further apart than it.
fn check_against_reference(
    factory: OpenVinoFactory,
    tolerance: f32,
) -> Pool<accelpool::openvino::Tensors, accelpool::openvino::Tensors> {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models().join("tiny/reference.json")).unwrap(),
    )
    .unwrap();
    let pool = Pool::builder()
        .group(GroupConfig::new("cpu").workers(2).warmup(1), factory)
        .build()
        .unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let batch = case["batch"].as_u64().unwrap() as usize;
        let x = f32s(&case["x"]);
        // Batches 1, 3 and 5 through one compiled model: dynamic shapes on CPU.
        let out = pool
            .submit(Request::new(vec![Tensor::f32("x", [batch, 4], x)]))
            .unwrap()
            .wait()
            .unwrap();
        let probs = out
            .iter()
            .find(|t| t.name == "probs")
            .expect("output `probs`");
        assert_eq!(probs.shape, [batch, 3]);
        let got = probs.data.as_f32().unwrap();
        let want = f32s(&case["probs"]);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < tolerance,
                "probs {got:?} vs reference {want:?}"
            );
        }
        let label = out
            .iter()
            .find(|t| t.name == "label")
            .expect("output `label`");
        let TensorData::I64(label) = &label.data else {
            panic!("label is i64")
        };
        let want_label = case["label"].as_array().unwrap();
        for (row, (l, w)) in label.iter().zip(want_label).enumerate() {
            let mut p = want[row * 3..row * 3 + 3].to_vec();
            p.sort_by(|a, b| b.total_cmp(a));
            if p[0] - p[1] > 2.0 * tolerance {
                assert_eq!(*l, w.as_i64().unwrap(), "label of row {row}");
            }
        }
    }
    assert_accounting(&pool.stats());
    pool
}

#[test]
fn model_is_compiled_once_per_group_with_one_request_per_worker() {
    runtime();
    let factory = Arc::new(OpenVinoFactory::new(&tiny()).unwrap());
    let pool = Pool::builder()
        .group_shared(GroupConfig::new("cpu").workers(2), factory.clone())
        .build()
        .unwrap();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            pool.submit(Request::new(vec![Tensor::f32(
                "x",
                [1, 4],
                vec![i as f32; 4],
            )]))
            .unwrap()
        })
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    assert_eq!(factory.compilations(), 1, "compiled once for the group");
    assert_eq!(
        factory.infer_requests_created(),
        2,
        "one infer request per worker, reused"
    );
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn wrong_input_is_rejected_before_queueing_with_a_typed_error() {
    runtime();
    let pool = Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1),
            OpenVinoFactory::new(&tiny()).unwrap(),
        )
        .build()
        .unwrap();
    let bad_shape = vec![Tensor::f32("x", [2, 5], vec![0.0; 10])];
    let err = pool
        .try_submit(Request::new(bad_shape.clone()))
        .unwrap_err();
    let Refusal::Invalid { group, error } = err.refusal() else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(group, "cpu");
    assert_eq!(error.input, "x");
    assert_eq!(error.expected, "f32 [?,4]");
    assert_eq!(error.given, "f32 [2, 5]");
    assert_eq!(
        err.into_request().into_input(),
        bad_shape,
        "handed back intact"
    );

    let bad_type = vec![Tensor::new("x", [1, 4], TensorData::I32(vec![0; 4]))];
    let err = pool.submit(Request::new(bad_type)).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected f32 [?,4], given i32 [1, 4]"),
        "{err}"
    );

    let short = vec![Tensor::f32("x", [2, 4], vec![0.0; 7])];
    let err = pool.submit(Request::new(short)).unwrap_err();
    assert!(err.to_string().contains("8 elements"), "{err}");

    let two = vec![
        Tensor::f32("x", [1, 4], vec![0.0; 4]),
        Tensor::f32("y", [1], vec![0.0]),
    ];
    let err = pool.submit(Request::new(two)).unwrap_err();
    assert!(err.to_string().contains("input `y`"), "{err}");

    let stats = pool.shutdown(LONG).stats;
    assert_eq!((stats.counts.accepted, stats.counts.rejected), (0, 4));
    assert_accounting(&stats);
}

#[test]
fn ppocr_direction_classifier_gives_probabilities_through_two_workers() {
    runtime();
    let model = models().join("ppocr/cls.onnx");
    assert!(
        model.is_file(),
        "{} missing: run scripts/setup.sh",
        model.display()
    );
    // The model is dynamic in every dimension but channels; fix the
    // classifier's input shape, as the PP-OCR pipeline feeds it.
    let cfg = OpenVinoConfig::new(model, "CPU").reshape("x", [1, 3, 48, 192]);
    let factory = Arc::new(OpenVinoFactory::new(&cfg).unwrap());
    let pool = Pool::builder()
        .group_shared(
            GroupConfig::new("cpu").workers(2).warmup(1),
            factory.clone(),
        )
        .build()
        .unwrap();
    assert_eq!(
        factory.inputs()[0].dims,
        [Some(1), Some(3), Some(48), Some(192)]
    );
    let n = 3 * 48 * 192;
    let handles: Vec<_> = (0..8)
        .map(|k| {
            // A deterministic pattern, different per request, in the model's [-1, 1] range.
            let img: Vec<f32> = (0..n)
                .map(|i| (((i * 31 + k * 977) % 255) as f32 / 127.5) - 1.0)
                .collect();
            pool.submit(Request::new(vec![Tensor::f32("x", [1, 3, 48, 192], img)]))
                .unwrap()
        })
        .collect();
    for h in handles {
        let out = h.wait().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].shape, [1, 2], "two classes: 0 and 180 degrees");
        let p = out[0].data.as_f32().unwrap();
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
        // At the device's default precision (bf16 on CPUs that have it),
        // so the sum is checked within bf16's rounding, not f32's.
        assert!(
            (p.iter().sum::<f32>() - 1.0).abs() < 1e-2,
            "{p:?} sums to 1"
        );
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(
        stats.groups[0]
            .workers
            .iter()
            .map(|w| w.counts.started)
            .sum::<u64>(),
        8
    );
    assert_accounting(&stats);
}

#[test]
fn absent_device_fails_clearly_or_is_skipped_when_optional() {
    runtime();
    let npu = OpenVinoConfig::new(models().join("tiny/tiny.onnx"), "NPU");
    match OpenVinoFactory::new(&npu) {
        Err(e @ OpenVinoError::DeviceNotFound { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("`NPU` is not available") && msg.contains("CPU"),
                "{msg}"
            );
            assert!(msg.contains("optional"), "the message names the fix: {msg}");
            let pool = PoolBuilder::new()
                .openvino_group(
                    GroupConfig::new("npu").priority(9),
                    &npu.clone().optional(true),
                )
                .unwrap()
                .openvino_group(GroupConfig::new("cpu").priority(1), &tiny())
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(
                pool.group_names(),
                ["cpu"],
                "the optional NPU group was skipped"
            );
            let err = PoolBuilder::new()
                .openvino_group(GroupConfig::new("npu"), &npu)
                .unwrap_err();
            assert!(err.is_device_absent());
        }
        Ok(_) => eprintln!("this machine has an NPU: the absent-device path is not exercised here"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn the_three_ppocr_models_run_in_one_runtime_from_yaml() {
    runtime();
    let cfg = accelpool::RuntimeConfig::from_yaml_file("config/runtime/ppocr.yaml").unwrap();
    let rt = accelpool::Runtime::from_openvino_config(cfg).unwrap();
    assert_eq!(rt.models(), ["cls", "det", "rec"]);
    let image = |h: usize, w: usize| {
        let n = 3 * h * w;
        let data = (0..n).map(|i| ((i % 255) as f32 / 127.5) - 1.0).collect();
        vec![Tensor::f32("x", [1, 3, h, w], data)]
    };
    let det = rt.submit("det", Request::new(image(64, 96))).unwrap();
    let cls = rt.submit("cls", Request::new(image(48, 192))).unwrap();
    let rec = rt.submit("rec", Request::new(image(48, 320))).unwrap();
    let det = det.wait().unwrap();
    assert_eq!(
        det[0].shape,
        [1, 1, 64, 96],
        "a probability map the image's size"
    );
    assert_eq!(cls.wait().unwrap()[0].shape, [1, 2], "two directions");
    let rec = rec.wait().unwrap();
    assert_eq!(rec[0].shape[..2], [1, 40], "one step per 8 pixels of width");
    let stats = rt.stats();
    assert_eq!(stats.counts.completed, 3);
    // Three pinned workers: on fewer cores they share, and say so.
    let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
    let sharing = stats.models.iter().filter(|m| m.shares_cores).count();
    assert_eq!(sharing > 0, cores < 3, "{cores} core(s)");
    for report in rt.shutdown(LONG).into_values() {
        assert_accounting(&report.stats);
    }
}

#[test]
fn dynamic_model_without_a_warmup_shape_says_which_setting_to_add() {
    runtime();
    let cls = OpenVinoConfig::new(models().join("ppocr/cls.onnx"), "CPU");
    let err = Pool::builder()
        .group(
            GroupConfig::new("cpu").warmup(1),
            OpenVinoFactory::new(&cls).unwrap(),
        )
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("input `x` has dynamic shape [?,3,?,?]") && msg.contains("warmup_shapes.x"),
        "{msg}"
    );
    // With a warmup shape the same dynamic model warms up and serves.
    let cls = cls.warmup_shape("x", [1, 3, 48, 192]);
    let pool = Pool::builder()
        .group(
            GroupConfig::new("cpu").warmup(2),
            OpenVinoFactory::new(&cls).unwrap(),
        )
        .build()
        .unwrap();
    let out = pool
        .submit(Request::new(vec![Tensor::f32(
            "x",
            [2, 3, 48, 320],
            vec![0.5; 2 * 3 * 48 * 320],
        )]))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(out[0].shape, [2, 2]);
}

#[test]
fn missing_model_names_the_path_and_the_fix() {
    runtime();
    let err = OpenVinoFactory::new(&OpenVinoConfig::new("models/none.onnx", "CPU")).unwrap_err();
    assert!(matches!(err, OpenVinoError::ModelNotFound { .. }));
    assert!(
        err.to_string().contains("models/none.onnx")
            && err.to_string().contains("scripts/setup.sh")
    );
}

#[test]
fn a_folder_given_as_the_model_is_called_a_folder() {
    runtime();
    let err = OpenVinoFactory::new(&OpenVinoConfig::new(models().join("tiny"), "CPU")).unwrap_err();
    assert!(
        matches!(err, OpenVinoError::ModelIsDirectory { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("is a directory") && msg.contains("`.onnx` file"),
        "names the fix: {msg}"
    );
}

#[test]
fn shapes_too_large_for_memory_or_the_limit_are_refused_at_submit() {
    runtime();
    let pool = Pool::builder()
        .group(
            GroupConfig::new("cpu"),
            OpenVinoFactory::new(&tiny().max_tensor_elements(16)).unwrap(),
        )
        .build()
        .unwrap();
    // The element count overflows: refused, with the request handed back.
    let err = pool
        .try_submit(Request::new(vec![Tensor::f32(
            "x",
            [usize::MAX, 4],
            vec![],
        )]))
        .unwrap_err();
    let Refusal::Invalid { error, .. } = err.refusal() else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(error.input, "x");
    assert!(error.expected.contains("at most 16 elements"), "{err}");
    // Within memory but over the configured limit (20 > 16).
    let err = pool
        .try_submit(Request::new(vec![Tensor::f32("x", [5, 4], vec![0.0; 20])]))
        .unwrap_err();
    assert!(err.to_string().contains("`max_tensor_elements`"), "{err}");
    // At the limit it runs.
    let out = pool
        .submit(Request::new(vec![Tensor::f32("x", [4, 4], vec![0.5; 16])]))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(out[0].shape, [4, 3]);
    // The limit bounds the backend's own shapes too.
    let err = OpenVinoFactory::new(&tiny().max_tensor_elements(16).warmup_shape("x", [8, 4]))
        .unwrap_err();
    assert!(matches!(err, OpenVinoError::ShapeTooLarge { .. }), "{err}");
    assert_accounting(&pool.shutdown(LONG).stats);
}

#[test]
fn model_files_others_may_write_or_too_large_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    runtime();
    let dir = std::env::temp_dir().join(format!("accelpool-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("tiny.onnx");
    std::fs::copy(models().join("tiny/tiny.onnx"), &model).unwrap();
    let set = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let cfg = || OpenVinoConfig::new(&model, "CPU").precision(Precision::F32);

    set(&dir, 0o755);
    set(&model, 0o644);
    OpenVinoFactory::new(&cfg()).expect("a private model loads");

    set(&model, 0o666);
    let err = OpenVinoFactory::new(&cfg()).unwrap_err();
    assert!(
        matches!(err, OpenVinoError::InsecurePath { what: "model", .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("writable by every user")
            && msg.contains("chmod o-w")
            && msg.contains("allow_insecure_paths"),
        "{msg}"
    );

    set(&model, 0o644);
    set(&dir, 0o777);
    let err = OpenVinoFactory::new(&cfg()).unwrap_err();
    assert!(err.to_string().contains("no sticky bit"), "{err}");
    // The opt-out, for development.
    OpenVinoFactory::new(&cfg().allow_insecure_paths(true)).expect("allowed by opt-out");
    set(&dir, 0o755);

    let err = OpenVinoFactory::new(&cfg().max_model_bytes(100)).unwrap_err();
    assert!(
        matches!(err, OpenVinoError::ModelTooLarge { limit: 100, .. }),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tensor whose bytes are shared (lent, as the C API's no-copy inputs
/// are) runs exactly as an owned one, and its owner is dropped, once, when
/// the pool lets go of the request.
#[test]
fn shared_input_bytes_give_the_owned_inputs_results_and_are_released() {
    use accelpool::openvino::{ElementType, SharedData};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Owner(Vec<u8>, Arc<AtomicUsize>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            // SeqCst: a test counter read once at the end; no ordering to tune.
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    runtime();
    let pool = Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1).pin(false),
            OpenVinoFactory::new(&tiny()).unwrap(),
        )
        .build()
        .unwrap();
    let released = Arc::new(AtomicUsize::new(0));
    let x: Vec<f32> = vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 0.0, 3.0];
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_ne_bytes()).collect();
    // Misaligned on purpose: lent C buffers need not be aligned for f32.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&bytes);
    let owner = Owner(shifted, released.clone());
    struct Tail(Owner);
    impl AsRef<[u8]> for Tail {
        fn as_ref(&self) -> &[u8] {
            &self.0.as_ref()[1..]
        }
    }
    let shared = SharedData::new(ElementType::F32, Tail(owner)).unwrap();
    let lent = Tensor::new("x", [2, 4], TensorData::Shared(shared));
    let owned = Tensor::f32("x", [2, 4], x);
    let a = pool
        .submit(Request::new(vec![lent]))
        .unwrap()
        .wait()
        .unwrap();
    let b = pool
        .submit(Request::new(vec![owned]))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(a, b);
    let report = pool.shutdown(LONG);
    assert_accounting(&report.stats);
    drop(pool);
    assert_eq!(released.load(Ordering::SeqCst), 1); // SeqCst: as above
}
