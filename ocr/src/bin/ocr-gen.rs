//! Renders images of known text for checking the OCR pipeline.
//!
//!     cargo run --release -p accelpool-ocr --bin ocr-gen -- --out target/ocr-data --count 50
//!
//! Writes `sample-NNNN.png` and `truth.jsonl` (one line per image: its
//! name and the lines drawn on it) into `--out`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use accelpool_ocr::testdata::{generate, load_font, TestDataOptions};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Render images of known text for the OCR pipeline")]
struct Args {
    /// Folder to write the images and truth.jsonl into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Images to render.
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// Seed: the same seed renders the same images.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// TrueType font (scripts/test-tools.sh copies DejaVu Sans here).
    #[arg(long, default_value = "models/fonts/DejaVuSans.ttf")]
    font: PathBuf,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocr-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let font = load_font(&args.font)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let samples = generate(&font, args.seed, args.count, &TestDataOptions::default());
    let mut truth = std::io::BufWriter::new(std::fs::File::create(args.out.join("truth.jsonl"))?);
    let mut lines = 0;
    for s in &samples {
        s.image.save(args.out.join(&s.name))?;
        lines += s.lines.len();
        serde_json::to_writer(
            &mut truth,
            &serde_json::json!({ "image": s.name, "lines": s.lines }),
        )?;
        writeln!(truth)?;
    }
    truth.flush()?;
    eprintln!(
        "ocr-gen: {} images, {lines} lines in {}",
        samples.len(),
        args.out.display()
    );
    Ok(())
}
