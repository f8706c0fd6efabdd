//! Breaker availability under noise: one group of 2 workers whose session
//! does ~20 µs of work and fails with a *transient* error at a fixed rate,
//! two submitters using `try_submit` as fast as they can, the default
//! `BreakerConfig`. For each failure rate: accepted requests per second,
//! and the share of time the breaker was not closed (sampled every 5 ms).
//! Then a dead device (100 % failures) in front of a healthy one: how many
//! calls it takes before the breaker opens, and where the next request goes.
//!
//!     cargo bench --bench breaker_availability
//!
//! Writes `bench-results/breaker_availability.json`. Goals: up to 30 %
//! failures, accepted throughput at least 0.9 x (1 - p) x the 0 % run and
//! the breaker closed at least 99 % of the time; at 100 %, the dead group
//! stops taking work within `minimum_calls` and the next request goes to
//! the healthy group at once.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::{
    BreakerConfig, BreakerMode, BreakerState, GroupConfig, Pool, Refusal, Request, RunContext,
    Session, SessionError, SessionFactory, WorkerInfo,
};
use serde_json::{json, Value};

const SERVICE: Duration = Duration::from_micros(20);

/// Sessions doing `SERVICE` of work and failing at rate `p`.
#[derive(Clone, Copy)]
struct Noisy(f64);

/// One such session, with its own PRNG.
struct NoisySession {
    p: f64,
    rng: u64,
}

impl SessionFactory<u64, u64> for Noisy {
    fn create(&self, info: &WorkerInfo) -> Result<Box<dyn Session<u64, u64>>, SessionError> {
        let rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((info.worker as u64 + 1) * 0x2545_F491_4F6C_DD1D);
        Ok(Box::new(NoisySession { p: self.0, rng }))
    }
}

impl Session<u64, u64> for NoisySession {
    fn run(&mut self, x: &u64, _: &RunContext<'_>) -> Result<u64, SessionError> {
        let t = Instant::now();
        while t.elapsed() < SERVICE {
            std::hint::spin_loop();
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if ((self.rng >> 11) as f64 / (1u64 << 53) as f64) < self.p {
            Err(SessionError::transient("injected"))
        } else {
            Ok(*x)
        }
    }
}

fn run_rate(p: f64, secs: Duration, breaker: BreakerConfig) -> Value {
    let pool = Arc::new(
        Pool::<u64, u64>::builder()
            .group(
                GroupConfig::new("npu").workers(2).breaker(breaker),
                Noisy(p),
            )
            .build()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let unavailable = Arc::new(AtomicU64::new(0));
    let submitters: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop, accepted, unavailable) = (
                pool.clone(),
                stop.clone(),
                accepted.clone(),
                unavailable.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match pool.try_submit(Request::new(1)) {
                        Ok(_) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if e.refusal() == &Refusal::Unavailable {
                                unavailable.fetch_add(1, Ordering::Relaxed);
                            }
                            std::thread::yield_now();
                        }
                    }
                }
            })
        })
        .collect();
    let (mut samples, mut not_closed) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < secs {
        std::thread::sleep(Duration::from_millis(5));
        samples += 1;
        if pool.stats().groups[0].breaker.state != BreakerState::Closed {
            not_closed += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for s in submitters {
        s.join().unwrap();
    }
    let stats = pool.stats();
    let b = &stats.groups[0].breaker;
    json!({
        "failure_rate": p,
        "accepted_per_s": (accepted.load(Ordering::Relaxed) as f64 / elapsed).round(),
        "not_closed_percent": (not_closed as f64 / samples.max(1) as f64 * 1000.0).round() / 10.0,
        "refused_unavailable": unavailable.load(Ordering::Relaxed),
        "transitions": b.transitions.len(),
        "overridden": b.overridden,
    })
}

/// A dead NPU in front of a healthy CPU group: calls until the NPU's
/// breaker opens, and the next request's group and round trip.
fn run_dead() -> Value {
    let pool = Pool::<u64, u64>::builder()
        .group(GroupConfig::new("npu").workers(2).priority(9), Noisy(1.0))
        .group(GroupConfig::new("cpu").workers(2).priority(1), Noisy(0.0))
        .build()
        .unwrap();
    let npu = |pool: &Pool<u64, u64>| pool.stats().groups[0].clone();
    let mut requests = 0u64;
    while npu(&pool).breaker.state == BreakerState::Closed {
        // Each fails on the NPU, is retried on the CPU, and completes.
        pool.submit(Request::new(requests)).unwrap().wait().unwrap();
        requests += 1;
    }
    let npu_calls = npu(&pool).counts.started;
    let t = Instant::now();
    pool.submit(Request::new(0)).unwrap().wait().unwrap();
    let next_round_trip = t.elapsed();
    let after = pool.stats();
    json!({
        "minimum_calls": BreakerConfig::default().minimum_calls,
        "npu_calls_before_open": npu_calls,
        "next_request_served_by_cpu": after.groups[0].counts.started == npu_calls,
        "next_request_round_trip_us": next_round_trip.as_secs_f64() * 1e6,
        "service_us": SERVICE.as_secs_f64() * 1e6,
    })
}

fn main() {
    let secs = common::pick(Duration::from_secs(2), Duration::from_secs(8));
    let runs: Vec<Value> = [0.0, 0.02, 0.06, 0.15, 0.30]
        .into_iter()
        .map(|p| run_rate(p, secs, BreakerConfig::default()))
        .collect();
    // The same load on the streak breaker (`mode: consecutive`, the 0.1
    // default), for comparison.
    let streak = BreakerConfig {
        mode: BreakerMode::Consecutive,
        max_backoff: Duration::from_secs(60),
        half_open_max_calls: 1,
        ..BreakerConfig::default()
    };
    let streak_runs: Vec<Value> = [0.06, 0.15]
        .into_iter()
        .map(|p| run_rate(p, secs, streak.clone()))
        .collect();
    let base = runs[0]["accepted_per_s"].as_f64().unwrap_or(1.0).max(1.0);
    let goals_met = runs.iter().all(|r| {
        let p = r["failure_rate"].as_f64().unwrap();
        r["accepted_per_s"].as_f64().unwrap() >= 0.9 * (1.0 - p) * base
            && r["not_closed_percent"].as_f64().unwrap() <= 1.0
    });
    let dead = run_dead();
    common::write(
        "breaker_availability",
        json!({
            "workers": 2,
            "seconds_per_rate": secs.as_secs_f64(),
            "rates": runs,
            "goals_met_up_to_30_percent": goals_met,
            "consecutive_mode_for_comparison": streak_runs,
            "dead_device": dead,
        }),
    );
}
