//! Batch inference on a real model: prepares inputs in parallel, pushes them
//! through a pool of pinned OpenVINO workers with a priority mix, shows a
//! progress bar, and prints a final table.
//!
//!     ./scripts/setup.sh && cargo run --release --example batch_infer
//!
//! By default it runs the PP-OCR text-direction classifier (fetched by the
//! setup script) on the CPU with one worker per core. `--help` lists the options.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use accelpool::metrics::server::MetricsServer;
use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, PerformanceHint, Tensor};
use accelpool::{BatchingConfig, GroupConfig, Pool, Priority, Request};
use accelpool::{PoolStats, LATENCY_BUCKETS};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Batch inference through an accelpool of OpenVINO workers")]
struct Args {
    /// Model file (ONNX or OpenVINO IR), relative to the current folder.
    #[arg(long, default_value = "models/ppocr/cls.onnx")]
    model: PathBuf,
    /// OpenVINO device: CPU, GPU, NPU, AUTO, ...
    #[arg(long, default_value = "CPU")]
    device: String,
    /// Worker threads (default: one per available core). More than the
    /// cores is allowed: workers then share cores, as the summary says.
    #[arg(long)]
    workers: Option<usize>,
    /// Requests to run.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Input shape, fixed before compiling: NAME=D,D,...
    #[arg(long, default_value = "x=1,3,48,192")]
    shape: String,
    /// Priority mix as weights: urgent=W,high=W,normal=W,low=W.
    #[arg(long, default_value = "urgent=1,high=2,normal=5,low=2")]
    mix: String,
    /// Warmup inferences per worker session.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// OpenVINO streams (default: the worker count, so workers run in
    /// parallel; left to the device for AUTO, MULTI, HETERO and BATCH,
    /// which take no stream count).
    #[arg(long)]
    streams: Option<u32>,
    /// Queue capacity per priority level.
    #[arg(long, default_value_t = 64)]
    capacity: usize,
    /// Most requests per inference call (1: no batching). Above 1 the model
    /// is compiled for batches of this size (dimension 0 of `--shape`, one
    /// request's shape, is set to it), and partial batches are padded.
    #[arg(long, default_value_t = 1)]
    max_batch: u32,
    /// Longest a worker waits to fill a batch (`200us`, `1ms`); it waits
    /// only while the other workers are busy.
    #[arg(long, default_value = "100us", value_parser = parse_duration)]
    max_delay: Duration,
    /// Also write the pool's stats as JSON here.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Serve Prometheus metrics (`/metrics`, `/healthz`) on this address
    /// while the job runs, for example `127.0.0.1:9464`.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Keep serving metrics this long after the job (for a scraper to
    /// catch the last figures), for example `5s`.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    metrics_linger: Duration,
    /// Draw the run as an SVG here: the latency distribution per priority
    /// (end to end, from the pool's histograms) and throughput over time.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Also write each request's answer here, one line per request:
    /// `INDEX CLASS P0 P1` (the C and C++ examples write the same, so their
    /// answers can be compared).
    #[arg(long)]
    classes: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s.split_once('=').ok_or("--shape: expected NAME=D,D,...")?;
    let dims = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|e| format!("--shape: `{d}`: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok((name.to_owned(), dims))
}

fn parse_mix(s: &str) -> Result<Vec<(Priority, u32)>, String> {
    s.split(',')
        .map(|part| {
            let (name, w) = part
                .split_once('=')
                .ok_or(format!("--mix: `{part}` is not LEVEL=WEIGHT"))?;
            let p = Priority::ALL
                .into_iter()
                .find(|p| p.name() == name.trim())
                .ok_or(format!(
                    "--mix: `{name}` is not one of urgent, high, normal, low"
                ))?;
            let w = w.trim().parse().map_err(|e| format!("--mix: `{w}`: {e}"))?;
            Ok((p, w))
        })
        .collect()
}

#[path = "plots/mod.rs"]
mod plots;

/// The run as an SVG: end-to-end latency distribution per priority (the
/// pool's histograms, all groups) and completions per second over time.
fn plot(
    path: &std::path::Path,
    stats: &PoolStats,
    started: Instant,
    done_at: &[Instant],
) -> Result<(), Box<dyn std::error::Error>> {
    let latency: Vec<plots::Series> = Priority::ALL
        .iter()
        .filter_map(|p| {
            let mut counts = [0u64; LATENCY_BUCKETS.len() + 1];
            for g in &stats.groups {
                for (c, n) in counts
                    .iter_mut()
                    .zip(g.histograms.end_to_end[p.index()].counts)
                {
                    *c += n;
                }
            }
            let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
            plots::distribution(&p.to_string(), bounds.zip(counts))
        })
        .collect();
    // Completions per 100 ms window, as requests per second.
    let window = 0.1;
    let mut bins = vec![0u64; 1];
    for t in done_at {
        let i = (t.duration_since(started).as_secs_f64() / window) as usize;
        if bins.len() <= i {
            bins.resize(i + 1, 0);
        }
        bins[i] += 1;
    }
    let throughput = [plots::Series {
        label: "completed".into(),
        points: bins
            .iter()
            .enumerate()
            .map(|(i, n)| ((i as f64 + 0.5) * window, *n as f64 / window))
            .collect(),
    }];
    plots::two(
        path,
        (
            "End-to-end latency by priority",
            "latency (ms, bucket upper bound)",
            "share of requests",
            &latency,
            true,
        ),
        (
            "Throughput",
            "time since start (s)",
            "requests per second",
            &throughput,
            false,
        ),
    )
}

/// A synthetic text-line image in PP-OCR's input range: dark strokes on a
/// light background, different per request, normalised to [-1, 1].
fn text_line(shape: &[usize], seed: usize) -> Vec<f32> {
    let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let planes: usize = shape[..shape.len() - 2].iter().product();
    let mut img = vec![0f32; planes * h * w];
    for (i, v) in img.iter_mut().enumerate() {
        let (y, x) = ((i / w) % h, i % w);
        let stroke = (x + seed * 7) % 13 < 3 && y > h / 4 && y < 3 * h / 4;
        let pixel = if stroke {
            30.0
        } else {
            220.0 + ((x * 31 + y * 17 + seed) % 20) as f32
        };
        *v = (pixel / 255.0 - 0.5) / 0.5;
    }
    img
}

/// Prints the error's `Display` text and each cause under it, and exits 1.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Devices that choose real devices themselves and take no stream count.
fn is_virtual(device: &str) -> bool {
    ["AUTO", "MULTI", "HETERO", "BATCH"]
        .iter()
        .any(|v| device.to_uppercase().starts_with(v))
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (input_name, shape) = parse_shape(&args.shape)?;
    let mix = parse_mix(&args.mix)?;
    let total_weight: u64 = mix.iter().map(|&(_, w)| u64::from(w)).sum();
    if total_weight == 0 {
        return Err("--mix: the weights add up to 0; give at least one level a weight".into());
    }
    let total_weight = u32::try_from(total_weight).map_err(|_| {
        format!(
            "--mix: the weights add up to {total_weight}, over {}; use smaller weights",
            u32::MAX
        )
    })?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(cores);

    let mut ov = OpenVinoConfig::new(&args.model, &args.device).hint(PerformanceHint::Throughput);
    // Batching compiles the model for a fixed batch of `--max-batch` (a
    // partial batch is padded): on the CPU plugin a fixed batch runs faster
    // than a dynamic batch dimension.
    let mut compiled_shape = shape.clone();
    if args.max_batch > 1 {
        compiled_shape[0] = args.max_batch as usize;
    }
    ov = ov.reshape(&input_name, compiled_shape);
    match args.streams {
        Some(n) => ov = ov.streams(n),
        None if !is_virtual(&args.device) => {
            ov = ov.streams(u32::try_from(workers).unwrap_or(u32::MAX))
        }
        None => {}
    }
    let started = Instant::now();
    let factory = OpenVinoFactory::new(&ov)?;
    let pool = Pool::builder()
        .group(
            GroupConfig::new(args.device.to_lowercase())
                .workers(workers)
                .warmup(args.warmup)
                .capacity(args.capacity)
                .batching(BatchingConfig {
                    max_batch_size: args.max_batch,
                    max_queue_delay: args.max_delay,
                    preferred_batch_sizes: vec![],
                }),
            factory,
        )
        .build()?;
    let pool = std::sync::Arc::new(pool);
    let metrics = match args.metrics {
        Some(addr) => {
            let server = MetricsServer::start(addr, std::sync::Arc::clone(&pool))
                .map_err(|e| format!("--metrics {addr}: cannot listen there: {e}"))?;
            eprintln!("metrics on http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let ready = started.elapsed();

    // Input preparation in parallel.
    let inputs: Vec<(Priority, Vec<Tensor>)> = (0..args.requests)
        .into_par_iter()
        .map(|i| {
            // A fixed scatter over the weights (Knuth's multiplicative hash).
            let mut pick = (i as u32).wrapping_mul(2_654_435_761) % total_weight;
            let priority = mix
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .map_or(Priority::Normal, |(p, _)| *p);
            let data = text_line(&shape, i);
            (
                priority,
                vec![Tensor::f32(&input_name, shape.clone(), data)],
            )
        })
        .collect();

    let bar = ProgressBar::new(args.requests as u64);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} ({per_sec}, eta {eta})",
    )?);
    let run_started = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(args.capacity * 4);
    let collector = {
        let bar = bar.clone();
        std::thread::spawn(move || {
            // The direction classifier answers [1, 2]: 0 or 180 degrees.
            // Any other model's first output is summarised by its shape.
            let mut angles = [0usize; 2];
            let mut answers = Vec::new();
            let mut output = None;
            let mut done_at = Vec::new();
            for (i, h) in rx {
                let h: accelpool::TaskHandle<Vec<Tensor>> = h;
                if let Ok(out) = h.wait() {
                    if let Some(t) = out.first() {
                        match t.data.as_f32() {
                            Some(p) if t.shape == [1, 2] => {
                                let class = usize::from(p[1] > p[0]);
                                angles[class] += 1;
                                answers.push(format!("{i} {class} {:.6} {:.6}", p[0], p[1]));
                            }
                            _ => {}
                        }
                        output.get_or_insert_with(|| format!("{} {:?}", t.name, t.shape));
                    }
                }
                done_at.push(Instant::now());
                bar.inc(1);
            }
            (angles, answers, output, done_at)
        })
    };
    let mut refused = 0usize;
    for (i, (priority, tensors)) in inputs.into_iter().enumerate() {
        match pool.submit(Request::new(tensors).priority(priority)) {
            Ok(h) => tx.send((i, h))?,
            Err(e) => {
                refused += 1;
                bar.println(format!("refused: {e}"));
            }
        }
    }
    drop(tx);
    let (angles, answers, output, done_at) =
        collector.join().map_err(|_| "collector thread panicked")?;
    let wall = run_started.elapsed();
    bar.finish_and_clear();
    let report = pool.shutdown(Duration::from_secs(30));
    if let Some(server) = metrics {
        std::thread::sleep(args.metrics_linger);
        server.stop();
    }
    let s = &report.stats;
    let c = s.counts;
    let e2e = s.latency.end_to_end;
    let svc = s.latency.service;

    println!("accelpool batch inference");
    println!("  model     {}", args.model.display());
    let running: usize = s.groups.iter().map(|g| g.workers.len()).sum();
    let sharing = s
        .groups
        .iter()
        .flat_map(|g| &g.workers)
        .any(|w| w.shares_core);
    let precision = s.groups.first().and_then(|g| g.backend.get("precision"));
    println!(
        "  device    {} ({running} workers{}, precision {}, ready in {:.2?})",
        args.device,
        if sharing {
            format!(" sharing {cores} cores")
        } else {
            String::new()
        },
        precision.map_or("unknown", String::as_str),
        ready
    );
    println!("+-----------------------+--------------+");
    let row = |k: &str, v: String| println!("| {k:<21} | {v:>12} |");
    row("requests", args.requests.to_string());
    row("completed", c.completed.to_string());
    row("failed attempts", c.failed_attempts.to_string());
    row("dead-lettered", c.dead_lettered.to_string());
    row(
        "cancelled / expired",
        format!("{} / {}", c.cancelled, c.expired),
    );
    row("refused at submit", refused.to_string());
    row(
        "throughput (req/s)",
        format!("{:.1}", c.completed as f64 / wall.as_secs_f64()),
    );
    row("latency p50 (ms)", format!("{:.3}", e2e.p50_us / 1e3));
    row("latency p95 (ms)", format!("{:.3}", e2e.p95_us / 1e3));
    row("latency p99 (ms)", format!("{:.3}", e2e.p99_us / 1e3));
    row("service p50 (ms)", format!("{:.3}", svc.p50_us / 1e3));
    row(
        "queue wait p50 (ms)",
        format!("{:.3}", s.latency.queue_wait.p50_us / 1e3),
    );
    for b in s.groups.iter().filter_map(|g| g.batching.as_ref()) {
        row(
            "batches (mean size)",
            format!("{} ({:.2})", b.batches, b.mean_size),
        );
        row(
            "batch fill wait p50 (ms)",
            format!("{:.3}", b.fill_wait.p50_us / 1e3),
        );
    }
    for g in &s.groups {
        for w in &g.workers {
            row(
                &format!(
                    "worker {}/{} (core {})",
                    g.name,
                    w.index,
                    w.core.map_or("-".into(), |c| c.to_string())
                ),
                w.counts.completed.to_string(),
            );
        }
    }
    println!("+-----------------------+--------------+");
    if angles[0] + angles[1] > 0 {
        println!("  predicted angle 0 / 180: {} / {}", angles[0], angles[1]);
    } else if let Some(o) = output {
        println!("  first output: {o}");
    }
    println!(
        "  accounting: accepted {} = completed {} + dead-lettered {} + cancelled {} + expired {}",
        c.accepted, c.completed, c.dead_lettered, c.cancelled, c.expired
    );
    if let Some(path) = &args.plot {
        plot(path, s, run_started, &done_at)?;
        println!("  plot written to {}", path.display());
    }
    if let Some(path) = &args.classes {
        let mut text = answers.join("\n");
        text.push('\n');
        std::fs::write(path, text)?;
    }
    if let Some(path) = &args.stats_json {
        std::fs::write(path, serde_json::to_string_pretty(s)?)?;
        println!("  stats written to {}", path.display());
    }
    Ok(())
}
