//! Batching through the real OpenVINO backend: batched outputs equal the
//! unbatched outputs of the same inputs, on a model with a dynamic batch
//! dimension and on one compiled for a fixed batch (a partial batch is
//! padded, the padding never shows).
#![cfg(feature = "openvino")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, Precision, Tensor, Tensors};
use accelpool::{
    BatchItem, BatchResult, BatchingConfig, GroupConfig, InputError, Pool, Request, RunContext,
    Session, SessionError, SessionFactory, WorkerInfo,
};
use common::{assert_accounting, Gate, LONG};

const N: usize = 3 * 48 * 192;

/// The direction classifier in f32, so batched and unbatched runs agree
/// to float rounding whatever the CPU.
fn cls() -> OpenVinoConfig {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ppocr/cls.onnx");
    assert!(
        model.is_file(),
        "{} missing: run scripts/setup.sh",
        model.display()
    );
    OpenVinoConfig::new(model, "CPU").precision(Precision::F32)
}

/// A different image per `k`, in the model's [-1, 1] range. An image whose
/// first value is `HOLD` makes the session wait at the gate first.
fn image(k: usize) -> Tensors {
    let img: Vec<f32> = (0..N)
        .map(|i| (((i * 31 + k * 977) % 255) as f32 / 127.5) - 1.0)
        .collect();
    vec![Tensor::f32("x", [1, 3, 48, 192], img)]
}

const HOLD: f32 = 9.0;

fn held() -> Tensors {
    let mut t = image(0);
    if let accelpool::openvino::TensorData::F32(v) = &mut t[0].data {
        v[0] = HOLD;
    }
    t
}

/// The OpenVINO factory, with sessions that wait at the gate on a held
/// request before running it: so a test can queue requests behind it.
struct Held {
    inner: Arc<OpenVinoFactory>,
    gate: Gate,
}

struct HeldSession {
    inner: Box<dyn Session<Tensors, Tensors>>,
    gate: Gate,
}

impl SessionFactory<Tensors, Tensors> for Held {
    fn create(&self, w: &WorkerInfo) -> Result<Box<dyn Session<Tensors, Tensors>>, SessionError> {
        Ok(Box::new(HeldSession {
            inner: self.inner.create(w)?,
            gate: self.gate.clone(),
        }))
    }
    fn validate(&self, input: &Tensors) -> Result<(), InputError> {
        self.inner.validate(input)
    }
    fn batch_key(&self, input: &Tensors) -> Option<u64> {
        self.inner.batch_key(input)
    }
}

impl HeldSession {
    fn hold_if_asked(&self, input: &Tensors) {
        if input[0].data.as_f32().is_some_and(|v| v[0] == HOLD) {
            self.gate.pass();
        }
    }
}

impl Session<Tensors, Tensors> for HeldSession {
    fn run(&mut self, input: &Tensors, ctx: &RunContext<'_>) -> Result<Tensors, SessionError> {
        self.hold_if_asked(input);
        self.inner.run(input, ctx)
    }
    fn run_batch(&mut self, batch: &[BatchItem<'_, Tensors>]) -> BatchResult<Tensors> {
        self.inner.run_batch(batch)
    }
}

/// Each image's output from an unbatched pool.
fn unbatched(images: &[Tensors]) -> Vec<Tensors> {
    let factory = OpenVinoFactory::new(&cls()).unwrap();
    let pool = Pool::builder()
        .group(GroupConfig::new("cpu").workers(1), factory)
        .build()
        .unwrap();
    let out = images
        .iter()
        .map(|img| {
            pool.submit(Request::new(img.clone()))
                .unwrap()
                .wait()
                .unwrap()
        })
        .collect();
    assert_accounting(&pool.shutdown(LONG).stats);
    out
}

/// Runs `images` batched behind a held request on `cfg`'s model; returns
/// each output and the batch sizes seen.
fn batched(cfg: &OpenVinoConfig, images: &[Tensors], max: u32) -> (Vec<Tensors>, Vec<usize>) {
    let gate = Gate::new();
    let factory = Held {
        inner: Arc::new(OpenVinoFactory::new(cfg).unwrap()),
        gate: gate.clone(),
    };
    let pool = Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1).batching(BatchingConfig {
                max_batch_size: max,
                ..BatchingConfig::default()
            }),
            factory,
        )
        .build()
        .unwrap();
    let hold = pool.submit(Request::new(held())).unwrap();
    gate.wait_reached();
    let handles: Vec<_> = images
        .iter()
        .map(|img| pool.submit(Request::new(img.clone())).unwrap())
        .collect();
    gate.open_one();
    let out = handles.into_iter().map(|h| h.wait().unwrap()).collect();
    hold.wait().unwrap();
    let stats = pool.shutdown(LONG).stats;
    assert_accounting(&stats);
    let sizes = stats.groups[0].batching.as_ref().unwrap().sizes.clone();
    let sizes = sizes
        .into_iter()
        .flat_map(|(size, n)| std::iter::repeat_n(size, n as usize))
        .collect();
    (out, sizes)
}

fn assert_same(batched: &[Tensors], reference: &[Tensors]) {
    assert_eq!(batched.len(), reference.len());
    for (k, (b, r)) in batched.iter().zip(reference).enumerate() {
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].shape,
            [1, 2],
            "request {k}: one row, the padding never shows"
        );
        let (b, r) = (b[0].data.as_f32().unwrap(), r[0].data.as_f32().unwrap());
        for (x, y) in b.iter().zip(r) {
            assert!((x - y).abs() < 1e-4, "request {k}: {b:?} vs {r:?}");
        }
    }
}

#[test]
fn batched_outputs_equal_unbatched_ones_on_a_dynamic_batch_model() {
    let images: Vec<Tensors> = (1..=7).map(image).collect();
    let reference = unbatched(&images);
    // Distinct inputs give distinct outputs: a mix-up would show.
    assert_ne!(reference[0][0].data, reference[1][0].data);
    let (out, sizes) = batched(&cls(), &images, 8);
    assert_eq!(
        sizes,
        [1, 7],
        "the held request alone, then the seven queued behind it"
    );
    assert_same(&out, &reference);
}

#[test]
fn a_fixed_batch_model_pads_a_partial_batch_and_splits_it_back() {
    let images: Vec<Tensors> = (1..=6).map(image).collect();
    let reference = unbatched(&images);
    let fixed = cls().reshape("x", [4, 3, 48, 192]);
    let (out, sizes) = batched(&fixed, &images, 4);
    assert_eq!(
        sizes,
        [1, 2, 4],
        "held alone (padded to 4), then 4, then 2 (padded)"
    );
    assert_same(&out, &reference);
}

#[test]
fn the_batching_config_file_builds_a_pool_that_batches() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cfg =
        accelpool::PoolConfig::from_yaml_file(dir.join("config/ppocr_cls_batching.yaml")).unwrap();
    // Paths in the file are relative to the project root.
    for g in &mut cfg.groups {
        if let Some(ov) = g.backend.as_mut().and_then(|b| b.openvino.as_mut()) {
            ov.model = dir.join(&ov.model);
        }
    }
    let pool = accelpool::PoolBuilder::from_openvino_config(cfg)
        .unwrap()
        .build()
        .unwrap();
    let images: Vec<Tensors> = (1..=20).map(image).collect();
    let handles: Vec<_> = images
        .iter()
        .map(|img| pool.submit(Request::new(img.clone())).unwrap())
        .collect();
    for h in handles {
        let out = h.wait().unwrap();
        assert_eq!(out[0].shape, [1, 2]);
    }
    let stats = pool.shutdown(LONG).stats;
    let b = stats.groups[0].batching.clone().unwrap();
    assert_eq!((b.max_batch_size, b.requests), (8, 20));
    assert_accounting(&stats);
}
