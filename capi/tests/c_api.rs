//! The C API as a C or C++ user meets it: `scripts/capi.sh compile` builds
//! the examples and the C tests with the system compilers (`-Wall -Wextra
//! -Werror`) against the static library (built by cargo into a target folder
//! of its own), and these checks run them and check what they print: counts, the accounting
//! identity, and answers equal to the Rust example's on the same inputs.
//! The C-session test also runs under AddressSanitizer and
//! UndefinedBehaviorSanitizer. (The C example on the real model runs under
//! valgrind in `.ci/run`, `scripts/capi.sh valgrind`: a minute of CPU, too
//! slow for a test run again and again under load.)
//!
//! One test runs the checks in turn, in a folder of this process's own
//! (several copies of this binary may run at once) that it removes at the
//! end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The project root: C programs run from there (models/ppocr).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/<profile>`, where this test runs from.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds `libaccelpool_c.a` once and returns its folder. `cargo test`
/// links the library into tests as an rlib only, so the static library is
/// built here, by cargo, into a target folder of its own (the one `cargo
/// test` holds is locked while tests run). Incremental after the first time.
fn static_lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = profile_dir().join("capi-lib");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let o = Command::new(cargo)
            .args(["build", "--quiet", "-p", "accelpool-capi", "--target-dir"])
            .arg(&target)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "building libaccelpool_c failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        target.join("debug")
    })
}

/// This process's own folder for programs and answer files.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("accelpool-capi-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Removes the work folder when the test ends, passed or failed.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(work_dir());
    }
}

/// Compiles the C and C++ programs once per variant; their folder.
fn programs(sanitize: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static SANITIZED: OnceLock<PathBuf> = OnceLock::new();
    let cell = if sanitize { &SANITIZED } else { &PLAIN };
    cell.get_or_init(|| {
        let out = work_dir().join(if sanitize { "sanitized" } else { "plain" });
        let mut cmd = Command::new(root().join("scripts/capi.sh"));
        cmd.arg("compile").arg(static_lib_dir()).arg(&out);
        if sanitize {
            cmd.arg("--sanitize");
        }
        let o = cmd.current_dir(root()).output().unwrap();
        assert!(
            o.status.success(),
            "compiling the C programs failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

fn run(cmd: &mut Command) -> (String, String) {
    let o: Output = cmd.current_dir(root()).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        o.status.success(),
        "{:?} failed ({}):\n{out}\n{err}",
        cmd,
        o.status
    );
    (out, err)
}

/// The numbers of the `accounting:` line, checked to balance.
fn accounting(out: &str) -> [u64; 5] {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("accounting:"))
        .unwrap_or_else(|| panic!("no accounting line in:\n{out}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let n: [u64; 5] = n.try_into().unwrap();
    assert_eq!(n[0], n[1] + n[2] + n[3] + n[4], "{line}");
    n
}

/// `INDEX CLASS P0 P1` lines, by index.
fn answers(path: &Path) -> HashMap<u64, (i32, f32, f32)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                (
                    w[1].parse().unwrap(),
                    w[2].parse().unwrap(),
                    w[3].parse().unwrap(),
                ),
            )
        })
        .collect()
}

const REQUESTS: &str = "300";

/// The Rust example's answers on the same inputs (built by `cargo test` at
/// the workspace root).
fn rust_answers() -> &'static HashMap<u64, (i32, f32, f32)> {
    static ANSWERS: OnceLock<HashMap<u64, (i32, f32, f32)>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let exe = profile_dir().join("examples/batch_infer");
        assert!(
            exe.is_file(),
            "{} missing: run `cargo test` at the workspace root, which builds the examples",
            exe.display()
        );
        let file = work_dir().join("rust-answers.txt");
        let (out, _) = run(Command::new(exe)
            .args(["--requests", REQUESTS, "--workers", "2", "--classes"])
            .arg(&file));
        let n = accounting(&out);
        assert_eq!(n[1], 300, "{out}");
        answers(&file)
    })
}

/// Every request answered, with the Rust example's class and probabilities.
fn assert_same_answers(file: &Path) {
    let ours = answers(file);
    let theirs = rust_answers();
    assert_eq!(ours.len(), theirs.len());
    for (i, (class, p0, p1)) in &ours {
        let (c, q0, q1) = theirs[i];
        assert_eq!(*class, c, "request {i}: class {class}, Rust API says {c}");
        assert!(
            (p0 - q0).abs() < 1e-3 && (p1 - q1).abs() < 1e-3,
            "request {i}: ({p0}, {p1}) against the Rust API's ({q0}, {q1})"
        );
    }
}

/// Runs a batch example (`batch_infer_c` or `batch_infer_cpp`) on the real
/// classifier from three submitting threads; checks its counts and that its
/// answers are the Rust example's. Returns what it printed.
fn run_example(program: &str) -> String {
    let file = work_dir().join(format!("{program}-answers.txt"));
    let (out, _) = run(Command::new(programs(false).join(program))
        .args([
            "--requests",
            REQUESTS,
            "--workers",
            "2",
            "--threads",
            "3",
            "--classes",
        ])
        .arg(&file));
    let n = accounting(&out);
    assert_eq!((n[0], n[1]), (300, 300), "{out}");
    assert!(
        out.contains("throughput (req/s)") && out.contains("latency p99 (ms)"),
        "{out}"
    );
    assert_same_answers(&file);
    out
}

fn the_c_example_runs_the_classifier_and_agrees_with_the_rust_api() {
    let out = run_example("batch_infer_c");
    assert!(out.contains("lent buffers released: 300 of 300"), "{out}");
}

fn the_cpp_example_runs_the_classifier_and_agrees_with_the_rust_api() {
    run_example("batch_infer_cpp");
}

fn misuse_returns_documented_codes_and_never_crashes() {
    let (out, _) = run(&mut Command::new(programs(false).join("misuse")));
    assert!(out.contains("misuse: all checks passed"), "{out}");
}

fn c_sessions_under_address_and_undefined_behaviour_sanitizers() {
    let (out, err) = run(Command::new(programs(true).join("csession"))
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"));
    assert!(out.contains("csession: all checks passed"), "{out}\n{err}");
    accounting(&out);
    assert!(!err.contains("Sanitizer"), "{err}");
}

#[test]
fn c_and_cpp_programs() {
    let _cleanup = Cleanup;
    misuse_returns_documented_codes_and_never_crashes();
    c_sessions_under_address_and_undefined_behaviour_sanitizers();
    the_c_example_runs_the_classifier_and_agrees_with_the_rust_api();
    the_cpp_example_runs_the_classifier_and_agrees_with_the_rust_api();
}
