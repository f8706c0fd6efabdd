//! Shared by the benchmarks: quick mode, JSON output, percentiles, and the
//! raw-channel baseline (a pinned echo thread with the pool's own
//! spin-then-park receive).
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::{json, Value};

/// Loopback ports for the servers a benchmark starts (the remote one's).
#[path = "../../tests/common/ports.rs"]
pub mod ports;

/// `ACCELPOOL_BENCH_QUICK=1`: shorter runs (the whole suite in under two minutes).
pub fn quick() -> bool {
    std::env::var("ACCELPOOL_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// Picks the quick or the full value.
pub fn pick<T>(quick_value: T, full_value: T) -> T {
    if quick() {
        quick_value
    } else {
        full_value
    }
}

/// Where figures go: `ACCELPOOL_BENCH_OUT`, default `bench-results/` in the crate.
pub fn out_dir() -> PathBuf {
    std::env::var_os("ACCELPOOL_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-results"))
}

/// Writes one benchmark's figures as `<out>/<name>.json` and prints them.
pub fn write(name: &str, value: Value) {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("create the bench output folder");
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&value).unwrap();
    std::fs::write(&path, &text).expect("write bench figures");
    println!("{name}: {text}\n(written to {})", path.display());
}

/// Percentiles of samples, in nanoseconds.
pub fn summary(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let n = samples.len().max(1);
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)].as_nanos() as u64;
    let mean = samples.iter().map(|d| d.as_nanos()).sum::<u128>() / n as u128;
    json!({ "count": samples.len(), "p50_ns": at(0.50), "p99_ns": at(0.99), "mean_ns": mean as u64 })
}

/// The ratio `a / b` of one field of two summaries.
pub fn ratio(a: &Value, b: &Value, field: &str) -> f64 {
    let (x, y) = (
        a[field].as_f64().unwrap_or(0.0),
        b[field].as_f64().unwrap_or(1.0),
    );
    (x / y * 1000.0).round() / 1000.0
}

/// The baseline: a thread pinned like a pool worker that echoes values back
/// over bounded crossbeam channels, receiving with the same protocol as a
/// worker (try, spin for the window, then block).
pub struct Echo {
    tx: Option<Sender<u64>>,
    rx: Receiver<u64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    pub fn start(spin: Duration) -> Self {
        let (req_tx, req_rx) = bounded::<u64>(1024);
        let (rep_tx, rep_rx) = bounded::<u64>(1024);
        let core = core_affinity::get_core_ids().and_then(|c| c.first().copied());
        let thread = std::thread::spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            loop {
                let v = match spin_recv(&req_rx, spin) {
                    Some(v) => v,
                    None => match req_rx.recv() {
                        Ok(v) => v,
                        Err(_) => return,
                    },
                };
                if rep_tx.send(v).is_err() {
                    return;
                }
            }
        });
        Self {
            tx: Some(req_tx),
            rx: rep_rx,
            thread: Some(thread),
        }
    }

    #[inline]
    pub fn round_trip(&self, v: u64) -> u64 {
        self.tx.as_ref().unwrap().send(v).unwrap();
        self.rx.recv().unwrap()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The worker's spin (see `src/exec/queue.rs`), on a plain channel.
fn spin_recv(rx: &Receiver<u64>, spin: Duration) -> Option<u64> {
    if let Ok(v) = rx.try_recv() {
        return Some(v);
    }
    if spin.is_zero() {
        return None;
    }
    let until = Instant::now() + spin;
    let mut i: u32 = 0;
    loop {
        if let Ok(v) = rx.try_recv() {
            return Some(v);
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(16) {
            if Instant::now() >= until {
                return None;
            }
            if i.is_multiple_of(128) {
                std::thread::yield_now();
            }
        }
        std::hint::spin_loop();
    }
}

/// Times `n` single round trips; `gap` of idle time (not timed) before each,
/// so that with no spin window the receiver is parked every time.
pub fn time_each(n: usize, gap: Duration, mut f: impl FnMut(u64)) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let t = Instant::now();
        f(i as u64);
        samples.push(t.elapsed());
    }
    samples
}

/// Runs the setup's `benchmark_app` on `model` with `shape` (`x[1,3,48,192]`)
/// on the CPU with the throughput hint, and reads its throughput and
/// median latency.
#[cfg(feature = "openvino")]
pub fn benchmark_app(model: &std::path::Path, shape: &str, args: &[&str], seconds: u64) -> Value {
    let exe = accelpool::openvino::library::setup_home()
        .expect("HOME or ACCELPOOL_HOME, absolute, to find the setup's benchmark_app")
        .join("venv/bin/benchmark_app");
    let mut cmd = std::process::Command::new(&exe);
    cmd.args([
        "-m",
        model.to_str().unwrap(),
        "-d",
        "CPU",
        "-shape",
        shape,
        "-hint",
        "throughput",
    ])
    .args(args)
    .args(["-t", &seconds.to_string()]);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{} not runnable ({e}): run scripts/setup.sh", exe.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |key: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.contains(key))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let median_ms = text.lines().find(|l| l.contains("Median:")).map(|l| {
        let v: f64 = l
            .split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if l.contains(" us") {
            v / 1e3
        } else {
            v
        }
    });
    json!({
        "command": format!("benchmark_app {} -t {seconds}", args.join(" ")),
        "throughput_fps": find("Throughput:"),
        "median_ms": median_ms,
    })
}
