//! Draws `scripts/bench.sh`'s figures as SVG plots from its JSON
//! (`bench-results/*.json`) into `bench-results/plots/`: queue wait per
//! priority under a low-priority flood, batched throughput against
//! unbatched and `benchmark_app`, and the pool against `benchmark_app` on
//! the classifier. A figure whose JSON is missing is skipped, and said so.
//!
//!     cargo run --release --example bench_plots -- [bench-results]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

#[path = "plots/mod.rs"]
mod plots;

fn read(dir: &Path, name: &str) -> Option<Value> {
    let path = dir.join(format!("{name}.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).ok(),
        Err(_) => {
            println!("skipped {name}: no {}", path.display());
            None
        }
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let out = dir.join("plots");
    std::fs::create_dir_all(&out)?;
    if let Some(p) = read(dir, "priority_isolation") {
        let series: Vec<plots::Series> = ["urgent", "high", "normal", "low"]
            .iter()
            .filter_map(|level| {
                let pairs = p["queue_wait_buckets"][*level].as_array()?;
                let buckets = pairs.iter().map(|pair| {
                    let le = pair[0].as_f64().unwrap_or(f64::INFINITY);
                    (le, pair[1].as_u64().unwrap_or(0))
                });
                plots::distribution(level, buckets)
            })
            .collect();
        let path = out.join("priority_isolation.svg");
        plots::lines(
            &path,
            "Queue wait by priority while low-priority work floods the pool",
            "queue wait (ms, bucket upper bound)",
            "share of requests",
            &series,
            true,
        )?;
        println!("wrote {}", path.display());
    }
    if let Some(b) = read(dir, "batching") {
        let c = &b["cls"];
        let bars = vec![
            (
                "unbatched".to_owned(),
                num(&c["unbatched"]["requests_per_s"]),
            ),
            (
                "batched, fixed 8".to_owned(),
                num(&c["batched_fixed"]["requests_per_s"]),
            ),
            (
                "batched, dynamic".to_owned(),
                num(&c["batched_dynamic"]["requests_per_s"]),
            ),
            (
                "benchmark_app -b 8".to_owned(),
                num(&c["benchmark_app_async_b8"]["throughput_fps"]),
            ),
        ];
        let path = out.join("batching.svg");
        plots::bars(
            &path,
            "cls.onnx throughput by batching mode",
            "requests per second",
            &bars,
        )?;
        println!("wrote {}", path.display());
    }
    if let Some(i) = read(dir, "inference") {
        let bars = vec![
            (
                "accelpool".to_owned(),
                num(&i["accelpool"]["throughput_rps"]),
            ),
            (
                "benchmark_app sync".to_owned(),
                num(&i["benchmark_app_sync"]["throughput_fps"]),
            ),
            (
                "benchmark_app async".to_owned(),
                num(&i["benchmark_app_async"]["throughput_fps"]),
            ),
        ];
        let path = out.join("inference.svg");
        plots::bars(
            &path,
            "cls.onnx throughput: the pool against benchmark_app",
            "requests per second",
            &bars,
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench-results"));
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
