//! Priority isolation: latency of Urgent requests while Low requests keep
//! every worker busy. Workers do not preempt a running call, so an Urgent
//! request waits at most for the call in progress: the target is a queue
//! wait under one service time plus 100 us at p99.
//!
//!     cargo bench --bench priority_isolation
//!
//! Writes `bench-results/priority_isolation.json`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::{GroupConfig, Pool, Priority, Request, SessionError, WorkerInfo};
use serde_json::json;

const SERVICE: Duration = Duration::from_micros(200);

fn busy(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// `{ level: [[upper bound in seconds, samples in that bucket], ...] }`
/// of the queue wait, all groups together.
fn buckets(stats: &accelpool::PoolStats) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for p in Priority::ALL {
        let mut counts = [0u64; accelpool::LATENCY_BUCKETS.len() + 1];
        for g in &stats.groups {
            for (c, n) in counts
                .iter_mut()
                .zip(g.histograms.queue_wait[p.index()].counts)
            {
                *c += n;
            }
        }
        let bounds = accelpool::LATENCY_BUCKETS
            .iter()
            .map(|&b| json!(b))
            .chain([json!("+Inf")]);
        let pairs: Vec<_> = bounds.zip(counts).map(|(b, n)| json!([b, n])).collect();
        out.insert(p.to_string(), json!(pairs));
    }
    serde_json::Value::Object(out)
}

fn main() {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = Arc::new(
        Pool::<(), Instant>::builder()
            .group(
                GroupConfig::new("cpu").workers(workers).capacity(256),
                |_: &WorkerInfo| {
                    Ok(|_: &()| -> Result<Instant, SessionError> {
                        let started = Instant::now();
                        busy(SERVICE);
                        Ok(started)
                    })
                },
            )
            .build()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Flooders keep the Low queue full, so every worker is always busy.
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = pool.submit_timeout(
                        Request::new(()).priority(Priority::Low),
                        Duration::from_millis(50),
                    );
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let run_for = common::pick(Duration::from_secs(3), Duration::from_secs(15));
    let started = Instant::now();
    let (mut waits, mut e2e) = (Vec::new(), Vec::new());
    while started.elapsed() < run_for {
        let submitted = Instant::now();
        let began = pool
            .submit(Request::new(()).priority(Priority::Urgent))
            .unwrap()
            .wait()
            .unwrap();
        e2e.push(submitted.elapsed());
        waits.push(began.saturating_duration_since(submitted));
        std::thread::sleep(Duration::from_micros(500));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let low_depth = pool.stats().groups[0].queue_depth.low;
    let report = pool.shutdown(Duration::from_secs(30));
    let (w, e) = (common::summary(&mut waits), common::summary(&mut e2e));
    let p99_wait = w["p99_ns"].as_u64().unwrap();
    let target = (SERVICE + Duration::from_micros(100)).as_nanos() as u64;
    common::write(
        "priority_isolation",
        json!({
            "workers": workers,
            "service_us": SERVICE.as_micros() as u64,
            "urgent_queue_wait": w,
            "urgent_end_to_end": e,
            "low_completed_meanwhile": report.stats.counts.completed - waits.len() as u64,
            "low_queue_depth_at_end": low_depth,
            "target_p99_wait_ns": target,
            "p99_wait_within_target": p99_wait <= target,
            // Queue wait by priority, from the pool's histograms: the
            // distribution `scripts/bench.sh` plots.
            "queue_wait_buckets": buckets(&report.stats),
        }),
    );
}
