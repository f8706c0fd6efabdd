//! Inference: the pool on a real model against OpenVINO's own
//! `benchmark_app` from the same wheel, same model, shape and device, in
//! the same run: sync, and async with `-nireq` equal to the worker count.
//!
//!     ./scripts/setup.sh && cargo bench --bench inference
//!
//! Writes `bench-results/inference.json`.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, PerformanceHint, Tensor};
use accelpool::{GroupConfig, Pool, Request};
use serde_json::json;

const SHAPE: [usize; 4] = [1, 3, 48, 192];

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ppocr/cls.onnx")
}

fn main() {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seconds = common::pick(8, 20);
    let cfg = OpenVinoConfig::new(model(), "CPU")
        .reshape("x", SHAPE)
        .hint(PerformanceHint::Throughput)
        .streams(workers as u32);
    let pool = Arc::new(
        Pool::builder()
            .group(
                GroupConfig::new("cpu")
                    .workers(workers)
                    .warmup(5)
                    .capacity(64),
                OpenVinoFactory::new(&cfg).expect("OpenVINO and the model: run scripts/setup.sh"),
            )
            .build()
            .unwrap(),
    );
    let input: Vec<Tensor> = vec![Tensor::f32("x", SHAPE, vec![0.25; SHAPE.iter().product()])];
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // One submitter keeps the queues fed; handles are awaited by a second
    // thread so submission never waits on a result.
    let (tx, rx) = crossbeam_channel::bounded(256);
    let waiter = std::thread::spawn(move || {
        let mut lat = Vec::new();
        for (t, h) in rx {
            let t: Instant = t;
            let h: accelpool::TaskHandle<Vec<Tensor>> = h;
            h.wait().unwrap();
            lat.push(t.elapsed());
        }
        lat
    });
    {
        let (pool, stop) = (pool.clone(), stop.clone());
        let deadline = started + Duration::from_secs(seconds);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let h = pool.submit(Request::new(input.clone())).unwrap();
            tx.send((Instant::now(), h)).unwrap();
        }
    }
    drop(tx);
    let mut lat = waiter.join().unwrap();
    let elapsed = started.elapsed();
    let completed = lat.len();
    let service = pool.stats().latency.service;
    let ours = json!({
        "throughput_rps": (completed as f64 / elapsed.as_secs_f64()).round(),
        "end_to_end": common::summary(&mut lat),
        "service_p50_ms": service.p50_us / 1e3,
        "service_p99_ms": service.p99_us / 1e3,
    });
    drop(pool);

    let nireq = workers.to_string();
    let shape = "x[1,3,48,192]";
    let sync = common::benchmark_app(&model(), shape, &["-api", "sync"], seconds);
    let async_n = common::benchmark_app(
        &model(),
        shape,
        &["-api", "async", "-nireq", &nireq],
        seconds,
    );
    let best = [&sync, &async_n]
        .iter()
        .filter_map(|v| v["throughput_fps"].as_f64())
        .fold(0.0, f64::max);
    let ratio = ours["throughput_rps"].as_f64().unwrap() / best;
    common::write(
        "inference",
        json!({
            "model": "PP-OCR mobile v2.0 direction classifier (cls.onnx), x[1,3,48,192], CPU",
            "workers": workers,
            "seconds": seconds,
            "accelpool": ours,
            "benchmark_app_sync": sync,
            "benchmark_app_async": async_n,
            "ratio_vs_best_benchmark_app": (ratio * 1000.0).round() / 1000.0,
        }),
    );
}
