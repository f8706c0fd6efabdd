//! Dynamic batching on real models, against the same pool unbatched and
//! against OpenVINO's `benchmark_app -b 8`, in the same run:
//!
//! - throughput on the PP-OCR direction classifier (`cls.onnx`,
//!   `x[1,3,48,192]`, CPU, one stream per core): unbatched (a worker per
//!   stream), batched (two workers per stream) with the model
//!   compiled for a fixed batch of 8 (partial batches padded), and batched
//!   on the model's dynamic batch dimension;
//! - latency at light load (one request at a time, alternating between the
//!   unbatched and the batched pool): what batching adds;
//! - Urgent requests while Low ones flood the batched pool: their wait;
//! - the same throughput on the recogniser (`rec.onnx`, `x[1,3,48,320]`),
//!   which is compute-bound and gains little.
//!
//!     ./scripts/setup.sh && cargo bench --bench batching
//!
//! Writes `bench-results/batching.json`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, PerformanceHint, Tensor};
use accelpool::{BatchingConfig, GroupConfig, Pool, Priority, Request};
use serde_json::{json, Value};

const MAX: u32 = 8;
/// Memory for the inputs made before each throughput run; past them the
/// submitter makes inputs as it goes.
const PREMADE_BYTES: usize = 2 << 30;

fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("models/ppocr/{name}.onnx"))
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Unbatched,
    /// Compiled for batches of `MAX`, partial batches padded.
    Fixed,
    /// The model's dynamic batch dimension.
    Dynamic,
}

fn pool(name: &str, shape: [usize; 4], mode: Mode) -> Arc<Pool<Vec<Tensor>, Vec<Tensor>>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One stream per core. A batching group gets two workers per stream:
    // while one copies a batch in or splits its outputs, the other's call
    // keeps the stream busy.
    let workers = if mode == Mode::Unbatched {
        cores
    } else {
        2 * cores
    };
    let mut cfg = OpenVinoConfig::new(model(name), "CPU")
        .hint(PerformanceHint::Throughput)
        .streams(cores as u32);
    let mut compiled = shape;
    cfg = match mode {
        Mode::Unbatched => cfg.reshape("x", shape),
        Mode::Fixed => {
            compiled[0] = MAX as usize;
            cfg.reshape("x", compiled)
        }
        Mode::Dynamic => cfg.warmup_shape("x", shape),
    };
    let batching = if mode == Mode::Unbatched {
        BatchingConfig::default()
    } else {
        BatchingConfig {
            max_batch_size: MAX,
            max_queue_delay: Duration::from_micros(200),
            preferred_batch_sizes: vec![MAX],
        }
    };
    Arc::new(
        Pool::builder()
            .group(
                GroupConfig::new("cpu")
                    .workers(workers)
                    .warmup(3)
                    .capacity(256)
                    .batching(batching),
                OpenVinoFactory::new(&cfg).expect("OpenVINO and the models: run scripts/setup.sh"),
            )
            .build()
            .unwrap(),
    )
}

fn input(shape: [usize; 4]) -> Vec<Tensor> {
    vec![Tensor::f32("x", shape, vec![0.25; shape.iter().product()])]
}

/// Requests per second with the queues kept full for `secs`. The inputs
/// are made before timing (as `benchmark_app` makes its tensors before it
/// runs), so the figure is the pool's, not the cost of building inputs.
fn throughput(
    pool: &Arc<Pool<Vec<Tensor>, Vec<Tensor>>>,
    shape: [usize; 4],
    secs: Duration,
) -> Value {
    let per_input = shape.iter().product::<usize>() * std::mem::size_of::<f32>();
    let ready: Vec<Vec<Tensor>> = (0..PREMADE_BYTES / per_input)
        .map(|_| input(shape))
        .collect();
    let mut ready = ready.into_iter();
    let (tx, rx) = crossbeam_channel::bounded::<accelpool::TaskHandle<Vec<Tensor>>>(512);
    let waiter = std::thread::spawn(move || {
        rx.into_iter()
            .map(|h| h.wait().is_ok())
            .filter(|ok| *ok)
            .count()
    });
    let started = Instant::now();
    while started.elapsed() < secs {
        let next = ready.next().unwrap_or_else(|| input(shape));
        tx.send(pool.submit(Request::new(next)).unwrap()).unwrap();
    }
    drop(tx);
    let done = waiter.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    drop(ready);
    let s = pool.stats();
    json!({
        "requests_per_s": (done as f64 / elapsed).round(),
        "mean_batch": s.groups[0].batching.as_ref().map(|b| (b.mean_size * 100.0).round() / 100.0),
        "service_p50_ms": s.latency.service.p50_us / 1e3,
    })
}

/// One request at a time, `n` to each pool, alternating between them so
/// both see the same machine: end-to-end latency of each.
fn light_load(
    pools: [&Pool<Vec<Tensor>, Vec<Tensor>>; 2],
    shape: [usize; 4],
    n: usize,
) -> [Value; 2] {
    let mut lat: [Vec<Duration>; 2] = Default::default();
    for _ in 0..n {
        for (pool, lat) in pools.iter().zip(&mut lat) {
            let t = Instant::now();
            pool.submit(Request::new(input(shape)))
                .unwrap()
                .wait()
                .unwrap();
            lat.push(t.elapsed());
        }
    }
    lat.map(|mut l| common::summary(&mut l))
}

/// Urgent requests, one at a time, while two threads flood Low.
fn urgent_under_flood(
    pool: &Arc<Pool<Vec<Tensor>, Vec<Tensor>>>,
    shape: [usize; 4],
    n: usize,
) -> Value {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = pool.submit_timeout(
                        Request::new(input(shape)).priority(Priority::Low),
                        Duration::from_millis(10),
                    );
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // the Low queue fills
    let mut lat: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            pool.submit(Request::new(input(shape)).priority(Priority::Urgent))
                .unwrap()
                .wait()
                .unwrap();
            t.elapsed()
        })
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flood {
        f.join().unwrap();
    }
    let service = pool.stats().latency.service;
    json!({
        "urgent_end_to_end": common::summary(&mut lat),
        "batch_service_p50_us": service.p50_us,
        "batch_service_p99_us": service.p99_us,
    })
}

fn ratio(a: &Value, b: &Value) -> f64 {
    let (a, b) = (
        a.as_f64().unwrap_or(0.0),
        b.as_f64().unwrap_or(1.0).max(1e-9),
    );
    (a / b * 1000.0).round() / 1000.0
}

fn main() {
    let secs = Duration::from_secs(common::pick(4, 10));
    let cls = [1, 3, 48, 192];
    let rec = [1, 3, 48, 320];

    let unbatched = pool("cls", cls, Mode::Unbatched);
    let cls_unbatched = throughput(&unbatched, cls, secs);
    let fixed = pool("cls", cls, Mode::Fixed);
    let cls_fixed = throughput(&fixed, cls, secs);
    let [light_unbatched, light_fixed] = light_load([&unbatched, &fixed], cls, 2000);
    drop(unbatched);
    let urgent = urgent_under_flood(&fixed, cls, 200);
    drop(fixed);
    let dynamic = pool("cls", cls, Mode::Dynamic);
    let cls_dynamic = throughput(&dynamic, cls, secs);
    drop(dynamic);
    let app_b8 = common::benchmark_app(
        &model("cls"),
        "x[1,3,48,192]",
        &["-api", "async", "-b", "8"],
        secs.as_secs(),
    );

    let rec_unbatched = throughput(&pool("rec", rec, Mode::Unbatched), rec, secs);
    let rec_fixed = throughput(&pool("rec", rec, Mode::Fixed), rec, secs);
    let rec_app_b8 = common::benchmark_app(
        &model("rec"),
        "x[1,3,48,320]",
        &["-api", "async", "-b", "8"],
        secs.as_secs(),
    );

    common::write(
        "batching",
        json!({
            "max_batch_size": MAX,
            "seconds": secs.as_secs(),
            "cls": {
                "unbatched": cls_unbatched,
                "batched_fixed": cls_fixed,
                "batched_dynamic": cls_dynamic,
                "benchmark_app_async_b8": app_b8,
                "ratio_fixed_vs_unbatched": ratio(&cls_fixed["requests_per_s"], &cls_unbatched["requests_per_s"]),
                "ratio_dynamic_vs_unbatched": ratio(&cls_dynamic["requests_per_s"], &cls_unbatched["requests_per_s"]),
                "ratio_fixed_vs_benchmark_app_b8": ratio(&cls_fixed["requests_per_s"], &app_b8["throughput_fps"]),
                "light_load_unbatched": light_unbatched,
                "light_load_fixed": light_fixed,
                "urgent_under_low_flood_fixed": urgent,
            },
            "rec": {
                "unbatched": rec_unbatched,
                "batched_fixed": rec_fixed,
                "benchmark_app_async_b8": rec_app_b8,
                "ratio_fixed_vs_unbatched": ratio(&rec_fixed["requests_per_s"], &rec_unbatched["requests_per_s"]),
            },
        }),
    );
}
