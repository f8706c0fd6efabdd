//! The OCR pipeline end to end on rendered images: images per second and
//! per-image p50/p99, in one run:
//!
//! 1. accelpool: the three models in one runtime (`config/runtime/ppocr.yaml`),
//!    images in parallel on a rayon pool of four threads, recogniser crops
//!    batched 6 at a time;
//! 2. the same without batching the recogniser (one crop per call);
//! 3. the baseline written the obvious way: the same pre- and
//!    post-processing, images one after another on one thread, each model
//!    called directly through the `openvino` crate (precision f32, as the
//!    runtime's configuration sets it), recogniser batched as in 1.
//!
//! Also the share of time per stage (pre-processing, det, cls, rec,
//! post-processing) of each, drawn to `plots/ocr_stages.svg` beside the
//! figures, which go to `ocr.json` in `ACCELPOOL_BENCH_OUT` (by default
//! `bench-results/` at the repository's root).
//!
//!     cargo bench -p accelpool-ocr --bench pipeline
//!     ACCELPOOL_BENCH_QUICK=1 cargo bench -p accelpool-ocr --bench pipeline

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accelpool::Priority;
use accelpool_ocr::engine::{Engine, Output, Pending, Stage};
use accelpool_ocr::testdata::{generate, load_font, TestDataOptions};
use accelpool_ocr::{Dictionary, Ocr, OcrError, OcrOptions, RuntimeEngine, StageTimes};
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, RwPropertyKey, Shape, Tensor,
};
use plotters::prelude::*;
use rayon::prelude::*;
use serde_json::json;
use std::sync::Mutex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The three models compiled once each, called in place. The baseline
/// runs on one thread: the locks (there because `Engine` is `Sync`) are
/// never contended.
struct Direct {
    requests: [Mutex<InferRequest>; 3],
    _compiled: Mutex<Vec<CompiledModel>>,
    _core: Mutex<Core>,
}

impl Direct {
    fn new() -> Self {
        accelpool::openvino::library::load(None, false).unwrap_or_else(|e| panic!("{e}"));
        let mut core = Core::new().expect("an OpenVINO core");
        core.set_property(
            &DeviceType::CPU,
            &RwPropertyKey::HintInferencePrecision,
            "f32",
        )
        .expect("f32 precision");
        let mut compiled = Vec::new();
        let mut requests = Vec::new();
        for name in ["det", "cls", "rec"] {
            let path = root().join(format!("models/ppocr/{name}.onnx"));
            let model = core
                .read_model_from_file(path.to_str().unwrap(), "")
                .expect("the model");
            let mut c = core
                .compile_model(&model, DeviceType::CPU)
                .expect("compiled");
            requests.push(Mutex::new(c.create_infer_request().expect("a request")));
            compiled.push(c);
        }
        let mut r = requests.into_iter();
        Self {
            requests: [r.next().unwrap(), r.next().unwrap(), r.next().unwrap()],
            _compiled: Mutex::new(compiled),
            _core: Mutex::new(core),
        }
    }
}

struct Ready(Result<Output, OcrError>);

impl Pending for Ready {
    fn wait(self: Box<Self>) -> Result<Output, OcrError> {
        self.0
    }
}

impl Engine for Direct {
    fn start(
        &self,
        stage: Stage,
        shape: [usize; 4],
        x: Vec<f32>,
        _: Priority,
    ) -> Result<Box<dyn Pending + '_>, OcrError> {
        let i = match stage {
            Stage::Det => 0,
            Stage::Cls => 1,
            Stage::Rec => 2,
        };
        let fail = |e: openvino::InferenceError| OcrError::Inference {
            model: stage.model(),
            reason: e.to_string(),
        };
        let mut r = self.requests[i].lock().expect("not poisoned");
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let mut t =
            Tensor::new(ElementType::F32, &Shape::new(&dims).map_err(fail)?).map_err(fail)?;
        t.get_data_mut::<f32>().map_err(fail)?.copy_from_slice(&x);
        r.set_input_tensor_by_index(0, &t).map_err(fail)?;
        r.infer().map_err(fail)?;
        let o = r.get_output_tensor_by_index(0).map_err(fail)?;
        let shape: Vec<usize> = o
            .get_shape()
            .map_err(fail)?
            .get_dimensions()
            .iter()
            .map(|&d| d as usize)
            .collect();
        let data = o.get_data::<f32>().map_err(fail)?.to_vec();
        Ok(Box::new(Ready(Ok(Output { shape, data }))))
    }
}

/// Images per second, per-image latencies and summed stage times.
struct Run {
    wall: Duration,
    latencies: Vec<Duration>,
    times: StageTimes,
    lines: usize,
}

impl Run {
    fn json(&mut self) -> serde_json::Value {
        self.latencies.sort();
        let pct = |q: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies[i].as_secs_f64() * 1e3
        };
        json!({
            "images_per_s": self.latencies.len() as f64 / self.wall.as_secs_f64(),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "lines": self.lines,
            "stage_share": shares(&self.times),
        })
    }
}

fn shares(t: &StageTimes) -> serde_json::Value {
    let parts = stage_parts(t);
    let total: f64 = parts.iter().map(|p| p.1).sum();
    serde_json::Value::Object(
        parts
            .iter()
            .map(|(k, v)| (k.to_string(), json!((v / total * 1000.0).round() / 1000.0)))
            .collect(),
    )
}

fn stage_parts(t: &StageTimes) -> [(&'static str, f64); 5] {
    [
        ("pre", t.pre.as_secs_f64()),
        ("det", t.det.as_secs_f64()),
        ("cls", t.cls.as_secs_f64()),
        ("rec", t.rec.as_secs_f64()),
        ("post", t.post.as_secs_f64()),
    ]
}

fn run<E: Engine>(ocr: &Ocr<E>, images: &[image::RgbImage], parallel: bool) -> Run {
    let one = |img: &image::RgbImage| {
        let t = Instant::now();
        let page = ocr
            .read(img, Priority::Normal)
            .unwrap_or_else(|e| panic!("{e}"));
        (t.elapsed(), page)
    };
    let start = Instant::now();
    let pages: Vec<_> = if parallel {
        // Four images in flight keep every model's workers fed on two
        // cores while one image's pre-processing runs.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .expect("a thread pool");
        pool.install(|| images.par_iter().map(one).collect())
    } else {
        images.iter().map(one).collect()
    };
    let wall = start.elapsed();
    let mut times = StageTimes::default();
    for (_, p) in &pages {
        times.add(&p.times);
    }
    Run {
        wall,
        latencies: pages.iter().map(|p| p.0).collect(),
        times,
        lines: pages.iter().map(|p| p.1.lines.len()).sum(),
    }
}

fn plot(path: &Path, runs: &[(&str, &StageTimes)]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (820, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("OCR pipeline: share of time per stage", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..100f64, 0..runs.len())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("% of the time spent on an image")
        .y_label_formatter(&|i| runs.get(*i).map_or(String::new(), |r| r.0.to_string()))
        .y_labels(runs.len())
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN];
    for (k, name) in ["pre", "det", "cls", "rec", "post"].iter().enumerate() {
        let bars: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, (_, t))| {
                let parts = stage_parts(t);
                let total: f64 = parts.iter().map(|p| p.1).sum();
                let before: f64 = parts[..k].iter().map(|p| p.1).sum::<f64>() / total * 100.0;
                let this = parts[k].1 / total * 100.0;
                Rectangle::new(
                    [(before, i), (before + this, i + 1)],
                    colors[k].mix(0.6).filled(),
                )
            })
            .collect();
        chart.draw_series(bars)?.label(*name).legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 10, y + 5)], colors[k].mix(0.6).filled())
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    let quick = std::env::var("ACCELPOOL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let count = if quick { 16 } else { 50 };
    std::env::set_current_dir(root()).expect("the repository's root");
    let font = load_font(&root().join("models/fonts/DejaVuSans.ttf"))
        .unwrap_or_else(|e| panic!("{e}; run ./scripts/test-tools.sh"));
    let images: Vec<_> = generate(&font, 7, count, &TestDataOptions::default())
        .into_iter()
        .map(|s| s.image)
        .collect();
    let dict = Dictionary::load(&root().join("models/ppocr/ppocr_keys_v1.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    let config = root().join("config/runtime/ppocr.yaml");
    let batched = Ocr::new(
        RuntimeEngine::from_yaml_file(&config).unwrap_or_else(|e| panic!("{e}")),
        dict.clone(),
        OcrOptions::default(),
    );
    let direct = Ocr::new(Direct::new(), dict, OcrOptions::default());
    // Warm-up: every shape once through each.
    run(&batched, &images[..4.min(count)], true);
    run(&direct, &images[..4.min(count)], false);

    let mut pool = run(&batched, &images, true);
    drop(batched);
    let unbatched = Ocr::new(
        RuntimeEngine::from_yaml_file(&config).unwrap_or_else(|e| panic!("{e}")),
        Dictionary::load(&root().join("models/ppocr/ppocr_keys_v1.txt")).unwrap(),
        OcrOptions {
            rec_batch: 1,
            ..OcrOptions::default()
        },
    );
    run(&unbatched, &images[..4.min(count)], true);
    let mut single = run(&unbatched, &images, true);
    let mut base = run(&direct, &images, false);

    // Throughput of `a` over that of `b` (same images: the inverse ratio
    // of their wall times).
    let ratio = |a: &Run, b: &Run| {
        ((b.wall.as_secs_f64() / a.wall.as_secs_f64()) * 1000.0).round() / 1000.0
    };
    let out = json!({
        "images": count,
        "accelpool_rec_batched": pool.json(),
        "accelpool_rec_unbatched": single.json(),
        "direct_openvino_sequential": base.json(),
        "ratio_throughput_batched_vs_direct": ratio(&pool, &base),
        "ratio_throughput_unbatched_vs_direct": ratio(&single, &base),
        "ratio_throughput_batched_vs_unbatched": ratio(&pool, &single),
    });
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("{text}");
    let dir = std::env::var_os("ACCELPOOL_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("bench-results"));
    std::fs::create_dir_all(dir.join("plots")).unwrap();
    std::fs::write(dir.join("ocr.json"), text).unwrap();
    let svg = dir.join("plots/ocr_stages.svg");
    if let Err(e) = plot(
        &svg,
        &[
            ("accelpool, rec batched", &pool.times),
            ("accelpool, rec unbatched", &single.times),
            ("direct OpenVINO, sequential", &base.times),
        ],
    ) {
        eprintln!("ocr bench: cannot draw {}: {e}", svg.display());
    }
}
