//! Dispatch latency: the round trip of a no-op request through the pool,
//! hot (the worker inside its spin window) and cold (the worker parked),
//! against a raw crossbeam bounded-channel round trip to a thread pinned and
//! spinning the same way, and against `rayon::spawn` plus a channel.
//!
//!     cargo bench --bench dispatch
//!
//! Criterion reports means; a second pass in the same process times single
//! round trips for p50/p99 and writes `bench-results/dispatch.json`.

mod common;

use std::time::{Duration, Instant};

use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
use criterion::Criterion;
use serde_json::json;

const HOT_SPIN: Duration = Duration::from_millis(2);
/// Idle time before each cold round trip: well past any spin, so the
/// receiver is parked.
const COLD_GAP: Duration = Duration::from_micros(200);

fn noop_pool(spin: Duration) -> Pool<u64, u64> {
    Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1).spin_before_park(spin),
            |_: &WorkerInfo| Ok(|x: &u64| -> Result<u64, SessionError> { Ok(*x) }),
        )
        .build()
        .unwrap()
}

/// Times `iters` round trips, each after an untimed idle gap.
fn cold(iters: u64, f: &dyn Fn(u64) -> u64) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        std::thread::sleep(COLD_GAP);
        let t = Instant::now();
        criterion::black_box(f(i));
        total += t.elapsed();
    }
    total
}

fn rayon_round_trip(i: u64) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded(1);
    rayon::spawn(move || tx.send(i).unwrap());
    rx.recv().unwrap()
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(common::pick(
            Duration::from_millis(300),
            Duration::from_secs(2),
        ))
        .measurement_time(common::pick(Duration::from_secs(1), Duration::from_secs(5)))
        .configure_from_args();
    let hot_pool = noop_pool(HOT_SPIN);
    let cold_pool = noop_pool(Duration::ZERO);
    let hot_echo = common::Echo::start(HOT_SPIN);
    let cold_echo = common::Echo::start(Duration::ZERO);
    {
        let mut g = c.benchmark_group("round_trip");
        g.bench_function("pool_hot", |b| {
            b.iter(|| hot_pool.submit(Request::new(1)).unwrap().wait().unwrap())
        });
        g.bench_function("channel_hot", |b| b.iter(|| hot_echo.round_trip(1)));
        g.bench_function("rayon_spawn", |b| b.iter(|| rayon_round_trip(1)));
        g.bench_function("pool_cold", |b| {
            b.iter_custom(|iters| {
                cold(iters, &|i| {
                    cold_pool.submit(Request::new(i)).unwrap().wait().unwrap()
                })
            })
        });
        g.bench_function("channel_cold", |b| {
            b.iter_custom(|iters| cold(iters, &|i| cold_echo.round_trip(i)))
        });
        g.finish();
    }
    c.final_summary();

    // Percentiles, same process, same threads.
    let n = common::pick(5_000, 50_000);
    let mut pool_hot = common::time_each(n, Duration::ZERO, |i| {
        hot_pool.submit(Request::new(i)).unwrap().wait().unwrap();
    });
    let mut chan_hot = common::time_each(n, Duration::ZERO, |i| {
        hot_echo.round_trip(i);
    });
    let mut rayon = common::time_each(n, Duration::ZERO, |i| {
        rayon_round_trip(i);
    });
    let n_cold = n / 5;
    let mut pool_cold = common::time_each(n_cold, COLD_GAP, |i| {
        cold_pool.submit(Request::new(i)).unwrap().wait().unwrap();
    });
    let mut chan_cold = common::time_each(n_cold, COLD_GAP, |i| {
        cold_echo.round_trip(i);
    });
    let (ph, ch, r, pc, cc) = (
        common::summary(&mut pool_hot),
        common::summary(&mut chan_hot),
        common::summary(&mut rayon),
        common::summary(&mut pool_cold),
        common::summary(&mut chan_cold),
    );
    common::write(
        "dispatch",
        json!({
            "pool_hot": ph, "channel_hot": ch, "rayon_spawn": r,
            "pool_cold": pc, "channel_cold": cc,
            "ratio_hot_p50_vs_channel": common::ratio(&ph, &ch, "p50_ns"),
            "ratio_hot_p99_vs_channel": common::ratio(&ph, &ch, "p99_ns"),
            "ratio_cold_p50_vs_channel": common::ratio(&pc, &cc, "p50_ns"),
            "ratio_hot_p50_vs_rayon": common::ratio(&ph, &r, "p50_ns"),
        }),
    );
}
