//! What runs the three models: the accelpool runtime, or anything else
//! that takes a tensor and gives one back (the benchmark's baseline calls
//! OpenVINO directly).

use std::path::Path;

use accelpool::openvino::{Tensor, TensorData, Tensors};
use accelpool::{Priority, Request, Runtime, RuntimeConfig, TaskHandle};

use crate::OcrError;

/// One of the three models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The text detector (`det`).
    Det,
    /// The direction classifier (`cls`).
    Cls,
    /// The recogniser (`rec`).
    Rec,
}

impl Stage {
    /// The model's name in the runtime's configuration.
    pub fn model(self) -> &'static str {
        match self {
            Stage::Det => "det",
            Stage::Cls => "cls",
            Stage::Rec => "rec",
        }
    }
}

/// A model's output: its shape and elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<f32>,
}

/// A call started on an engine, to be waited for.
pub trait Pending: Send {
    /// The model's output.
    fn wait(self: Box<Self>) -> Result<Output, OcrError>;
}

/// Runs the three models. `start` may return before the call is done, so
/// that one image's crops run on several workers at once.
pub trait Engine: Sync {
    /// Starts `stage` on the `n x 3 x h x w` input `x`.
    fn start(
        &self,
        stage: Stage,
        shape: [usize; 4],
        x: Vec<f32>,
        priority: Priority,
    ) -> Result<Box<dyn Pending + '_>, OcrError>;
}

/// The three models in one accelpool runtime: one core budget, each model
/// its own device groups, queues and workers.
pub struct RuntimeEngine {
    rt: Runtime<Tensors, Tensors>,
}

impl RuntimeEngine {
    /// Starts the models of a runtime YAML file, which must name `det`,
    /// `cls` and `rec`.
    pub fn from_yaml_file(path: &Path) -> Result<Self, OcrError> {
        let cfg =
            RuntimeConfig::from_yaml_file(path).map_err(|e| OcrError::Runtime(e.to_string()))?;
        for stage in [Stage::Det, Stage::Cls, Stage::Rec] {
            if !cfg.models.contains_key(stage.model()) {
                return Err(OcrError::Runtime(format!(
                    "{}: no model `{}`; the OCR pipeline needs `det`, `cls` and `rec`",
                    path.display(),
                    stage.model()
                )));
            }
        }
        let rt =
            Runtime::from_openvino_config(cfg).map_err(|e| OcrError::Runtime(e.to_string()))?;
        Ok(Self { rt })
    }

    /// The runtime, for its stats.
    pub fn runtime(&self) -> &Runtime<Tensors, Tensors> {
        &self.rt
    }
}

struct RuntimeCall {
    stage: Stage,
    handle: TaskHandle<Tensors>,
}

impl Pending for RuntimeCall {
    fn wait(self: Box<Self>) -> Result<Output, OcrError> {
        let model = self.stage.model();
        let out = self.handle.wait().map_err(|e| OcrError::Inference {
            model,
            reason: e.to_string(),
        })?;
        first_f32(model, out)
    }
}

/// The first output of a model, as floats.
pub fn first_f32(model: &'static str, outputs: Tensors) -> Result<Output, OcrError> {
    let bad = |reason: String| OcrError::Output { model, reason };
    let t = outputs
        .into_iter()
        .next()
        .ok_or_else(|| bad("no output".into()))?;
    let data = match t.data {
        TensorData::F32(v) => v,
        other => {
            return Err(bad(format!(
                "output `{}` holds {}, not f32",
                t.name,
                other.element_name()
            )))
        }
    };
    if t.shape.iter().product::<usize>() != data.len() {
        return Err(bad(format!(
            "output `{}` has shape {:?} but {} elements",
            t.name,
            t.shape,
            data.len()
        )));
    }
    Ok(Output {
        shape: t.shape,
        data,
    })
}

impl Engine for RuntimeEngine {
    fn start(
        &self,
        stage: Stage,
        shape: [usize; 4],
        x: Vec<f32>,
        priority: Priority,
    ) -> Result<Box<dyn Pending + '_>, OcrError> {
        let request = Request::new(vec![Tensor::f32("x", shape, x)]).priority(priority);
        let handle = self
            .rt
            .submit(stage.model(), request)
            .map_err(|e| OcrError::Inference {
                model: stage.model(),
                reason: e.to_string(),
            })?;
        Ok(Box::new(RuntimeCall { stage, handle }))
    }
}
