//! One image to text: detection, crops, direction, recognition.

use std::time::{Duration, Instant};

use accelpool::Priority;
use image::{imageops, RgbImage};
use serde::Serialize;

use crate::det::{self, DetOptions};
use crate::engine::{Engine, Output, Stage};
use crate::geometry::Quad;
use crate::{cls, crop, ctc, rec, Dictionary, OcrError};

/// Settings of the pipeline; the defaults are PP-OCR's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OcrOptions {
    /// Detection.
    pub det: DetOptions,
    /// Run the direction classifier (and turn the lines it calls 180°).
    pub classify: bool,
    /// A line is turned when the classifier says 180° with at least this
    /// probability.
    pub cls_threshold: f32,
    /// Crops per classifier call.
    pub cls_batch: usize,
    /// Crops per recogniser call (padded to the widest); 1 runs each crop
    /// alone.
    pub rec_batch: usize,
    /// Lines read with a lower confidence are dropped.
    pub min_confidence: f32,
    /// A line the classifier was unsure of, read with a confidence under
    /// this, is read again turned 180°, and the likelier reading kept.
    pub retry_below: f32,
}

impl Default for OcrOptions {
    fn default() -> Self {
        Self {
            det: DetOptions::default(),
            classify: true,
            cls_threshold: 0.9,
            cls_batch: 6,
            rec_batch: 6,
            min_confidence: 0.5,
            retry_below: 0.9,
        }
    }
}

/// One line of text found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Its box in the image, top-left corner first.
    #[serde(rename = "box")]
    pub quad: Quad,
    /// The text read.
    pub text: String,
    /// The recogniser's mean character probability.
    pub confidence: f32,
    /// The classifier found it upside down, and it was turned to read.
    pub turned: bool,
}

/// Time spent per stage on one image; the model stages include their wait
/// in the runtime's queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Resizing, normalising, cropping and batching.
    #[serde(with = "secs")]
    pub pre: Duration,
    /// The detector.
    #[serde(with = "secs")]
    pub det: Duration,
    /// The direction classifier.
    #[serde(with = "secs")]
    pub cls: Duration,
    /// The recogniser.
    #[serde(with = "secs")]
    pub rec: Duration,
    /// DB post-processing and CTC decoding.
    #[serde(with = "secs")]
    pub post: Duration,
}

mod secs {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl StageTimes {
    /// Adds `o`'s times to these.
    pub fn add(&mut self, o: &StageTimes) {
        self.pre += o.pre;
        self.det += o.det;
        self.cls += o.cls;
        self.rec += o.rec;
        self.post += o.post;
    }
}

/// What was read in one image.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Page {
    /// Lines, top to bottom, then left to right.
    pub lines: Vec<Line>,
    /// Time per stage.
    pub times: StageTimes,
}

/// The OCR pipeline over an engine.
pub struct Ocr<E> {
    engine: E,
    dict: Dictionary,
    opts: OcrOptions,
}

impl<E: Engine> Ocr<E> {
    /// A pipeline over `engine` with the recogniser's dictionary.
    pub fn new(engine: E, dict: Dictionary, opts: OcrOptions) -> Self {
        Self { engine, dict, opts }
    }

    /// Its engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Reads the text of `img`, its model calls at `priority`.
    pub fn read(&self, img: &RgbImage, priority: Priority) -> Result<Page, OcrError> {
        let mut times = StageTimes::default();
        let mut clock = Instant::now();
        let mut lap = |slot: &mut Duration| {
            let now = Instant::now();
            *slot += now - clock;
            clock = now;
        };

        // Detection.
        let input = det::prepare(img, self.opts.det.max_side);
        let (w, h) = (input.size.0 as usize, input.size.1 as usize);
        lap(&mut times.pre);
        let prob = self
            .engine
            .start(Stage::Det, [1, 3, h, w], input.data, priority)?
            .wait()?;
        lap(&mut times.det);
        expect_shape("det", &prob, &[1, 1, h, w])?;
        let (sx, sy) = (
            img.width() as f32 / w as f32,
            img.height() as f32 / h as f32,
        );
        let quads: Vec<Quad> = det::boxes(&prob.data, w, h, &self.opts.det)
            .into_iter()
            .map(|q| q.map(|(x, y)| (x * sx, y * sy)))
            .collect();
        lap(&mut times.post);

        // Crops.
        let mut kept = Vec::with_capacity(quads.len());
        let mut crops = Vec::with_capacity(quads.len());
        for q in quads {
            if let Some(c) = crop::rectify(img, &q) {
                kept.push(q);
                crops.push(c);
            }
        }
        lap(&mut times.pre);

        // Direction.
        let mut turned = vec![false; crops.len()];
        // Lines the classifier was unsure of (no class reached the
        // threshold): read both ways round, below.
        let mut unsure = vec![!self.opts.classify; crops.len()];
        if self.opts.classify && !crops.is_empty() {
            let order: Vec<usize> = (0..crops.len()).collect();
            let outputs = self.run_batches(
                Stage::Cls,
                &crops,
                &order,
                self.opts.cls_batch,
                priority,
                |b| {
                    (
                        [b.len(), 3, cls::HEIGHT as usize, cls::WIDTH as usize],
                        cls::prepare(b),
                    )
                },
                &mut times,
                &mut lap,
            )?;
            for (idx, out) in outputs {
                expect_shape("cls", &out, &[idx.len(), 2])?;
                for (&i, (t, p)) in idx
                    .iter()
                    .zip(cls::upside_down(&out.data, self.opts.cls_threshold))
                {
                    turned[i] = t;
                    unsure[i] = p < self.opts.cls_threshold;
                }
            }
            lap(&mut times.post);
            for (c, &t) in crops.iter_mut().zip(&turned) {
                if t {
                    imageops::rotate180_in_place(c);
                }
            }
            lap(&mut times.pre);
        }

        // Recognition.
        let all: Vec<usize> = (0..crops.len()).collect();
        let mut read = self.recognise(&crops, &all, priority, &mut times, &mut lap)?;
        // A line the classifier was unsure of and the recogniser read with
        // little confidence may be the other way up: read it turned, and
        // keep the likelier reading.
        let doubtful: Vec<usize> = all
            .into_iter()
            .filter(|&i| unsure[i] && read[i].confidence < self.opts.retry_below)
            .collect();
        if !doubtful.is_empty() {
            for &i in &doubtful {
                imageops::rotate180_in_place(&mut crops[i]);
            }
            lap(&mut times.pre);
            let again = self.recognise(&crops, &doubtful, priority, &mut times, &mut lap)?;
            for i in doubtful {
                if again[i].confidence > read[i].confidence {
                    read[i] = again[i].clone();
                    turned[i] = !turned[i];
                }
            }
        }

        let lines = kept
            .into_iter()
            .zip(turned)
            .zip(read)
            .filter_map(|((quad, turned), d)| {
                let text = d.text.trim().to_owned();
                (!text.is_empty() && d.confidence >= self.opts.min_confidence).then_some(Line {
                    quad,
                    text,
                    confidence: d.confidence,
                    turned,
                })
            })
            .collect();
        lap(&mut times.post);
        Ok(Page { lines, times })
    }

    /// Reads the crops `which` (crops of like aspect ratio batched
    /// together, so little of each batch is padding); a line per crop,
    /// empty for those not read.
    fn recognise(
        &self,
        crops: &[RgbImage],
        which: &[usize],
        priority: Priority,
        times: &mut StageTimes,
        lap: &mut impl FnMut(&mut Duration),
    ) -> Result<Vec<ctc::Decoded>, OcrError> {
        let mut order = which.to_vec();
        let ratio = |i: &usize| crops[*i].width() as f32 / crops[*i].height().max(1) as f32;
        order.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let outputs = self.run_batches(
            Stage::Rec,
            crops,
            &order,
            self.opts.rec_batch,
            priority,
            |b| {
                let (x, width) = rec::prepare(b);
                ([b.len(), 3, rec::HEIGHT as usize, width as usize], x)
            },
            times,
            lap,
        )?;
        let mut read = vec![ctc::Decoded::default(); crops.len()];
        let classes = self.dict.len();
        for (idx, out) in outputs {
            if out.shape.len() != 3 || out.shape[0] != idx.len() || out.shape[2] != classes {
                return Err(OcrError::Output {
                    model: "rec",
                    reason: format!(
                        "output shape {:?}; expected [{}, steps, {classes}] \
                         (is the dictionary the recogniser's?)",
                        out.shape,
                        idx.len()
                    ),
                });
            }
            let per = out.shape[1] * classes;
            for (k, &i) in idx.iter().enumerate() {
                read[i] = ctc::decode(&out.data[k * per..(k + 1) * per], classes, &self.dict);
            }
        }
        lap(&mut times.post);
        Ok(read)
    }

    /// Runs `stage` on `crops` in `order`, `batch` at a time: prepares
    /// every call's input (timed as pre-processing), starts them all, and
    /// waits for each (timed as the stage); each output with its crops'
    /// indices.
    #[allow(clippy::too_many_arguments)]
    fn run_batches(
        &self,
        stage: Stage,
        crops: &[RgbImage],
        order: &[usize],
        batch: usize,
        priority: Priority,
        prepare: impl Fn(&[&RgbImage]) -> ([usize; 4], Vec<f32>),
        times: &mut StageTimes,
        lap: &mut impl FnMut(&mut Duration),
    ) -> Result<Vec<(Vec<usize>, Output)>, OcrError> {
        let inputs: Vec<_> = order
            .chunks(batch.max(1))
            .map(|idx| {
                let batch: Vec<&RgbImage> = idx.iter().map(|&i| &crops[i]).collect();
                (idx.to_vec(), prepare(&batch))
            })
            .collect();
        lap(&mut times.pre);
        let calls = inputs
            .into_iter()
            .map(|(idx, (shape, x))| Ok((idx, self.engine.start(stage, shape, x, priority)?)))
            .collect::<Result<Vec<_>, OcrError>>()?;
        let outputs = calls
            .into_iter()
            .map(|(idx, call)| Ok((idx, call.wait()?)))
            .collect::<Result<Vec<_>, OcrError>>()?;
        lap(match stage {
            Stage::Det => &mut times.det,
            Stage::Cls => &mut times.cls,
            Stage::Rec => &mut times.rec,
        });
        Ok(outputs)
    }
}

fn expect_shape(model: &'static str, out: &Output, shape: &[usize]) -> Result<(), OcrError> {
    if out.shape == shape {
        Ok(())
    } else {
        Err(OcrError::Output {
            model,
            reason: format!("output shape {:?}; expected {shape:?}", out.shape),
        })
    }
}
