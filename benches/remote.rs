//! The remote group on loopback against the real server (MLServer serving
//! the PP-OCR classifier through OpenVINO's Python runtime, as in the
//! tests), in one run:
//!
//! 1. **Overhead**: the pool's remote group against the same calls made
//!    straight from Python with MLServer's own gRPC client
//!    (`benches/remote/client.py`), closed loop at concurrency 1 and 4:
//!    throughput ratio, p50 and p99 of the round trip.
//! 2. **Local + remote**: throughput of one pool with the local CPU group
//!    and the remote group side by side (same priority, least loaded)
//!    against each group alone, with the same clients (16 threads in a
//!    closed loop), and the CPU time each costs per request: the server's
//!    process (from `/proc`) against this one's. On one machine the
//!    server computes on the local group's cores, so "together" shows how
//!    the two share the machine, not what a fleet of other machines adds.
//!
//!     ./scripts/setup.sh --server && cargo bench --features remote --bench remote
//!
//! Writes `bench-results/remote.json`.

mod common;
#[path = "../tests/remote_server/mod.rs"]
mod remote_server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, Precision, Tensors};
use accelpool::remote::{RemoteConfig, RemoteFactory};
use accelpool::{GroupConfig, Pool, Request};
use remote_server::{cls_model, image};
use serde_json::{json, Value};

fn remote_group(server: &remote_server::Server, workers: usize) -> (GroupConfig, RemoteFactory) {
    let factory = RemoteFactory::new(&RemoteConfig::new([server.url()], "cls"))
        .expect("the test server answers");
    (
        GroupConfig::new("fleet")
            .workers(workers)
            .pin(false)
            .capacity(256),
        factory,
    )
}

/// The local CPU group: one worker, one inference thread.
fn local_group() -> (GroupConfig, OpenVinoFactory) {
    let cfg = OpenVinoConfig::new(cls_model(), "CPU")
        .precision(Precision::F32)
        .inference_threads(1);
    (
        GroupConfig::new("cpu").workers(1).capacity(256),
        OpenVinoFactory::new(&cfg).expect("OpenVINO and the model: run scripts/setup.sh"),
    )
}

/// Twenty calls, so sessions, connections and caches are warm before a
/// measure.
fn warm(pool: &Pool<Tensors, Tensors>) {
    for _ in 0..20 {
        pool.submit(Request::new(image(0))).unwrap().wait().unwrap();
    }
}

/// Closed loop: `concurrency` threads each submit one request and wait
/// for it, for `seconds`.
fn closed_loop(pool: &Arc<Pool<Tensors, Tensors>>, concurrency: usize, seconds: f64) -> Value {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let pool = Arc::clone(pool);
            std::thread::spawn(move || {
                let input = image(0);
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    pool.submit(Request::new(input.clone()))
                        .unwrap()
                        .wait()
                        .unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    let mut s = common::summary(&mut lat);
    s["throughput_rps"] = json!((lat.len() as f64 / elapsed * 10.0).round() / 10.0);
    s
}

/// [`closed_loop`] on a warmed `pool`, with how many requests each group
/// completed and the CPU time per request of this process and of the
/// server (`server_pid`).
fn measured(
    pool: Pool<Tensors, Tensors>,
    concurrency: usize,
    seconds: f64,
    server_pid: u32,
) -> Value {
    let pool = Arc::new(pool);
    warm(&pool);
    let before = pool.stats();
    let mut s = with_cpu(server_pid, || closed_loop(&pool, concurrency, seconds));
    let after = pool.stats();
    let by_group: serde_json::Map<String, Value> = after
        .groups
        .iter()
        .zip(&before.groups)
        .map(|(g, b)| {
            (
                g.name.clone(),
                json!(g.counts.completed - b.counts.completed),
            )
        })
        .collect();
    s["completed_by_group"] = json!(by_group);
    s
}

/// MLServer's own Python client, closed loop, in the venv the server runs
/// from.
fn python_client(server: &remote_server::Server, concurrency: usize, seconds: f64) -> Value {
    let python = accelpool::openvino::library::setup_home()
        .expect("HOME or ACCELPOOL_HOME")
        .join("venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/remote/client.py");
    let out = Command::new(python)
        .arg(script)
        .args(["--target", &format!("127.0.0.1:{}", server.grpc)])
        .args(["--model", "cls"])
        .args(["--seconds", &seconds.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .output()
        .expect("running the Python client");
    assert!(
        out.status.success(),
        "the Python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the Python client's JSON")
}

fn main() {
    let seconds = common::pick(3.0, 10.0);
    let rounds = common::pick(1, 3);
    let server = remote_server::Server::start(&cls_model(), "cls");
    let pid = server.pid().expect("the server runs");

    // 1. Overhead against the protocol's own Python client, alternating.
    let mut overhead = serde_json::Map::new();
    for concurrency in [1usize, 4] {
        let pool = {
            let (g, f) = remote_group(&server, concurrency);
            Arc::new(Pool::builder().group(g, f).build().unwrap())
        };
        warm(&pool);
        let mut runs = Vec::new();
        for round in 0..rounds {
            // Which goes first alternates, so neither always meets a
            // server the other has just warmed.
            let (py, ours) = if round % 2 == 0 {
                let py = python_client(&server, concurrency, seconds);
                (
                    py,
                    with_cpu(pid, || closed_loop(&pool, concurrency, seconds)),
                )
            } else {
                let ours = with_cpu(pid, || closed_loop(&pool, concurrency, seconds));
                (python_client(&server, concurrency, seconds), ours)
            };
            runs.push(json!({
                "python_client": py,
                "remote_group": ours,
                "throughput_ratio": common::ratio(&ours, &py, "throughput_rps"),
                "client_cpu_ratio": common::ratio(&ours, &py, "cpu_ms_per_request_here"),
                "p50_ratio": common::ratio(&ours, &py, "p50_ns"),
                "p99_ratio": common::ratio(&ours, &py, "p99_ns"),
            }));
        }
        overhead.insert(format!("concurrency_{concurrency}"), json!(runs));
    }

    // 2. Local and remote together against each alone.
    let together = together(&server, seconds);
    common::write(
        "remote",
        json!({
            "seconds_per_run": seconds,
            "overhead": overhead,
            "together": together,
        }),
    );
}

/// CPU seconds process `pid` has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // utime and stime are the 14th and 15th fields, 12th and 13th after `)`.
    (ticks(11) + ticks(12)) / per_second
}

/// Runs `f`, adding to its figures the CPU milliseconds per completed
/// request of this process and of the server.
fn with_cpu(server_pid: u32, f: impl FnOnce() -> Value) -> Value {
    let me = std::process::id();
    let (a, b) = (cpu_seconds(me), cpu_seconds(server_pid));
    let mut v = f();
    let (a, b) = (cpu_seconds(me) - a, cpu_seconds(server_pid) - b);
    let n = v["count"].as_f64().unwrap_or(1.0).max(1.0);
    v["cpu_ms_per_request_here"] = json!((a / n * 1e5).round() / 100.0);
    v["cpu_ms_per_request_server"] = json!((b / n * 1e5).round() / 100.0);
    v
}

/// Throughput of the local group alone, the remote group alone, and both
/// in one pool (same priority, least loaded), each under `CLIENTS`
/// closed-loop clients.
fn together(server: &remote_server::Server, seconds: f64) -> Value {
    const CLIENTS: usize = 16;
    let pid = server.pid().expect("the server runs");
    let local = {
        let (g, f) = local_group();
        measured(
            Pool::builder().group(g, f).build().unwrap(),
            CLIENTS,
            seconds,
            pid,
        )
    };
    let remote = {
        let (g, f) = remote_group(server, 4);
        measured(
            Pool::builder().group(g, f).build().unwrap(),
            CLIENTS,
            seconds,
            pid,
        )
    };
    let both = {
        let (lg, lf) = local_group();
        let (rg, rf) = remote_group(server, 4);
        let pool = Pool::builder()
            .group(lg.priority(5), lf)
            .group(rg.priority(5), rf)
            .build()
            .unwrap();
        measured(pool, CLIENTS, seconds, pid)
    };
    let rps = |v: &Value| v["throughput_rps"].as_f64().unwrap_or(0.0);
    let sum = rps(&local) + rps(&remote);
    json!({
        "clients": CLIENTS,
        "local_alone": local,
        "remote_alone": remote,
        "together": both,
        "together_over_local": common::ratio(&both, &local, "throughput_rps"),
        "together_over_remote": common::ratio(&both, &remote, "throughput_rps"),
        "together_over_sum": (rps(&both) / sum * 1000.0).round() / 1000.0,
    })
}
