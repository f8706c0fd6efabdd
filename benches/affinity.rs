//! Affinity: what it buys a session that keeps per-key state warm, and
//! what it costs the hot path.
//!
//! 1. Warm state: two workers; each session caches the state of its last
//!    four keys (a call costs 30 µs with the key's state cached, 300 µs
//!    without); four closed-loop submitters send requests over eight keys.
//!    Throughput, end-to-end p50/p99, the share of cold calls and the
//!    affinity hit rate with affinity off, on, and on with a 1 ms wait
//!    for a busy worker, in the same run.
//! 2. Cost: the no-op round trip (one submitter, one worker, keyed
//!    requests) with affinity off and on, alternating rounds; ratio on /
//!    off.
//!
//!     cargo bench --bench affinity

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use accelpool::{AffinityConfig, GroupConfig, Pool, Request, SessionError, WorkerInfo};
use serde_json::json;

const WARM: Duration = Duration::from_micros(30);
const COLD: Duration = Duration::from_micros(300);
const CACHED_KEYS: usize = 4;
const KEYS: u64 = 8;
const SUBMITTERS: u64 = 4;

fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn affinity(on: bool, max_wait: Duration) -> AffinityConfig {
    AffinityConfig {
        enabled: on,
        max_wait,
        ..Default::default()
    }
}

/// One run of the warm-state workload: `per_submitter` requests from each
/// submitter.
fn warm_state(cfg: AffinityConfig, per_submitter: u64) -> serde_json::Value {
    let cold = Arc::new(AtomicU64::new(0));
    let pool = {
        let cold = cold.clone();
        Arc::new(
            Pool::<u64, u64>::builder()
                .affinity(cfg)
                .group(GroupConfig::new("cpu").workers(2), move |_: &WorkerInfo| {
                    let cold = cold.clone();
                    let mut cache: VecDeque<u64> = VecDeque::new();
                    Ok(move |key: &u64| -> Result<u64, SessionError> {
                        if let Some(i) = cache.iter().position(|k| k == key) {
                            cache.remove(i);
                            spin(WARM);
                        } else {
                            cold.fetch_add(1, Ordering::Relaxed);
                            if cache.len() == CACHED_KEYS {
                                cache.pop_back();
                            }
                            spin(COLD);
                        }
                        cache.push_front(*key);
                        Ok(*key)
                    })
                })
                .build()
                .expect("pool"),
        )
    };
    let start = Arc::new(Barrier::new(SUBMITTERS as usize + 1));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|s| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (s + 1);
                let mut samples = Vec::with_capacity(per_submitter as usize);
                start.wait();
                for _ in 0..per_submitter {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let key = rng % KEYS;
                    let t = Instant::now();
                    pool.submit(Request::new(key).affinity(key))
                        .unwrap()
                        .wait()
                        .unwrap();
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    let mut samples: Vec<Duration> = submitters
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    let elapsed = t.elapsed();
    let stats = pool.shutdown(Duration::from_secs(30)).stats;
    let n = samples.len() as f64;
    let mut s = common::summary(&mut samples);
    s["throughput_per_s"] = json!(n / elapsed.as_secs_f64());
    s["cold_share"] = json!(cold.load(Ordering::Relaxed) as f64 / n);
    if let Some(a) = stats.groups[0].affinity {
        s["hit_rate"] = json!(a.hit_rate());
        s["stolen"] = json!(a.stolen);
    }
    s
}

/// p50 of `n` keyed no-op round trips, in nanoseconds.
fn round_trip_p50(on: bool, n: usize) -> f64 {
    let pool = Pool::<u64, u64>::builder()
        .affinity(affinity(on, Duration::ZERO))
        .group(GroupConfig::new("cpu").workers(1), |_: &WorkerInfo| {
            Ok(|x: &u64| -> Result<u64, SessionError> { Ok(*x) })
        })
        .build()
        .expect("pool");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        pool.submit(Request::new(i).affinity(i % 8))
            .unwrap()
            .wait()
            .unwrap();
        samples.push(t.elapsed());
    }
    common::summary(&mut samples)["p50_ns"]
        .as_f64()
        .unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let per_submitter = common::pick(1_000, 5_000);
    let off = warm_state(affinity(false, Duration::ZERO), per_submitter);
    let on = warm_state(affinity(true, Duration::ZERO), per_submitter);
    let waiting = warm_state(affinity(true, Duration::from_millis(1)), per_submitter);
    let rounds = common::pick(3, 5);
    let n_rt = common::pick(20_000, 100_000);
    let (mut ratios, mut rt_off, mut rt_on) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (a, b) = (round_trip_p50(false, n_rt), round_trip_p50(true, n_rt));
        ratios.push(b / a);
        rt_off.push(a);
        rt_on.push(b);
    }
    let tp = |v: &serde_json::Value| v["throughput_per_s"].as_f64().unwrap_or(0.0);
    common::write(
        "affinity",
        json!({
            "warm_state": {
                "warm_us": 30, "cold_us": 300, "cached_keys_per_worker": CACHED_KEYS,
                "keys": KEYS, "workers": 2, "submitters": SUBMITTERS,
                "off": off,
                "on": on,
                "on_max_wait_1ms": waiting,
                "ratio_throughput_on_vs_off": (tp(&on) / tp(&off) * 1000.0).round() / 1000.0,
                "ratio_throughput_on_max_wait_vs_off": (tp(&waiting) / tp(&off) * 1000.0).round() / 1000.0,
                "ratio_p99_off_vs_on": common::ratio(&off, &on, "p99_ns"),
            },
            "rounds": rounds,
            "round_trip_p50_ns": { "off": median(rt_off), "on": median(rt_on) },
            "ratio_round_trip_p50_on_vs_off": (median(ratios) * 1000.0).round() / 1000.0,
        }),
    );
}
