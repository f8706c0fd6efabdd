//! The OpenVINO backend's settings for one device group.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// OpenVINO's performance hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceHint {
    /// Lowest latency per request.
    Latency,
    /// Highest throughput over many requests.
    Throughput,
    /// Lowest latency for a single request at a time.
    CumulativeThroughput,
}

impl PerformanceHint {
    pub(crate) fn as_openvino(self) -> &'static str {
        match self {
            PerformanceHint::Latency => "LATENCY",
            PerformanceHint::Throughput => "THROUGHPUT",
            PerformanceHint::CumulativeThroughput => "CUMULATIVE_THROUGHPUT",
        }
    }
}

/// Default of [`OpenVinoConfig::max_tensor_elements`]: 2^28 elements (1 GiB
/// of f32), far above any image or sequence batch, far below what would
/// exhaust a machine.
pub const DEFAULT_MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// Default of [`OpenVinoConfig::max_model_bytes`]: 16 GiB.
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 16 << 30;

fn default_max_tensor_elements() -> usize {
    DEFAULT_MAX_TENSOR_ELEMENTS
}

fn default_max_model_bytes() -> u64 {
    DEFAULT_MAX_MODEL_BYTES
}

/// The precision OpenVINO computes in (its `INFERENCE_PRECISION_HINT`).
///
/// The trade-off: on CPUs with bf16 support (`avx512_bf16`, AMX) OpenVINO's
/// CPU plugin runs f32 models in bf16 by default, which is markedly faster
/// but keeps only 8 bits of mantissa: outputs differ from an f32 reference
/// by about 1e-3 relative, enough to flip a near-tie between classes. GPUs
/// and NPUs default to f16, with about 1e-3 relative error as well. Ask for
/// `f32` when results must match an f32 reference (tests, numerically
/// sensitive models); keep the device default for speed.
///
/// In YAML: `precision: f32` (or `bf16`, `f16`, `default`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Whatever the device picks (bf16 on CPUs that have it, f16 on GPUs
    /// and NPUs, f32 on other CPUs).
    #[default]
    Default,
    /// 32-bit float: matches an f32 reference; slowest.
    F32,
    /// bfloat16: f32's range with 8 bits of mantissa.
    Bf16,
    /// IEEE half precision.
    F16,
}

impl Precision {
    /// OpenVINO's value for the hint; `None` leaves the device's default.
    pub(crate) fn as_openvino(self) -> Option<&'static str> {
        match self {
            Precision::Default => None,
            Precision::F32 => Some("f32"),
            Precision::Bf16 => Some("bf16"),
            Precision::F16 => Some("f16"),
        }
    }
}

/// How one device group runs its model through OpenVINO.
///
/// ```
/// use accelpool::openvino::{OpenVinoConfig, PerformanceHint};
/// let c = OpenVinoConfig::new("models/tiny/tiny.onnx", "CPU")
///     .hint(PerformanceHint::Latency)
///     .inference_threads(1);
/// assert_eq!(c.device, "CPU");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenVinoConfig {
    /// The model file: ONNX (`.onnx`) or OpenVINO IR (`.xml` with its `.bin` beside it).
    pub model: PathBuf,
    /// The device as OpenVINO names it: `NPU`, `GPU`, `CPU`, `AUTO`, ...
    pub device: String,
    /// The `libopenvino_c` file or its folder (see [`library`](crate::openvino::library) for the search order).
    #[serde(default)]
    pub library: Option<PathBuf>,
    /// Load the library and the model even when other users may write them
    /// (a world-writable file, or a folder without the sticky bit). For
    /// development only: such a file can be replaced under you.
    #[serde(default)]
    pub allow_insecure_paths: bool,
    /// The most elements one input tensor may hold: a request whose shape
    /// holds more (or whose element count overflows) is refused at submit,
    /// before anything is allocated. Also bounds `reshape` and
    /// `warmup_shapes`. Default [`DEFAULT_MAX_TENSOR_ELEMENTS`].
    #[serde(default = "default_max_tensor_elements")]
    pub max_tensor_elements: usize,
    /// The largest model file (and IR weights file) accepted, in bytes.
    /// Default [`DEFAULT_MAX_MODEL_BYTES`].
    #[serde(default = "default_max_model_bytes")]
    pub max_model_bytes: u64,
    /// Skip the group, instead of failing, when the device is absent.
    #[serde(default)]
    pub optional: bool,
    /// The precision inference runs in (see [`Precision`] for the
    /// accuracy/speed trade-off); the device's default unless set.
    #[serde(default)]
    pub precision: Precision,
    /// Performance hint set before compiling.
    #[serde(default)]
    pub performance_hint: Option<PerformanceHint>,
    /// Execution streams (`NUM_STREAMS`).
    #[serde(default)]
    pub streams: Option<u32>,
    /// Threads per inference (`INFERENCE_NUM_THREADS`).
    #[serde(default)]
    pub inference_threads: Option<u32>,
    /// Model cache folder (`CACHE_DIR`): compiled blobs are reused across runs.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Any other device property, by OpenVINO's key.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Fixes input shapes before compiling, by input name (for example
    /// `x: [1, 3, 48, 192]`): a static model compiles to faster code and
    /// needs no warmup shape. Inputs not named keep the model's shape.
    #[serde(default)]
    pub reshape: BTreeMap<String, Vec<usize>>,
    /// Shapes for warmup calls of inputs that stay dynamic, by input name.
    #[serde(default)]
    pub warmup_shapes: BTreeMap<String, Vec<usize>>,
}

impl OpenVinoConfig {
    /// A model on a device, everything else default.
    pub fn new(model: impl Into<PathBuf>, device: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            device: device.into(),
            library: None,
            optional: false,
            allow_insecure_paths: false,
            max_tensor_elements: DEFAULT_MAX_TENSOR_ELEMENTS,
            max_model_bytes: DEFAULT_MAX_MODEL_BYTES,
            precision: Precision::Default,
            performance_hint: None,
            streams: None,
            inference_threads: None,
            cache_dir: None,
            properties: BTreeMap::new(),
            reshape: BTreeMap::new(),
            warmup_shapes: BTreeMap::new(),
        }
    }

    /// Fixes one input's shape before compiling.
    pub fn reshape(mut self, input: impl Into<String>, shape: impl Into<Vec<usize>>) -> Self {
        self.reshape.insert(input.into(), shape.into());
        self
    }

    /// Sets the warmup shape of a dynamic input.
    pub fn warmup_shape(mut self, input: impl Into<String>, shape: impl Into<Vec<usize>>) -> Self {
        self.warmup_shapes.insert(input.into(), shape.into());
        self
    }

    /// Sets the performance hint.
    pub fn hint(mut self, h: PerformanceHint) -> Self {
        self.performance_hint = Some(h);
        self
    }

    /// Sets the inference precision.
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }

    /// Sets the number of streams.
    pub fn streams(mut self, n: u32) -> Self {
        self.streams = Some(n);
        self
    }

    /// Sets the threads per inference.
    pub fn inference_threads(mut self, n: u32) -> Self {
        self.inference_threads = Some(n);
        self
    }

    /// Sets the model cache folder.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Sets where the OpenVINO C library is.
    pub fn library(mut self, path: impl Into<PathBuf>) -> Self {
        self.library = Some(path.into());
        self
    }

    /// Allows world-writable library and model files (development only).
    pub fn allow_insecure_paths(mut self, yes: bool) -> Self {
        self.allow_insecure_paths = yes;
        self
    }

    /// Sets the most elements one input tensor may hold.
    pub fn max_tensor_elements(mut self, n: usize) -> Self {
        self.max_tensor_elements = n;
        self
    }

    /// Sets the largest model file accepted, in bytes.
    pub fn max_model_bytes(mut self, n: u64) -> Self {
        self.max_model_bytes = n;
        self
    }

    /// Marks the group optional: skipped when its device is absent.
    pub fn optional(mut self, yes: bool) -> Self {
        self.optional = yes;
        self
    }
}
