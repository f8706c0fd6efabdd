//! The C API as a C or C++ user meets it: `scripts/capi.sh compile` builds
//! the examples and the C tests with the system compilers (`-Wall -Wextra
//! -Werror`) against the static library `cargo test` just built, and these
//! tests run them and check what they print: counts, the accounting
//! identity, and answers equal to the Rust example's on the same inputs.
//! The C-session test also runs under AddressSanitizer and
//! UndefinedBehaviorSanitizer, and the C example under valgrind.

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

/// `target/<profile>`, where cargo put `libaccelpool_c.a`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Compiles the C and C++ programs once per variant; their folder.
fn programs(sanitize: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static SANITIZED: OnceLock<PathBuf> = OnceLock::new();
    let cell = if sanitize { &SANITIZED } else { &PLAIN };
    cell.get_or_init(|| {
        let out = profile_dir().join(if sanitize { "capi-asan" } else { "capi" });
        let mut cmd = Command::new(root().join("scripts/capi.sh"));
        cmd.arg("compile").arg(profile_dir()).arg(&out);
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
        let file = profile_dir().join("capi-rust-answers.txt");
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

#[test]
fn the_c_example_runs_the_classifier_and_agrees_with_the_rust_api() {
    let file = profile_dir().join("capi-c-answers.txt");
    let (out, _) = run(Command::new(programs(false).join("batch_infer_c"))
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
    assert_eq!(n[0], 300, "{out}");
    assert_eq!(n[1], 300, "{out}");
    assert!(out.contains("lent buffers released: 300 of 300"), "{out}");
    assert!(
        out.contains("throughput (req/s)") && out.contains("latency p99 (ms)"),
        "{out}"
    );
    assert_same_answers(&file);
}

#[test]
fn the_cpp_example_runs_the_classifier_and_agrees_with_the_rust_api() {
    let file = profile_dir().join("capi-cpp-answers.txt");
    let (out, _) = run(Command::new(programs(false).join("batch_infer_cpp"))
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
    assert_same_answers(&file);
}

#[test]
fn misuse_returns_documented_codes_and_never_crashes() {
    let (out, _) = run(&mut Command::new(programs(false).join("misuse")));
    assert!(out.contains("misuse: all checks passed"), "{out}");
}

#[test]
fn c_sessions_under_address_and_undefined_behaviour_sanitizers() {
    let (out, err) = run(Command::new(programs(true).join("csession"))
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"));
    assert!(out.contains("csession: all checks passed"), "{out}\n{err}");
    accounting(&out);
    assert!(!err.contains("Sanitizer"), "{err}");
}

#[test]
fn the_c_example_under_valgrind_reports_no_error_and_no_leak() {
    // AddressSanitizer cannot load OpenVINO (its threading library is opened
    // with RTLD_DEEPBIND), so the example on the real model runs under
    // valgrind. The suppressions cover the loader and the OpenVINO binding's
    // own leaks, each explained in the file.
    let supp = root().join("capi/tests/valgrind.supp");
    let (out, err) = run(Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
            // Deep enough to reach the frames the suppressions name.
            "--num-callers=60",
        ])
        .arg(format!("--suppressions={}", supp.display()))
        .arg(programs(false).join("batch_infer_c"))
        .args(["--requests", "8", "--workers", "1", "--threads", "2"]));
    let n = accounting(&out);
    assert_eq!(n[1], 8, "{out}");
    assert!(err.contains("ERROR SUMMARY: 0 errors"), "{err}");
    assert!(
        err.contains("definitely lost: 0 bytes") || err.contains("no leaks are possible"),
        "{err}"
    );
}
