//! The cost of a scrape: rendering the Prometheus exposition of a pool with
//! 3 groups and 16 workers each (every latency histogram filled), p50 and
//! p99 over many renders, and the size of the text. Writes
//! `bench-results/metrics.json`.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use accelpool::{GroupConfig, Pool, Priority, Request, SessionError, WorkerInfo};
use serde_json::json;

fn main() {
    let mut builder = Pool::<u64, u64>::builder();
    for (i, name) in ["npu", "gpu", "cpu"].into_iter().enumerate() {
        builder = builder.group(
            GroupConfig::new(name)
                .workers(16)
                .pin(false)
                .priority(3 - i as u8),
            |_: &WorkerInfo| Ok(|x: &u64| -> Result<u64, SessionError> { Ok(*x) }),
        );
    }
    let pool = builder.build().unwrap();
    // Traffic on every group and level, so every series has samples.
    let handles: Vec<_> = (0..20_000u64)
        .map(|i| {
            let p = Priority::ALL[(i % 4) as usize];
            let g = ["npu", "gpu", "cpu"][(i % 3) as usize];
            pool.submit(Request::new(i).priority(p).group(g)).unwrap()
        })
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    let text = pool.prometheus();
    let renders = common::pick(200, 2000);
    let mut times = common::time_each(renders, Duration::ZERO, |_| {
        std::hint::black_box(pool.prometheus());
    });
    let render = common::summary(&mut times);
    let mut stats_only = common::time_each(renders, Duration::ZERO, |_| {
        std::hint::black_box(pool.stats());
    });
    let stats = common::summary(&mut stats_only);
    common::write(
        "metrics",
        json!({
            "groups": 3, "workers_per_group": 16,
            "scrape": render,
            "stats_snapshot_alone": stats,
            "exposition_bytes": text.len(),
            "series": text.lines().filter(|l| !l.starts_with('#')).count(),
        }),
    );
    pool.shutdown(Duration::from_secs(10));
}
