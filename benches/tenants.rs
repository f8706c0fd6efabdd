//! Tenant fairness: what it costs the hot path, and what it buys a quiet
//! tenant while another floods the same level.
//!
//! 1. Cost: the no-op round trip (one submitter, one worker) and no-op
//!    throughput (one submitter, two workers) with fairness off and on,
//!    alternating rounds in the same run; ratios on / off.
//! 2. Isolation: one worker serving 200 µs calls; a noisy tenant floods the
//!    `normal` level with `try_submit` while a quiet tenant of the same
//!    level submits one request at a time. The quiet tenant's queue wait
//!    (submit to the start of its call) and end-to-end latency (p50, p99)
//!    with fairness off and on.
//!
//!     cargo bench --bench tenants

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::{GroupConfig, Pool, Request, SessionError, TenantsConfig, WorkerInfo};
use serde_json::json;

fn tenants(on: bool) -> TenantsConfig {
    TenantsConfig {
        enabled: on,
        ..Default::default()
    }
}

fn noop_pool(on: bool, workers: usize) -> Pool<u64, u64> {
    Pool::builder()
        .tenants(tenants(on))
        .group(
            GroupConfig::new("cpu").workers(workers).capacity(4096),
            |_: &WorkerInfo| Ok(|x: &u64| -> Result<u64, SessionError> { Ok(*x) }),
        )
        .build()
        .expect("pool")
}

/// p50 of `n` round trips, in nanoseconds.
fn round_trip_p50(on: bool, n: usize) -> f64 {
    let pool = noop_pool(on, 1);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        let r = Request::new(i).tenant(if i % 2 == 0 { "a" } else { "b" });
        pool.submit(r).unwrap().wait().unwrap();
        samples.push(t.elapsed());
    }
    common::summary(&mut samples)["p50_ns"]
        .as_f64()
        .unwrap_or(0.0)
}

/// Requests per second through two workers.
fn throughput(on: bool, n: u64) -> f64 {
    let pool = noop_pool(on, 2);
    let t = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let r = Request::new(i).tenant(if i % 2 == 0 { "a" } else { "b" });
            pool.submit(r).unwrap()
        })
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The quiet tenant's latencies while the noisy one floods.
fn isolation(on: bool, quiet_requests: usize) -> serde_json::Value {
    const SERVICE: Duration = Duration::from_micros(200);
    let epoch = Instant::now();
    let pool = Arc::new(
        Pool::<u64, u64>::builder()
            .tenants(tenants(on))
            .group(
                GroupConfig::new("cpu").workers(1).capacity(1024),
                move |_: &WorkerInfo| {
                    // Answers with when the call started, in nanoseconds
                    // after `epoch`: the quiet tenant's queue wait.
                    Ok(move |_: &u64| -> Result<u64, SessionError> {
                        let start = Instant::now();
                        let until = start + SERVICE;
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                        Ok(start.duration_since(epoch).as_nanos() as u64)
                    })
                },
            )
            .build()
            .expect("pool"),
    );
    let done = Arc::new(AtomicBool::new(false));
    let flood = {
        let (pool, done) = (pool.clone(), done.clone());
        std::thread::spawn(move || {
            let mut handles = Vec::new();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                match pool.try_submit(Request::new(i).tenant("noisy")) {
                    Ok(h) => handles.push(h),
                    Err(_) => std::thread::sleep(Duration::from_micros(100)),
                }
                i += 1;
            }
            handles.len()
        })
    };
    // Let the flood fill the level first.
    while pool.stats().groups[0].queue_depth.normal < 512 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut samples = Vec::with_capacity(quiet_requests);
    let mut waits = Vec::with_capacity(quiet_requests);
    for i in 0..quiet_requests as u64 {
        let t = Instant::now();
        let started = pool
            .submit(Request::new(i).tenant("quiet"))
            .unwrap()
            .wait()
            .unwrap();
        samples.push(t.elapsed());
        let submitted = t.duration_since(epoch).as_nanos() as u64;
        waits.push(Duration::from_nanos(started.saturating_sub(submitted)));
    }
    done.store(true, Ordering::Relaxed);
    let noisy = flood.join().unwrap();
    pool.shutdown(Duration::from_secs(30));
    let mut s = common::summary(&mut samples);
    s["noisy_accepted"] = json!(noisy);
    s["queue_wait"] = common::summary(&mut waits);
    s
}

fn main() {
    let rounds = common::pick(3, 5);
    let (n_rt, n_tp) = (common::pick(20_000, 100_000), common::pick(50_000, 200_000));
    let (mut rt, mut tp) = (Vec::new(), Vec::new());
    let (mut rt_off, mut rt_on, mut tp_off, mut tp_on) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (off, on) = (round_trip_p50(false, n_rt), round_trip_p50(true, n_rt));
        rt.push(on / off);
        rt_off.push(off);
        rt_on.push(on);
        let (off, on) = (throughput(false, n_tp), throughput(true, n_tp));
        tp.push(on / off);
        tp_off.push(off);
        tp_on.push(on);
    }
    let quiet = common::pick(200, 1000);
    let off = isolation(false, quiet);
    let on = isolation(true, quiet);
    common::write(
        "tenants",
        json!({
            "rounds": rounds,
            "round_trip_p50_ns": { "off": median(rt_off), "on": median(rt_on) },
            "ratio_round_trip_p50_on_vs_off": (median(rt) * 1000.0).round() / 1000.0,
            "throughput_per_s": { "off": median(tp_off), "on": median(tp_on) },
            "ratio_throughput_on_vs_off": (median(tp) * 1000.0).round() / 1000.0,
            "isolation": {
                "service_us": 200,
                "quiet_end_to_end_fairness_off": off,
                "quiet_end_to_end_fairness_on": on,
                "ratio_quiet_p99_off_vs_on": common::ratio(&off, &on, "p99_ns"),
                "ratio_quiet_queue_wait_p99_off_vs_on":
                    common::ratio(&off["queue_wait"], &on["queue_wait"], "p99_ns"),
            },
        }),
    );
}
