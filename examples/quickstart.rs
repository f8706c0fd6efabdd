//! The smallest program that runs one request through OpenVINO.
//!
//!     ./scripts/setup.sh && cargo run --example quickstart
//!
//! It loads the tiny committed model on the CPU, submits one input and
//! prints the class probabilities.

use std::process::ExitCode;

use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, Tensor};
use accelpool::{GroupConfig, Pool, Request};

/// Prints the error's `Display` text (which says how to fix it) and exits 1.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/tiny.onnx");
    let factory = OpenVinoFactory::new(&OpenVinoConfig::new(model, "CPU"))?;
    let pool = Pool::builder()
        .group(GroupConfig::new("cpu"), factory)
        .build()?;

    let input = Tensor::f32("x", [1, 4], vec![0.5, -1.0, 2.0, 0.1]);
    let output = pool.submit(Request::new(vec![input]))?.wait()?;
    for t in &output {
        println!("{t}: {:?}", t.data);
    }
    Ok(())
}
