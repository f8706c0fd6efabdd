//! The C API's cost against the Rust API, measured in the same run:
//!
//! 1. submit+wait round trip, p50: a no-op C session driven from C
//!    (`capi/benches/roundtrip.c`) against a no-op Rust session driven from
//!    Rust, same pool shape and the same one-tensor request. Goal: 1.2x.
//! 2. The C batch example against the Rust batch example on the real
//!    classifier (`models/ppocr/cls.onnx`), throughput. Goal: within 5 %.
//!
//! Run with `./scripts/capi.sh bench`, which builds what it runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use accelpool::openvino::{Tensor, Tensors};
use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};

const ROUNDS: usize = 5;
const TRIPS: usize = 100_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The Rust path's p50, in ns, measured like roundtrip.c.
fn rust_round_trip(pool: &Pool<Tensors, Tensors>) -> f64 {
    let mut ns = Vec::with_capacity(TRIPS);
    for i in 0..TRIPS + TRIPS / 10 {
        let t0 = Instant::now();
        let x = vec![Tensor::f32("x", [1, 4], vec![1.0, 2.0, 3.0, 4.0])];
        let out = pool.submit(Request::new(x)).unwrap().wait().unwrap();
        drop(out);
        if i >= TRIPS / 10 {
            ns.push(t0.elapsed().as_nanos() as f64);
        }
    }
    median(ns)
}

/// Runs `cmd` from the project root and reads a number out of its output
/// with `find` (which gets each line).
fn figure(cmd: &mut Command, what: &str, find: impl Fn(&str) -> Option<f64>) -> f64 {
    let out = cmd.current_dir(root()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(find)
        .unwrap_or_else(|| panic!("no {what} in {text}"))
}

fn c_round_trip(exe: &Path) -> f64 {
    figure(Command::new(exe).arg(TRIPS.to_string()), "p50", |l| {
        l.strip_prefix("p50_ns ")?.trim().parse().ok()
    })
}

fn throughput(cmd: &mut Command) -> f64 {
    figure(cmd, "throughput", |l| {
        if !l.contains("throughput (req/s)") {
            return None;
        }
        l.split('|').nth(2)?.trim().parse().ok()
    })
}

fn main() {
    let programs = release_dir().join("capi-bench");
    let status = Command::new(root().join("scripts/capi.sh"))
        .arg("compile")
        .arg(release_dir())
        .arg(&programs)
        .current_dir(root())
        .status()
        .unwrap();
    assert!(status.success(), "compiling the C programs failed");

    let pool = Pool::builder()
        .group(
            GroupConfig::new("rust").workers(1).pin(false),
            |_: &WorkerInfo| Ok(|_: &Tensors| -> Result<Tensors, SessionError> { Ok(Vec::new()) }),
        )
        .build()
        .unwrap();
    let (mut c, mut rust) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        c.push(c_round_trip(&programs.join("roundtrip")));
        rust.push(rust_round_trip(&pool));
    }
    drop(pool);
    let (c, rust) = (median(c), median(rust));
    println!("round trip p50 (median of {ROUNDS} rounds of {TRIPS}):");
    println!("  C session from C        {:>8.0} ns", c);
    println!("  Rust session from Rust  {:>8.0} ns", rust);
    println!(
        "  ratio C / Rust          {:>8.2}x   (goal 1.20x)",
        c / rust
    );

    let rust_example = release_dir().join("examples/batch_infer");
    if !rust_example.is_file() || !root().join("models/ppocr/cls.onnx").is_file() {
        println!("batch example comparison skipped: run ./scripts/capi.sh bench");
        return;
    }
    let args = ["--requests", "4000", "--workers", "2"];
    let (mut c, mut rust) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        c.push(throughput(
            Command::new(programs.join("batch_infer_c"))
                .args(args)
                .args(["--threads", "1"]),
        ));
        rust.push(throughput(Command::new(&rust_example).args(args)));
    }
    let (c, rust) = (median(c), median(rust));
    println!("batch example on cls.onnx, 4000 requests, 2 workers (median of 3 runs):");
    println!("  C example               {:>8.0} req/s", c);
    println!("  Rust example            {:>8.0} req/s", rust);
    println!(
        "  ratio C / Rust          {:>8.3}    (goal within 5 %)",
        c / rust
    );
}
