//! Reads the text of images with the three PP-OCRv4 models in one
//! accelpool runtime.
//!
//!     ./scripts/setup.sh
//!     cargo run --release -p accelpool-ocr --bin ocr -- page.png scans/
//!
//! Images are read in parallel (rayon for the pre- and post-processing;
//! the models' calls queue in the runtime at the priority given). Images
//! named with `--urgent` are read at `urgent` priority and overtake the
//! rest in every model's queue. Prints a table per image; `--json` writes
//! one JSON object per image; `--annotate DIR` writes each image with its
//! boxes and text drawn on it; `--truth` scores the text against
//! `ocr-gen`'s `truth.jsonl`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use accelpool::Priority;
use accelpool_ocr::score::{score_page, Score};
use accelpool_ocr::testdata::{load_font, TruthLine};
use accelpool_ocr::{
    annotate, image_io, Dictionary, Ocr, OcrError, OcrOptions, Page, RuntimeEngine,
};
use clap::Parser;
use rayon::prelude::*;

#[derive(Parser)]
#[command(about = "Read the text of images with PP-OCRv4 on accelpool")]
struct Args {
    /// Images (PNG, JPEG) or folders of them.
    #[arg(required_unless_present = "urgent")]
    inputs: Vec<PathBuf>,
    /// Images read at `urgent` priority, ahead of the others.
    #[arg(long)]
    urgent: Vec<PathBuf>,
    /// Priority of the other images: low, normal, high or urgent.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    priority: Priority,
    /// The runtime's YAML file (models `det`, `cls` and `rec`).
    #[arg(long, default_value = "config/runtime/ppocr.yaml")]
    config: PathBuf,
    /// The recogniser's dictionary.
    #[arg(long, default_value = "models/ppocr/ppocr_keys_v1.txt")]
    dict: PathBuf,
    /// Crops per recogniser call; 1 sends each alone.
    #[arg(long, default_value_t = 6)]
    rec_batch: usize,
    /// Skip the direction classifier.
    #[arg(long)]
    no_cls: bool,
    /// Threads for pre- and post-processing (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Write one JSON object per image to this file (`-` for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write each image with its boxes and text drawn on it into this folder.
    #[arg(long)]
    annotate: Option<PathBuf>,
    /// Font for `--annotate` labels.
    #[arg(long, default_value = "models/fonts/DejaVuSans.ttf")]
    font: PathBuf,
    /// `truth.jsonl` of `ocr-gen`: score the text read against it.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Print no table.
    #[arg(long)]
    quiet: bool,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    match s {
        "low" => Ok(Priority::Low),
        "normal" => Ok(Priority::Normal),
        "high" => Ok(Priority::High),
        "urgent" => Ok(Priority::Urgent),
        _ => Err(format!(
            "`{s}` is not a priority; use low, normal, high or urgent"
        )),
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("ocr: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One image's outcome.
struct Done {
    path: PathBuf,
    priority: Priority,
    latency: Duration,
    page: Result<Page, OcrError>,
}

/// Image files named by `inputs` (folders listed, sorted).
fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot list {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                    })
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn run(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
    let urgent = image_files(&args.urgent)?;
    // An image named both ways is read once, at `urgent`.
    let mut files = image_files(&args.inputs)?;
    files.retain(|f| !urgent.contains(f));
    let dict = Dictionary::load(&args.dict)?;
    let engine = RuntimeEngine::from_yaml_file(&args.config)?;
    let opts = OcrOptions {
        rec_batch: args.rec_batch.max(1),
        classify: !args.no_cls,
        ..OcrOptions::default()
    };
    let ocr = Ocr::new(engine, dict, opts);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()?;
    let font = match &args.annotate {
        Some(_) => match load_font(&args.font) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("ocr: {e}; drawing boxes without labels");
                None
            }
        },
        None => None,
    };
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }

    let start = Instant::now();
    let read_one = |path: &Path, priority: Priority| -> Done {
        let t = Instant::now();
        let page = image_io::load(path).and_then(|img| {
            let page = ocr.read(&img, priority)?;
            if let Some(dir) = &args.annotate {
                let name = path.file_name().unwrap_or_default();
                let drawn = annotate::annotate(&img, &page.lines, font.as_ref());
                drawn.save(dir.join(name)).map_err(|e| OcrError::Decode {
                    path: dir.join(name),
                    reason: format!("cannot write the annotated image: {e}"),
                })?;
            }
            Ok(page)
        });
        Done {
            path: path.to_owned(),
            priority,
            latency: t.elapsed(),
            page,
        }
    };
    // The urgent images start first and their calls overtake the others'
    // in every model's queue.
    let mut done: Vec<Done> = pool.install(|| {
        let (mut a, b) = rayon::join(
            || {
                urgent
                    .par_iter()
                    .map(|p| read_one(p, Priority::Urgent))
                    .collect::<Vec<_>>()
            },
            || {
                files
                    .par_iter()
                    .map(|p| read_one(p, args.priority))
                    .collect::<Vec<_>>()
            },
        );
        a.extend(b);
        a
    });
    let wall = start.elapsed();

    let truth = match &args.truth {
        Some(p) => Some(read_truth(p)?),
        None => None,
    };
    let mut json: Option<Box<dyn Write>> = match &args.json {
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(std::io::BufWriter::new(std::fs::File::create(p)?))),
        None => None,
    };
    let (mut ok, mut total) = (true, Score::default());
    let mut latencies: Vec<Duration> = Vec::new();
    done.sort_by(|a, b| a.path.cmp(&b.path));
    for d in &done {
        match &d.page {
            Ok(page) => {
                latencies.push(d.latency);
                if !args.quiet {
                    print_table(d, page);
                }
                if let Some(out) = json.as_mut() {
                    serde_json::to_writer(
                        &mut *out,
                        &serde_json::json!({
                            "image": d.path,
                            "priority": format!("{:?}", d.priority).to_lowercase(),
                            "latency_s": d.latency.as_secs_f64(),
                            "lines": page.lines,
                            "times_s": page.times,
                        }),
                    )?;
                    writeln!(out)?;
                }
                if let Some(truth) = &truth {
                    let name = d
                        .path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    if let Some(lines) = truth.get(name) {
                        total.add(&score_page(lines, &page.lines));
                    }
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("ocr: {e}");
                if let Some(out) = json.as_mut() {
                    serde_json::to_writer(
                        &mut *out,
                        &serde_json::json!({ "image": d.path, "error": e.to_string() }),
                    )?;
                    writeln!(out)?;
                }
            }
        }
    }
    if let Some(out) = json.as_mut() {
        out.flush()?;
    }
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    eprintln!(
        "ocr: {} images in {:.2} s ({:.2} images/s); per image p50 {:.0} ms, p99 {:.0} ms",
        done.len(),
        wall.as_secs_f64(),
        done.len() as f64 / wall.as_secs_f64(),
        pct(0.5),
        pct(0.99),
    );
    if truth.is_some() {
        eprintln!(
            "ocr: against the truth: {}/{} lines found ({:.1} %), character error rate {:.2} %, \
             upside-down lines read {}/{}",
            total.found,
            total.lines,
            100.0 * total.recall(),
            100.0 * total.cer(),
            total.upside_down_read,
            total.upside_down,
        );
    }
    Ok(ok)
}

fn print_table(d: &Done, page: &Page) {
    println!(
        "{} ({} lines, {:.0} ms, {:?})",
        d.path.display(),
        page.lines.len(),
        d.latency.as_secs_f64() * 1e3,
        d.priority
    );
    for (i, l) in page.lines.iter().enumerate() {
        let (x, y) = l.quad.0[0];
        println!(
            "  {:>3}  {:>5.0},{:<5.0} {:>5.3} {} {}",
            i + 1,
            x,
            y,
            l.confidence,
            if l.turned { "180" } else { "  0" },
            l.text
        );
    }
}

/// `truth.jsonl` by image name.
fn read_truth(path: &Path) -> Result<HashMap<String, Vec<TruthLine>>, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        image: String,
        lines: Vec<TruthLine>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let e: Entry = serde_json::from_str(l)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
            Ok((e.image, e.lines))
        })
        .collect()
}
