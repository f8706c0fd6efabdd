//! Deadline-aware admission on a saturated pool: the same open-loop load
//! (1.5x what the workers can serve, every request with the same deadline)
//! with admission off and on. Reports, for each, what completed in time,
//! what completed late (work done for a result past its deadline), what
//! expired in the queue and what was refused at submit; and, with admission
//! on, the estimate's error against the latency each accepted request had.
//!
//!     cargo bench --bench deadline_admission

mod common;

use std::time::{Duration, Instant};

use accelpool::{
    DeadlineAdmission, GroupConfig, Pool, Priority, Refusal, Request, SessionError, TaskError,
    WorkerInfo,
};
use serde_json::{json, Value};

/// Each call's service time (slept: the workers do not compete with the
/// submitter for the two cores).
const SERVICE: Duration = Duration::from_millis(1);
const WORKERS: usize = 2;
/// Every request's deadline from its submission.
const DEADLINE: Duration = Duration::from_millis(20);

fn pool(admission: bool) -> Pool<u32, Instant> {
    Pool::builder()
        .deadline_admission(DeadlineAdmission {
            enabled: admission,
            safety_factor: 1.0,
        })
        .group(
            GroupConfig::new("cpu")
                .workers(WORKERS)
                .capacity(4096)
                .pin(false),
            |_: &WorkerInfo| {
                Ok(|_: &u32| -> Result<Instant, SessionError> {
                    std::thread::sleep(SERVICE);
                    Ok(Instant::now())
                })
            },
        )
        .build()
        .expect("pool")
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let x = v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (x * 1000.0).round() / 1000.0
}

/// One run of `seconds` at `rate` requests per second.
fn run(admission: bool, rate: f64, seconds: f64) -> Value {
    let pool = pool(admission);
    // Measure the service time before the load starts.
    for i in 0..20 {
        pool.submit(Request::new(i)).unwrap().wait().unwrap();
    }
    let n = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut accepted = Vec::with_capacity(n as usize);
    let mut refused = 0u64;
    for i in 0..n {
        let due = start + interval * i as u32;
        while Instant::now() < due {
            std::thread::sleep(due - Instant::now());
        }
        let submitted = Instant::now();
        let estimate = pool.estimate(Priority::Normal);
        match pool.try_submit(Request::new(i as u32).timeout(DEADLINE)) {
            Ok(h) => accepted.push((h, submitted, estimate)),
            Err(e) => match e.refusal() {
                Refusal::DeadlineUnmeetable { .. } => refused += 1,
                other => panic!("refused for {other}"),
            },
        }
    }
    let (mut in_time, mut late, mut expired) = (0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    let mut bias = Vec::new();
    for (h, submitted, estimate) in accepted {
        match h.wait() {
            Ok(done) => {
                let latency = done.saturating_duration_since(submitted);
                if latency <= DEADLINE {
                    in_time += 1;
                } else {
                    late += 1;
                }
                if let Some(e) = estimate {
                    let (e, l) = (e.as_secs_f64(), latency.as_secs_f64());
                    errors.push((e - l).abs() / l);
                    bias.push(e / l);
                }
            }
            Err(TaskError::Expired) => expired += 1,
            Err(e) => panic!("request failed: {e}"),
        }
    }
    let stats = pool.shutdown(Duration::from_secs(10)).stats;
    assert_eq!(stats.refusals.deadline_unmeetable, refused);
    let missed = late + expired + refused;
    json!({
        "admission": admission,
        "submitted": n,
        "completed_in_time": in_time,
        "completed_late": late,
        "expired_in_queue": expired,
        "refused_at_submit": refused,
        "missed_deadline": missed,
        // Of the requests that did not get a result in time, the share the
        // caller learnt about at submit (and could send elsewhere at once).
        "share_of_misses_refused_at_submit": if missed == 0 { 0.0 } else { refused as f64 / missed as f64 },
        // Calls run for results past their deadline: work thrown away.
        "wasted_service_ms": late as f64 * SERVICE.as_secs_f64() * 1e3,
        "estimate_relative_error": {
            "p50": percentile(&mut errors.clone(), 0.5),
            "p90": percentile(&mut errors, 0.9),
        },
        "estimate_over_actual_p50": percentile(&mut bias, 0.5),
    })
}

fn main() {
    let seconds = common::pick(2.0, 6.0);
    let capacity = WORKERS as f64 / SERVICE.as_secs_f64();
    let rate = capacity * 1.5;
    let off = run(false, rate, seconds);
    let on = run(true, rate, seconds);
    common::write(
        "deadline_admission",
        json!({
            "service_ms": SERVICE.as_secs_f64() * 1e3,
            "workers": WORKERS,
            "deadline_ms": DEADLINE.as_secs_f64() * 1e3,
            "offered_per_s": rate,
            "capacity_per_s": capacity,
            "seconds": seconds,
            "off": off,
            "on": on,
        }),
    );
}
