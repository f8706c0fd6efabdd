//! Throughput: N no-op requests across every worker, against rayon running
//! the same N tasks (`rayon::scope` with one spawn per task). The pool is
//! fed two ways: `submit` in a loop, and one `submit_batch`.
//!
//!     cargo bench --bench throughput
//!
//! Writes `bench-results/throughput.json`.

mod common;

use std::time::{Duration, Instant};

use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
use criterion::{Criterion, Throughput};
use serde_json::json;

const N: u64 = 10_000;

fn main() {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = Pool::<u64, u64>::builder()
        .group(
            GroupConfig::new("cpu")
                .workers(workers)
                .capacity(4096)
                .spin_before_park(Duration::from_micros(200)),
            |_: &WorkerInfo| Ok(|x: &u64| -> Result<u64, SessionError> { Ok(x.wrapping_mul(3)) }),
        )
        .build()
        .unwrap();
    let run_pool = || {
        let handles: Vec<_> = (0..N)
            .map(|i| pool.submit(Request::new(i)).unwrap())
            .collect();
        handles
            .into_iter()
            .map(|h| h.wait().unwrap())
            .fold(0u64, u64::wrapping_add)
    };
    let run_pool_batch = || {
        pool.submit_batch((0..N).map(Request::new))
            .into_iter()
            .map(|h| h.unwrap().wait().unwrap())
            .fold(0u64, u64::wrapping_add)
    };
    let run_rayon = || {
        let out: Vec<_> = (0..N)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        rayon::scope(|s| {
            for (i, slot) in out.iter().enumerate() {
                s.spawn(move |_| {
                    slot.store(
                        (i as u64).wrapping_mul(3),
                        std::sync::atomic::Ordering::Relaxed,
                    )
                });
            }
        });
        out.iter()
            .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    };
    assert_eq!(run_pool(), run_rayon());
    assert_eq!(run_pool_batch(), run_rayon());

    let mut c = Criterion::default()
        .warm_up_time(common::pick(
            Duration::from_millis(300),
            Duration::from_secs(2),
        ))
        .measurement_time(common::pick(Duration::from_secs(2), Duration::from_secs(8)))
        .sample_size(common::pick(10, 30))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("throughput");
        g.throughput(Throughput::Elements(N));
        g.bench_function("pool", |b| b.iter(run_pool));
        g.bench_function("pool_submit_batch", |b| b.iter(run_pool_batch));
        g.bench_function("rayon_scope", |b| b.iter(run_rayon));
        g.finish();
    }
    c.final_summary();

    let rate = |f: &dyn Fn() -> u64| {
        let rounds = common::pick(20, 100);
        let t = Instant::now();
        for _ in 0..rounds {
            criterion::black_box(f());
        }
        (N * rounds) as f64 / t.elapsed().as_secs_f64()
    };
    let pool_rps = rate(&run_pool);
    let batch_rps = rate(&run_pool_batch);
    let rayon_rps = rate(&run_rayon);
    common::write(
        "throughput",
        json!({
            "workers": workers,
            "requests_per_round": N,
            "pool_requests_per_s": pool_rps.round(),
            "rayon_tasks_per_s": rayon_rps.round(),
            "ratio_pool_vs_rayon": (pool_rps / rayon_rps * 1000.0).round() / 1000.0,
            "pool_submit_batch_requests_per_s": batch_rps.round(),
            "ratio_submit_batch_vs_rayon": (batch_rps / rayon_rps * 1000.0).round() / 1000.0,
            "ratio_submit_batch_vs_submit": (batch_rps / pool_rps * 1000.0).round() / 1000.0,
        }),
    );
}
