//! The examples as a user runs them: errors print their `Display` text (the
//! fix included) and exit 1; odd options get a clear answer, not a panic.
//! `cargo test` builds the examples; these tests run those binaries.
#![cfg(feature = "openvino")]

use std::path::PathBuf;
use std::process::{Command, Output};

/// `target/<profile>/examples/NAME`, beside this test's own `deps` folder.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path: PathBuf = dir.join(name);
    assert!(
        path.is_file(),
        "{} missing: `cargo test` builds the examples",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn a_missing_model_prints_the_message_and_the_fix_and_exits_1() {
    let (out, _, err) = run(example("batch_infer").args(["--model", "models/none.onnx"]));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: model file models/none.onnx not found")
            && err.contains("scripts/setup.sh"),
        "{err}"
    );
    assert!(
        !err.contains("ModelNotFound {"),
        "Display, not Debug: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn priority_weights_that_overflow_are_refused_not_wrapped() {
    let (out, _, err) = run(example("batch_infer").args(["--mix", "urgent=4294967295,low=1"]));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("add up to 4294967296"), "{err}");
    let (out, _, err) = run(example("batch_infer").args(["--mix", "urgent=0,low=0"]));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("add up to 0"), "{err}");
}

#[test]
fn help_shows_no_absolute_path() {
    let (out, help, _) = run(example("batch_infer").arg("--help"));
    assert!(out.status.success());
    assert!(help.contains("[default: models/ppocr/cls.onnx]"), "{help}");
    assert!(!help.contains(env!("CARGO_MANIFEST_DIR")), "{help}");
}

#[test]
fn a_model_that_is_not_the_classifier_gets_no_angle_line() {
    // The tiny model answers [1, 3] probabilities: no angle to report.
    let (out, stdout, err) = run(example("batch_infer").args([
        "--model",
        "models/tiny/tiny.onnx",
        "--shape",
        "x=1,4",
        "--requests",
        "40",
        "--workers",
        "3",
    ]));
    assert!(out.status.success(), "{err}");
    assert!(!stdout.contains("predicted angle"), "{stdout}");
    assert!(stdout.contains("first output: probs [1, 3]"), "{stdout}");
    assert!(
        stdout.contains("(3 workers"),
        "the workers that ran: {stdout}"
    );
    assert!(
        stdout.contains("completed             |           40"),
        "{stdout}"
    );
}

#[test]
fn the_auto_device_runs_without_a_stream_count() {
    let (out, stdout, err) = run(example("batch_infer").args([
        "--model",
        "models/tiny/tiny.onnx",
        "--shape",
        "x=1,4",
        "--device",
        "AUTO",
        "--requests",
        "20",
        "--workers",
        "1",
    ]));
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains("accounting: accepted 20 = completed 20"),
        "{stdout}"
    );
}

#[test]
fn quickstart_runs() {
    let (out, stdout, err) = run(&mut example("quickstart"));
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("probs"), "{stdout}");
}

#[test]
fn the_readme_and_docs_stand_alone() {
    // No link outside the repository, no absolute path of the machine the
    // samples were taken on.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "README.md",
        "docs/ARCHITECTURE.md",
        "docs/FUZZING.md",
        "BENCHMARKS.md",
        "models/README.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            assert!(!line.contains("../shared"), "{file}:{}: {line}", n + 1);
            for machine in ["/root/", "/home/", "/work/", "/tmp/", "/Users/"] {
                assert!(!line.contains(machine), "{file}:{}: {line}", n + 1);
            }
        }
    }
}
