//! The Prometheus exposition (feature `metrics`, on by default) and its
//! endpoint: every counter of the snapshot appears with its value, the
//! histograms are cumulative and count what they should, `promtool check
//! metrics` accepts the text, the endpoint answers and survives bad
//! clients, and a real Prometheus server scrapes it.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelpool::metrics::server::MetricsServer;
use accelpool::metrics::{self, CONTENT_TYPE};
use accelpool::{
    GroupConfig, Health, Pool, PoolStats, Priority, Request, RetryPolicy, SessionError, WorkerInfo,
};
use common::{assert_accounting, eventually, Gate, LONG};

/// A pool whose session doubles its input, fails negative ones (-1
/// transiently, then it works; -2 permanently), and waits at the gate for
/// 1000.
fn pool(gate: Arc<Gate>) -> Pool<i64, i64> {
    Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1).pin(false).capacity(2),
            move |_: &WorkerInfo| {
                let gate = Arc::clone(&gate);
                let mut failed_once = false;
                Ok(move |x: &i64| -> Result<i64, SessionError> {
                    match *x {
                        -1 if !failed_once => {
                            failed_once = true;
                            Err(SessionError::transient("busy"))
                        }
                        -2 => Err(SessionError::permanent("bad input")),
                        1000 => {
                            gate.pass();
                            Ok(x * 2)
                        }
                        _ => Ok(x * 2),
                    }
                })
            },
        )
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap()
}

/// Drives `pool` through every outcome: completed (with a retry), dead
/// lettered, cancelled, expired, and refused (unknown group, full).
fn every_outcome(pool: &Pool<i64, i64>, gate: &Gate) {
    for x in 1..=5 {
        assert_eq!(pool.submit(Request::new(x)).unwrap().wait().unwrap(), 2 * x);
    }
    assert_eq!(pool.submit(Request::new(-1)).unwrap().wait().unwrap(), -2);
    assert!(pool.submit(Request::new(-2)).unwrap().wait().is_err());
    assert!(pool.try_submit(Request::new(1).group("npu")).is_err());
    // Hold the worker at the gate, then fill the `low` queue (capacity 2).
    let blocker = pool
        .submit(Request::new(1000).priority(Priority::Urgent))
        .unwrap();
    gate.wait_reached();
    let cancelled = pool
        .submit(Request::new(7).priority(Priority::Low))
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(1);
    let expiring = pool
        .submit(Request::new(8).priority(Priority::Low).deadline(deadline))
        .unwrap();
    assert!(pool
        .try_submit(Request::new(9).priority(Priority::Low))
        .is_err());
    assert!(cancelled.cancel());
    eventually("the deadline passed", || Instant::now() > deadline);
    gate.open_one();
    assert_eq!(blocker.wait().unwrap(), 2000);
    assert!(expiring.wait().is_err());
    eventually("every request resolved", || pool.stats().in_flight == 0);
}

/// The tests of this file run one at a time: one of them counts the
/// process's threads, which another test's pool would change.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `name{labels}` -> value, for every sample line.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn stats_and_text() -> (PoolStats, String, Pool<i64, i64>) {
    let gate = Arc::new(Gate::new());
    let pool = pool(Arc::clone(&gate));
    every_outcome(&pool, &gate);
    let stats = pool.stats();
    let text = metrics::render(&stats);
    (stats, text, pool)
}

#[test]
fn every_counter_of_the_snapshot_appears_with_its_value() {
    let _serial = serial();
    let (s, text, _pool) = stats_and_text();
    assert_accounting(&s);
    let m = samples(&text);
    let c = &s.counts;
    for (outcome, v) in [
        ("accepted", c.accepted),
        ("completed", c.completed),
        ("dead_lettered", c.dead_lettered),
        ("cancelled", c.cancelled),
        ("expired", c.expired),
    ] {
        assert!(v > 0, "the pool saw no `{outcome}`");
        assert_eq!(
            m[&format!("accelpool_requests_total{{outcome=\"{outcome}\"}}")],
            v as f64,
            "{outcome}"
        );
    }
    for (reason, v) in s.refusals.by_name() {
        assert_eq!(
            m[&format!("accelpool_refused_total{{reason=\"{reason}\"}}")],
            v as f64
        );
    }
    assert_eq!(s.refusals.unknown_group, 1);
    assert_eq!(s.refusals.full, 1);
    assert_eq!(
        s.refusals.by_name().iter().map(|r| r.1).sum::<u64>(),
        c.rejected
    );
    assert_eq!(m["accelpool_retries_total"], c.retried as f64);
    let g = &s.groups[0];
    for (kind, v) in g.failures.by_name() {
        assert_eq!(
            m[&format!("accelpool_failed_attempts_total{{group=\"cpu\",kind=\"{kind}\"}}")],
            v as f64
        );
    }
    assert_eq!(g.failures.transient, 1);
    assert_eq!(g.failures.permanent, 1);
    assert_eq!(
        g.failures.by_name().iter().map(|f| f.1).sum::<u64>(),
        g.counts.failed_attempts
    );
    assert_eq!(
        m["accelpool_group_requests_total{group=\"cpu\",outcome=\"completed\"}"],
        g.counts.completed as f64
    );
    assert_eq!(m["accelpool_session_builds_total{group=\"cpu\"}"], 1.0);
    assert_eq!(m["accelpool_in_flight"], 0.0);
    assert_eq!(m["accelpool_dead_letters"], s.dead_letter.len as f64);
    assert_eq!(m["accelpool_breaker_state{group=\"cpu\"}"], 0.0);
    assert_eq!(
        m["accelpool_queue_depth{group=\"cpu\",priority=\"low\"}"],
        0.0
    );
    assert_eq!(m["accelpool_workers{group=\"cpu\"}"], 1.0);
}

#[test]
fn histograms_are_cumulative_and_count_the_events() {
    let _serial = serial();
    let (s, text, _pool) = stats_and_text();
    let m = samples(&text);
    let mut completed = 0.0;
    for p in ["urgent", "high", "normal", "low"] {
        for name in ["queue_wait", "service", "end_to_end"] {
            let series =
                format!("accelpool_{name}_seconds_bucket{{group=\"cpu\",priority=\"{p}\",le=");
            let mut buckets: Vec<(f64, f64)> = m
                .iter()
                .filter(|(k, _)| k.starts_with(&series))
                .map(|(k, v)| {
                    let le = &k[series.len() + 1..k.len() - 2];
                    (
                        if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap()
                        },
                        *v,
                    )
                })
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert_eq!(
                buckets.len(),
                accelpool::LATENCY_BUCKETS.len() + 1,
                "{series}"
            );
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{series}: {buckets:?}"
            );
            let count =
                m[&format!("accelpool_{name}_seconds_count{{group=\"cpu\",priority=\"{p}\"}}")];
            assert_eq!(buckets.last().unwrap().1, count, "{series}");
            if name == "end_to_end" {
                completed += count;
            }
        }
    }
    // One end-to-end sample per completed request; one service sample per
    // finished attempt (completed ones and failed ones).
    assert_eq!(completed, s.groups[0].counts.completed as f64);
    let service: f64 = ["urgent", "high", "normal", "low"]
        .iter()
        .map(|p| m[&format!("accelpool_service_seconds_count{{group=\"cpu\",priority=\"{p}\"}}")])
        .sum();
    let g = &s.groups[0].counts;
    assert_eq!(service, (g.completed + g.failed_attempts) as f64);
}

#[test]
fn promtool_accepts_the_exposition() {
    let _serial = serial();
    let (_, text, _pool) = stats_and_text();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test-tools.sh (./scripts/test.sh runs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A raw HTTP/1.1 exchange: sends `request` and reads the whole answer.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

#[test]
fn the_endpoint_serves_metrics_and_health_and_refuses_the_rest() {
    let _serial = serial();
    let gate = Arc::new(Gate::new());
    let pool = Arc::new(pool(gate));
    pool.submit(Request::new(2)).unwrap().wait().unwrap();
    let server = MetricsServer::start("127.0.0.1:0", Arc::clone(&pool)).unwrap();
    let addr = server.local_addr();
    let m = get(addr, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
    assert!(m.contains(&format!("Content-Type: {CONTENT_TYPE}")), "{m}");
    assert!(
        m.contains("accelpool_requests_total{outcome=\"completed\"} 1"),
        "{m}"
    );
    let h = get(addr, "/healthz");
    assert!(
        h.starts_with("HTTP/1.1 200 OK\r\n") && h.ends_with("healthy\n"),
        "{h}"
    );
    assert!(get(addr, "/other").starts_with("HTTP/1.1 404 "));
    assert!(exchange(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    let head = exchange(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    // Garbage gets the connection closed, nothing else.
    assert_eq!(exchange(addr, "\x00\x01 not http\r\n\r\n"), "");
    server.stop();
    // An unhealthy pool answers 503, with its reasons.
    let source = Arc::clone(&pool);
    let sick = MetricsServer::start("127.0.0.1:0", move || {
        let mut s = source.stats();
        s.health.status = Health::Unhealthy;
        s.health.reasons = vec!["no group can take requests".into()];
        s
    })
    .unwrap();
    let h = get(sick.local_addr(), "/healthz");
    assert!(
        h.starts_with("HTTP/1.1 503 ") && h.ends_with("unhealthy\nno group can take requests\n"),
        "{h}"
    );
    sick.stop();
    assert_accounting(&pool.shutdown(LONG).stats);
}

/// Threads of this process (Linux).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn slow_and_flooding_clients_block_neither_the_pool_nor_other_clients() {
    let _serial = serial();
    let gate = Arc::new(Gate::new());
    let pool = Arc::new(pool(gate));
    let server = MetricsServer::start("127.0.0.1:0", Arc::clone(&pool)).unwrap();
    let addr = server.local_addr();
    let before = threads();
    // Two half-open clients hold both handlers (they send half a head).
    let slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metr").unwrap();
            s
        })
        .collect();
    // The pool is not held up meanwhile.
    assert_eq!(pool.submit(Request::new(3)).unwrap().wait().unwrap(), 6);
    // A flood of idle connections: some queued, the rest closed at once.
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(threads() <= before + 1, "no thread per connection");
    // A well-behaved client is answered once the bad ones time out.
    let started = Instant::now();
    let mut answered = false;
    while !answered && started.elapsed() < LONG {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        answered = out.starts_with("HTTP/1.1 200 OK");
    }
    assert!(answered, "the endpoint never answered after the flood");
    drop((slow, flood));
    server.stop();
    assert_accounting(&pool.shutdown(LONG).stats);
}

/// Kills the process when dropped: the test stops what it started.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/<profile>/examples/batch_infer`, which `cargo test` builds.
fn batch_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/batch_infer");
    assert!(
        path.is_file(),
        "{} missing: `cargo test` builds the examples",
        path.display()
    );
    path
}

/// A GET to `addr`, HTTP/1.0; the whole answer, or empty when it fails.
fn try_get(addr: SocketAddr, path: &str) -> String {
    let mut out = String::new();
    if let Ok(mut s) = TcpStream::connect(addr) {
        let _ = s.set_read_timeout(Some(LONG));
        let _ = s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
        let _ = s.read_to_string(&mut out);
    }
    out
}

#[test]
fn a_real_prometheus_scrapes_the_batch_example() {
    let _serial = serial();
    const N: u32 = 120;
    // Declared before the processes, so it is removed after they are
    // stopped (a running Prometheus would write its data folder again).
    let dir = tempfile::Builder::new()
        .prefix("accelpool-prometheus-")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    // The example runs N requests on the real classifier and keeps serving
    // its metrics afterwards until this test stops it. It picks a free port
    // and says which on stderr.
    let mut example_process = Child(
        Command::new(batch_example())
            .args(["--requests", &N.to_string(), "--workers", "1"])
            .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "120s"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        example_process.0.stderr.take().unwrap(),
    ));
    let example_addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("metrics on http://")
                .and_then(|a| a.strip_suffix("/metrics"))
                .map(str::to_owned)
        })
        .expect("the example says where it serves its metrics");
    // Keep its stderr drained.
    std::thread::spawn(move || lines.for_each(drop));
    let example = example_addr;
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: accelpool\n    static_configs:\n      - targets: ['{example}']\n"
        ),
    )
    .unwrap();
    let web_port = common::ports::reserve();
    let web = format!("127.0.0.1:{}", web_port.number());
    let _prometheus = Child(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed by scripts/test-tools.sh (./scripts/test.sh runs it)"),
    );
    let addr: SocketAddr = web.parse().unwrap();
    let query = "/api/v1/query?query=accelpool_requests_total%7Boutcome%3D%22completed%22%7D";
    let started = Instant::now();
    let (seen, last) = loop {
        let answer = try_get(addr, query);
        if answer.contains(&format!("\"{N}\"]")) {
            break (true, answer);
        }
        if started.elapsed() > Duration::from_secs(120) {
            break (false, answer);
        }
        std::thread::sleep(Duration::from_millis(250)); // polling another process's HTTP API
    };
    assert!(
        seen,
        "Prometheus never reported {N} completed requests; last answer:\n{last}"
    );
}
