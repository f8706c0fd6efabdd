//! The OpenVINO session factory (one compiled model per device group) and
//! session (one infer request per worker).

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, PartialShape, PropertyKey,
    RwPropertyKey, Shape, Tensor as OvTensor,
};
use parking_lot::Mutex;

use super::library;
use super::OpenVinoConfig;
use crate::core::{
    BatchItem, BatchResult, InputError, RunContext, Session, SessionError, SessionFactory,
    WorkerInfo,
};
use crate::tensor::{find_input, InputShape, ShapeText, Tensor, TensorData, Tensors};

/// Why the OpenVINO backend could not start or run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenVinoError {
    /// No OpenVINO C library was found.
    #[error(
        "the OpenVINO runtime library (libopenvino_c) was not found; looked at: {}. \
         Install it with `scripts/setup.sh` (the `openvino` wheel from PyPI), or set {} \
         or the backend's `library` to the libopenvino_c file or its folder",
        searched.join("; "), library::LIBRARY_ENV
    )]
    LibraryNotFound {
        /// Each place looked at.
        searched: Vec<String>,
    },
    /// The file found or given is a shared library, but not OpenVINO's C
    /// library (for example `libopenvino.so`, the C++ library beside it).
    #[error(
        "{} is not the OpenVINO C library: it has no `{missing}` function. Point the backend's \
         `library` or {} at {}",
        path.display(), library::LIBRARY_ENV,
        instead.as_ref().map_or_else(
            || "the libopenvino_c file (libopenvino_c.so*) or its folder".to_owned(),
            |p| format!("{} instead", p.display())
        )
    )]
    NotOpenVinoC {
        /// The file that was checked.
        path: PathBuf,
        /// A C API function it lacks.
        missing: &'static str,
        /// The C library found beside it, if any.
        instead: Option<PathBuf>,
    },
    /// The runtime is older than this crate supports.
    #[error(
        "the OpenVINO runtime at {} is version {version}; accelpool needs {minimum} or newer. \
         Install a newer one with `scripts/setup.sh`, or point the backend's `library` at it",
        path.display()
    )]
    LibraryTooOld {
        /// The library loaded.
        path: PathBuf,
        /// Its build number.
        version: String,
        /// The oldest supported release.
        minimum: String,
    },
    /// A library or model file that other users may change is refused.
    #[error(
        "refusing the {what} {}: {reason}, so another user could replace what runs. \
         Fix the permissions (chmod o-w), or set `allow_insecure_paths: true` in the backend \
         for development only",
        path.display()
    )]
    InsecurePath {
        /// `library` or `model`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Which file or folder is writable by others.
        reason: String,
    },
    /// The model file is larger than the backend's `max_model_bytes`.
    #[error(
        "model file {} is {size} bytes, over `max_model_bytes` ({limit}); raise the limit in \
         the backend if the model is meant to be this large",
        path.display()
    )]
    ModelTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A shape in the backend's settings (`reshape`, `warmup_shapes`) has
    /// more elements than `max_tensor_elements`.
    #[error("`{setting}.{input}`: shape {shape:?} has more elements than `max_tensor_elements` ({limit})")]
    ShapeTooLarge {
        /// `reshape` or `warmup_shapes`.
        setting: &'static str,
        /// The input named.
        input: String,
        /// The shape.
        shape: Vec<usize>,
        /// The configured limit.
        limit: usize,
    },
    /// A library was found but could not be loaded.
    #[error("could not load the OpenVINO library at {}: {message}", path.display())]
    LibraryLoad {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The model file does not exist.
    #[error("model file {} not found; run `scripts/setup.sh` to fetch the real models, or fix the `model` path", path.display())]
    ModelNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The model path is a folder, not a model file.
    #[error("model path {} is a directory; give the model file inside it (an `.onnx` file, or an OpenVINO IR `.xml` with its `.bin` beside it)", path.display())]
    ModelIsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The device is not on this machine.
    #[error("device `{device}` is not available (this machine has: {}); use one of those, or mark the group `optional`", available.join(", "))]
    DeviceNotFound {
        /// The device asked for.
        device: String,
        /// The devices OpenVINO sees.
        available: Vec<String>,
    },
    /// The model uses an element type this backend does not carry.
    #[error("{what} `{name}` has element type {element}, which is not supported (f32, f16, u8, i32, i64 are)")]
    UnsupportedElement {
        /// `input` or `output`.
        what: &'static str,
        /// Its name.
        name: String,
        /// The element type.
        element: String,
    },
    /// An OpenVINO call failed.
    #[error("OpenVINO failed to {step}: {message}")]
    Call {
        /// What was being done.
        step: &'static str,
        /// OpenVINO's message.
        message: String,
    },
}

impl OpenVinoError {
    /// True when the error is that the device is not on this machine.
    pub fn is_device_absent(&self) -> bool {
        matches!(self, OpenVinoError::DeviceNotFound { .. })
    }

    fn call(step: &'static str) -> impl FnOnce(openvino::InferenceError) -> Self {
        move |e| OpenVinoError::Call {
            step,
            message: match openvino::get_last_error_message() {
                Some(m) if !m.is_empty() => format!("{e}: {m}"),
                _ => e.to_string(),
            },
        }
    }
}

impl From<OpenVinoError> for SessionError {
    fn from(e: OpenVinoError) -> Self {
        SessionError::permanent(e.to_string())
    }
}

/// Element types carried between requests and OpenVINO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    F16,
    U8,
    I32,
    I64,
}

impl Element {
    fn from_openvino(
        e: ElementType,
        what: &'static str,
        name: &str,
    ) -> Result<Self, OpenVinoError> {
        Ok(match e {
            ElementType::F32 => Element::F32,
            ElementType::F16 => Element::F16,
            ElementType::U8 => Element::U8,
            ElementType::I32 => Element::I32,
            ElementType::I64 => Element::I64,
            other => {
                return Err(OpenVinoError::UnsupportedElement {
                    what,
                    name: name.to_owned(),
                    element: other.to_string(),
                })
            }
        })
    }

    fn to_openvino(self) -> ElementType {
        match self {
            Element::F32 => ElementType::F32,
            Element::F16 => ElementType::F16,
            Element::U8 => ElementType::U8,
            Element::I32 => ElementType::I32,
            Element::I64 => ElementType::I64,
        }
    }

    /// The request data type this element is given as (`f16` inputs take `f32` data).
    fn data(self) -> crate::tensor::ElementType {
        use crate::tensor::ElementType as Data;
        match self {
            Element::F32 | Element::F16 => Data::F32,
            Element::U8 => Data::U8,
            Element::I32 => Data::I32,
            Element::I64 => Data::I64,
        }
    }
}

/// What one model input takes: its name, element type and dimensions
/// (`None` for a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// The input's name.
    pub name: String,
    element: Element,
    /// Each dimension: `Some(n)` fixed, `None` dynamic.
    pub dims: Vec<Option<usize>>,
}

impl InputShape for InputSpec {
    fn name(&self) -> &str {
        &self.name
    }

    /// The element type a request gives (`f16` inputs take `f32` data).
    fn element(&self) -> crate::tensor::ElementType {
        self.element.data()
    }

    fn dims(&self) -> &[Option<usize>] {
        &self.dims
    }
}

/// Builds OpenVINO sessions for one device group: the model is compiled
/// once, here, and each worker's session is one infer request on it.
pub struct OpenVinoFactory {
    compiled: Mutex<CompiledModel>,
    /// For a model reshaped to a fixed batch above 1: the same model
    /// compiled for one row, and its inputs.
    single: Option<(Mutex<CompiledModel>, Arc<[InputSpec]>)>,
    // Kept alive as long as the compiled model; never used after compiling.
    _core: Mutex<Core>,
    inputs: Arc<[InputSpec]>,
    outputs: Arc<[(String, Element)]>,
    device: String,
    model: PathBuf,
    /// The precision the compiled model runs in, as OpenVINO reports it.
    precision: String,
    /// `max_tensor_elements` from the config.
    max_elements: usize,
    warmup: Result<Arc<Tensors>, String>,
    compilations: AtomicU64,
    requests: AtomicU64,
}

impl fmt::Debug for OpenVinoFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenVinoFactory")
            .field("device", &self.device)
            .field("inputs", &self.inputs)
            .finish()
    }
}

impl OpenVinoFactory {
    /// Loads the runtime, checks the device, applies its properties, reads
    /// the model and compiles it.
    pub fn new(config: &OpenVinoConfig) -> Result<Self, OpenVinoError> {
        library::load(config.library.as_deref(), config.allow_insecure_paths)?;
        check_model_file(config)?;
        for (setting, shapes) in [
            ("reshape", &config.reshape),
            ("warmup_shapes", &config.warmup_shapes),
        ] {
            for (input, shape) in shapes {
                if crate::tensor::element_count(shape, config.max_tensor_elements).is_none() {
                    return Err(OpenVinoError::ShapeTooLarge {
                        setting,
                        input: input.clone(),
                        shape: shape.clone(),
                        limit: config.max_tensor_elements,
                    });
                }
            }
        }
        let mut core = Core::new().map_err(|e| OpenVinoError::Call {
            step: "create its core",
            message: e.to_string(),
        })?;
        check_device(&core, &config.device)?;
        let device = DeviceType::from(config.device.as_str());
        let props = device_properties(config);
        for (key, value) in &props {
            core.set_property(&device, key, value)
                .map_err(OpenVinoError::call("set a device property"))?;
        }
        let model_path = config.model.to_string_lossy();
        let weights = if config.model.extension().is_some_and(|e| e == "xml") {
            config
                .model
                .with_extension("bin")
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        let read = |core: &mut Core, shapes: &BTreeMap<String, Vec<usize>>| {
            let mut model = core
                .read_model_from_file(&model_path, &weights)
                .map_err(OpenVinoError::call("read the model"))?;
            reshape(&mut model, shapes)?;
            Ok::<_, OpenVinoError>(model)
        };
        let model = read(&mut core, &config.reshape)?;
        let mut inputs = Vec::new();
        for i in 0..model
            .get_inputs_len()
            .map_err(OpenVinoError::call("list the model's inputs"))?
        {
            let node = model
                .get_input_by_index(i)
                .map_err(OpenVinoError::call("read an input"))?;
            let name = node
                .get_name()
                .map_err(OpenVinoError::call("read an input's name"))?;
            let element = Element::from_openvino(
                node.get_element_type()
                    .map_err(OpenVinoError::call("read an input's type"))?,
                "input",
                &name,
            )?;
            let shape = node
                .get_partial_shape()
                .map_err(OpenVinoError::call("read an input's shape"))?;
            let dims = shape
                .get_dimensions()
                .iter()
                .map(|d| (!d.is_dynamic()).then(|| d.get_min() as usize))
                .collect();
            inputs.push(InputSpec {
                name,
                element,
                dims,
            });
        }
        let compiled = core
            .compile_model(&model, device)
            .map_err(OpenVinoError::call("compile the model"))?;
        // Reshaped to a fixed batch above 1 (for batching): also compile it
        // for one row, so a lone request runs unpadded.
        let fixed_batch = config
            .reshape
            .values()
            .any(|d| d.first().is_some_and(|&b| b > 1));
        let single = if fixed_batch {
            let one_row: BTreeMap<String, Vec<usize>> = config
                .reshape
                .iter()
                .map(|(name, dims)| {
                    let mut dims = dims.clone();
                    dims[0] = 1;
                    (name.clone(), dims)
                })
                .collect();
            let model = read(&mut core, &one_row)?;
            let compiled = core
                .compile_model(&model, DeviceType::from(config.device.as_str()))
                .map_err(OpenVinoError::call("compile the model for one row"))?;
            let specs: Arc<[InputSpec]> = inputs
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    if let Some(d) = s.dims.first_mut() {
                        *d = Some(1);
                    }
                    s
                })
                .collect();
            Some((Mutex::new(compiled), specs))
        } else {
            None
        };
        let mut outputs = Vec::new();
        for i in 0..compiled
            .get_output_size()
            .map_err(OpenVinoError::call("list the model's outputs"))?
        {
            let node = compiled
                .get_output_by_index(i)
                .map_err(OpenVinoError::call("read an output"))?;
            let name = node.get_name().unwrap_or_else(|_| format!("output{i}"));
            let element = Element::from_openvino(
                node.get_element_type()
                    .map_err(OpenVinoError::call("read an output's type"))?,
                "output",
                &name,
            )?;
            outputs.push((name, element));
        }
        // What the device actually runs in: the hint as compiled (the
        // device's own choice when `precision` is `default`).
        let precision = compiled
            .get_property(&PropertyKey::Rw(RwPropertyKey::HintInferencePrecision))
            .map(|p| p.to_lowercase())
            .unwrap_or_else(|_| "unknown".to_owned());
        tracing::info!(
            "compiled {} for {} ({} input(s), {} output(s), precision {precision}{})",
            config.model.display(),
            config.device,
            inputs.len(),
            outputs.len(),
            if config.precision.as_openvino().is_none() {
                " by device default"
            } else {
                ""
            }
        );
        let warmup = warmup_inputs(&inputs, &config.warmup_shapes).map(Arc::new);
        Ok(Self {
            warmup,
            single,
            compiled: Mutex::new(compiled),
            _core: Mutex::new(core),
            inputs: inputs.into(),
            outputs: outputs.into(),
            device: config.device.clone(),
            model: config.model.clone(),
            precision,
            max_elements: config.max_tensor_elements,
            compilations: AtomicU64::new(1),
            requests: AtomicU64::new(0),
        })
    }

    /// The model's inputs.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The precision the compiled model runs in (`f32`, `bf16`, `f16`), as
    /// OpenVINO reports it: with [`Precision::Default`](super::Precision)
    /// this is the device's own choice.
    pub fn precision(&self) -> &str {
        &self.precision
    }

    /// Times this factory compiled its model (always 1: once per group).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Infer requests created (one per session built).
    pub fn infer_requests_created(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Zero-filled inputs for warmup: the model's shapes, with `warmup_shapes`
    /// filling dynamic dimensions. An error says which input needs a shape.
    pub fn warmup_inputs(&self) -> Result<&Tensors, String> {
        self.warmup.as_deref().map_err(Clone::clone)
    }
}

/// Fixes the shapes of the named inputs of `model` (the `reshape` setting).
fn reshape(
    model: &mut openvino::Model,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<(), OpenVinoError> {
    if shapes.is_empty() {
        return Ok(());
    }
    let shapes = shapes
        .iter()
        .map(|(name, dims)| {
            let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
            PartialShape::new_static(dims.len() as i64, &dims).map(|s| (name.as_str(), s))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(OpenVinoError::call("make a shape"))?;
    let refs: Vec<(&str, &PartialShape)> = shapes.iter().map(|(n, s)| (*n, s)).collect();
    model
        .reshape(&refs)
        .map_err(OpenVinoError::call("reshape the model (check `reshape`)"))
}

/// The model file (and an IR's weights beside it) exists, is a file, is not
/// too large, and no other user may change it.
fn check_model_file(config: &OpenVinoConfig) -> Result<(), OpenVinoError> {
    let path = &config.model;
    if path.is_dir() {
        return Err(OpenVinoError::ModelIsDirectory { path: path.clone() });
    }
    let Some(meta) = std::fs::metadata(path).ok().filter(|m| m.is_file()) else {
        return Err(OpenVinoError::ModelNotFound { path: path.clone() });
    };
    let mut files = vec![(path.clone(), meta.len())];
    if path.extension().is_some_and(|e| e == "xml") {
        let weights = path.with_extension("bin");
        if let Ok(m) = std::fs::metadata(&weights) {
            files.push((weights, m.len()));
        }
    }
    for (file, size) in files {
        if size > config.max_model_bytes {
            return Err(OpenVinoError::ModelTooLarge {
                path: file,
                size,
                limit: config.max_model_bytes,
            });
        }
        if !config.allow_insecure_paths {
            library::check_not_world_writable(&file, "model")?;
        }
    }
    Ok(())
}

fn warmup_inputs(
    specs: &[InputSpec],
    shapes: &std::collections::BTreeMap<String, Vec<usize>>,
) -> Result<Tensors, String> {
    specs
        .iter()
        .map(|s| {
            let shape = match shapes.get(&s.name) {
                Some(shape) => shape.clone(),
                // A dynamic batch (first) dimension warms up at 1; any other
                // dynamic dimension has no safe default.
                None => s
                    .dims
                    .iter()
                    .enumerate()
                    .map(|(i, d)| d.or((i == 0).then_some(1)).ok_or(()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                    format!(
                        "input `{}` has dynamic shape {}; set `reshape.{0}` or `warmup_shapes.{0}` in the backend config, or warmup: 0",
                        s.name,
                        ShapeText(&s.dims)
                    )
                })?,
            };
            let n = shape.iter().product();
            let data = match s.element {
                Element::F32 | Element::F16 => TensorData::F32(vec![0.0; n]),
                Element::U8 => TensorData::U8(vec![0; n]),
                Element::I32 => TensorData::I32(vec![0; n]),
                Element::I64 => TensorData::I64(vec![0; n]),
            };
            Ok(Tensor::new(s.name.clone(), shape, data))
        })
        .collect()
}

fn check_device(core: &Core, device: &str) -> Result<(), OpenVinoError> {
    // Virtual devices pick real ones themselves.
    if ["AUTO", "MULTI", "HETERO", "BATCH"]
        .iter()
        .any(|v| device.starts_with(v))
    {
        return Ok(());
    }
    let available: Vec<String> = core
        .available_devices()
        .map_err(OpenVinoError::call("list the devices"))?
        .iter()
        .map(|d| d.to_string())
        .collect();
    let found = available.iter().any(|a| {
        a == device || a.starts_with(&format!("{device}.")) || device.starts_with(&format!("{a}."))
    });
    if found {
        Ok(())
    } else {
        Err(OpenVinoError::DeviceNotFound {
            device: device.to_owned(),
            available,
        })
    }
}

fn device_properties(c: &OpenVinoConfig) -> Vec<(RwPropertyKey, String)> {
    let mut props = Vec::new();
    if let Some(p) = c.precision.as_openvino() {
        props.push((RwPropertyKey::HintInferencePrecision, p.to_owned()));
    }
    if let Some(h) = c.performance_hint {
        props.push((
            RwPropertyKey::HintPerformanceMode,
            h.as_openvino().to_owned(),
        ));
    }
    if let Some(n) = c.streams {
        props.push((RwPropertyKey::NumStreams, n.to_string()));
    }
    if let Some(n) = c.inference_threads {
        props.push((RwPropertyKey::InferenceNumThreads, n.to_string()));
    }
    if let Some(d) = &c.cache_dir {
        props.push((RwPropertyKey::CacheDir, d.to_string_lossy().into_owned()));
    }
    for (k, v) in &c.properties {
        props.push((RwPropertyKey::Other(Cow::Owned(k.clone())), v.clone()));
    }
    props
}

impl SessionFactory<Tensors, Tensors> for OpenVinoFactory {
    fn create(
        &self,
        _worker: &WorkerInfo,
    ) -> Result<Box<dyn Session<Tensors, Tensors>>, SessionError> {
        let engine = Engine::new(&self.compiled, &self.inputs, &self.outputs)?;
        let single = match &self.single {
            Some((compiled, inputs)) => Some(Engine::new(compiled, inputs, &self.outputs)?),
            None => None,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(OpenVinoSession {
            engine,
            single,
            warmup: self.warmup.clone(),
        }))
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![
            ("backend".into(), "openvino".into()),
            ("device".into(), self.device.clone()),
            ("model".into(), self.model.display().to_string()),
            ("precision".into(), self.precision.clone()),
            (
                "runtime".into(),
                library::runtime_version().unwrap_or("unknown").to_owned(),
            ),
        ]
    }

    /// Requests batch together along dimension 0 when each brings one row
    /// (dimension 0 of 1) of every input, and the other dimensions and the
    /// element types agree. A model whose batch dimension is fixed at 1
    /// does not batch.
    fn batch_key(&self, input: &Tensors) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for spec in self.inputs.iter() {
            if spec.dims.first() == Some(&Some(1)) {
                return None;
            }
            let t = find_input(input, spec, self.inputs.len())?;
            if t.shape.first() != Some(&1) {
                return None;
            }
            (&spec.name, &t.shape[1..], t.data.element_name()).hash(&mut h);
        }
        Some(h.finish())
    }

    fn validate(&self, input: &Tensors) -> Result<(), InputError> {
        crate::tensor::validate(&self.inputs, input, self.max_elements)
    }
}

/// One worker's OpenVINO session: one infer request, kept with its bound
/// input tensors for the worker's life. An input tensor is reallocated only
/// when a request brings a new shape (dynamic models).
pub struct OpenVinoSession {
    engine: Engine,
    /// For a model compiled for a fixed batch above 1: the same model
    /// compiled for one row, which runs a lone request unpadded.
    single: Option<Engine>,
    warmup: Result<Arc<Tensors>, String>,
}

/// One infer request on one compiled model, with its bound input tensors.
struct Engine {
    request: InferRequest,
    inputs: Arc<[InputSpec]>,
    outputs: Arc<[(String, Element)]>,
    bound: Vec<Option<(Vec<usize>, OvTensor)>>,
}

impl Engine {
    fn new(
        compiled: &Mutex<CompiledModel>,
        inputs: &Arc<[InputSpec]>,
        outputs: &Arc<[(String, Element)]>,
    ) -> Result<Self, OpenVinoError> {
        let request = compiled
            .lock()
            .create_infer_request()
            .map_err(OpenVinoError::call("create an infer request"))?;
        Ok(Self {
            request,
            inputs: Arc::clone(inputs),
            outputs: Arc::clone(outputs),
            bound: (0..inputs.len()).map(|_| None).collect(),
        })
    }

    /// The input tensor `i` bound to the request with `shape`: the one
    /// already bound when the shape is the same, a new one otherwise.
    fn bind(&mut self, i: usize, shape: &[usize]) -> Result<&mut OvTensor, OpenVinoError> {
        let stale = self.bound[i]
            .as_ref()
            .is_none_or(|(bound, _)| bound != shape);
        if stale {
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let ov_shape = Shape::new(&dims).map_err(OpenVinoError::call("make a shape"))?;
            let ov = OvTensor::new(self.inputs[i].element.to_openvino(), &ov_shape)
                .map_err(OpenVinoError::call("allocate an input tensor"))?;
            self.request
                .set_input_tensor_by_index(i, &ov)
                .map_err(OpenVinoError::call("bind an input tensor"))?;
            self.bound[i] = Some((shape.to_vec(), ov));
        }
        Ok(&mut self.bound[i].as_mut().expect("bound above").1)
    }

    fn infer(&mut self, input: &[Tensor]) -> Result<Tensors, OpenVinoError> {
        for i in 0..self.inputs.len() {
            let t = self.find(input, i)?;
            let element = self.inputs[i].element;
            let dst = self
                .bind(i, &t.shape)?
                .get_raw_data_mut()
                .map_err(OpenVinoError::call("reach an input's memory"))?;
            write(dst, element, &t.data);
        }
        self.request
            .infer()
            .map_err(OpenVinoError::call("run inference"))?;
        (0..self.outputs.len())
            .map(|i| {
                let (shape, data) = self.output(i)?;
                Ok(Tensor::new(self.outputs[i].0.clone(), shape, data))
            })
            .collect()
    }

    /// Runs requests of one row each as one call along dimension 0: each
    /// request's data is written straight into its row of the bound input
    /// (rows past the batch, for a fixed batch size, are zero padding), and
    /// each output is split back by row.
    fn infer_batch(&mut self, batch: &[&Tensors]) -> Result<Vec<Tensors>, OpenVinoError> {
        let n = batch.len();
        for i in 0..self.inputs.len() {
            let first = self.find(batch[0], i)?;
            let rows = match self.inputs[i].dims.first() {
                Some(Some(fixed)) if *fixed < n => {
                    return Err(OpenVinoError::Call {
                        step: "batch the inputs",
                        message: format!(
                            "{n} requests do not fit the model's fixed batch size {fixed}"
                        ),
                    })
                }
                Some(Some(fixed)) => *fixed,
                _ => n,
            };
            let mut shape = first.shape.clone();
            shape[0] = rows;
            let element = self.inputs[i].element;
            let row_elems: usize = first.shape[1..].iter().product();
            let tensors: Vec<&Tensor> = batch
                .iter()
                .map(|r| self.find(r, i))
                .collect::<Result<_, _>>()?;
            let dst = self
                .bind(i, &shape)?
                .get_raw_data_mut()
                .map_err(OpenVinoError::call("reach an input's memory"))?;
            let row_bytes = dst.len() / rows.max(1);
            for (row, t) in tensors.iter().enumerate() {
                if t.data.len() != row_elems {
                    return Err(OpenVinoError::Call {
                        step: "batch the inputs",
                        message: format!("request {row} of the batch has another shape"),
                    });
                }
                write(
                    &mut dst[row * row_bytes..(row + 1) * row_bytes],
                    element,
                    &t.data,
                );
            }
            dst[n * row_bytes..].fill(0);
        }
        self.request
            .infer()
            .map_err(OpenVinoError::call("run inference"))?;
        let mut out: Vec<Tensors> = (0..n)
            .map(|_| Vec::with_capacity(self.outputs.len()))
            .collect();
        for i in 0..self.outputs.len() {
            let (shape, data) = self.output(i)?;
            let rows = shape.first().copied().unwrap_or(0);
            if rows < n || rows == 0 || data.len() % rows != 0 {
                return Err(OpenVinoError::Call {
                    step: "split the outputs",
                    message: format!(
                        "output `{}` of shape {shape:?} has no batch dimension to split",
                        self.outputs[i].0
                    ),
                });
            }
            let per = data.len() / rows;
            let mut row_shape = shape.clone();
            row_shape[0] = 1;
            for (row, o) in out.iter_mut().enumerate() {
                let slice = data.slice(row * per..(row + 1) * per);
                o.push(Tensor::new(
                    self.outputs[i].0.clone(),
                    row_shape.clone(),
                    slice,
                ));
            }
        }
        Ok(out)
    }

    /// True when the model was compiled for a fixed batch of more than one
    /// (`reshape` with dimension 0 above 1).
    fn fixed_batch(&self) -> bool {
        self.inputs
            .iter()
            .any(|s| matches!(s.dims.first(), Some(Some(b)) if *b > 1))
    }

    /// The request's tensor for model input `i`.
    fn find<'a>(&self, input: &'a [Tensor], i: usize) -> Result<&'a Tensor, OpenVinoError> {
        let spec = &self.inputs[i];
        find_input(input, spec, self.inputs.len()).ok_or_else(|| OpenVinoError::Call {
            step: "find an input",
            message: format!("no tensor for input `{}`", spec.name),
        })
    }

    /// Output `i`: its shape and data.
    fn output(&self, i: usize) -> Result<(Vec<usize>, TensorData), OpenVinoError> {
        let element = self.outputs[i].1;
        let t = self
            .request
            .get_output_tensor_by_index(i)
            .map_err(OpenVinoError::call("read an output"))?;
        let shape: Vec<usize> = t
            .get_shape()
            .map_err(OpenVinoError::call("read an output's shape"))?
            .get_dimensions()
            .iter()
            .map(|&d| d as usize)
            .collect();
        let raw = t
            .get_raw_data()
            .map_err(OpenVinoError::call("read an output's data"))?;
        let data = match element {
            Element::F32 => TensorData::F32(pod_vec(raw)),
            Element::F16 => TensorData::F32(from_bytes(raw, |b: [u8; 2]| {
                half::f16::from_ne_bytes(b).to_f32()
            })),
            Element::U8 => TensorData::U8(raw.to_vec()),
            Element::I32 => TensorData::I32(pod_vec(raw)),
            Element::I64 => TensorData::I64(pod_vec(raw)),
        };
        Ok((shape, data))
    }
}

/// Writes a request's data into an input's memory, converting `f32` to
/// `f16` for an `f16` input.
fn write(dst: &mut [u8], element: Element, data: &TensorData) {
    match element {
        Element::F16 => {
            // The data is `f32` (checked at submit); its bytes need not be
            // aligned (a lent buffer), so each element is read from bytes.
            for (d, x) in dst.chunks_exact_mut(2).zip(data.as_bytes().chunks_exact(4)) {
                let x = f32::from_ne_bytes([x[0], x[1], x[2], x[3]]);
                d.copy_from_slice(&half::f16::from_f32(x).to_ne_bytes());
            }
        }
        _ => dst.copy_from_slice(data.as_bytes()),
    }
}

/// Native-endian elements copied out of bytes in one copy (no alignment
/// needed; trailing bytes short of an element are ignored).
fn pod_vec<T: bytemuck::Pod>(raw: &[u8]) -> Vec<T> {
    let whole = raw.len() - raw.len() % std::mem::size_of::<T>();
    bytemuck::pod_collect_to_vec(&raw[..whole])
}

/// Decodes native-endian elements from bytes (no alignment needed).
fn from_bytes<T, const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}

impl Session<Tensors, Tensors> for OpenVinoSession {
    fn run(&mut self, input: &Tensors, _ctx: &RunContext<'_>) -> Result<Tensors, SessionError> {
        // Input errors were caught before queueing; what fails here is the
        // runtime, which may work on another try or device.
        let transient = |e: OpenVinoError| SessionError::transient(e.to_string());
        let one_row = input.iter().all(|t| t.shape.first() == Some(&1));
        match &mut self.single {
            // A lone row on a fixed-batch model: the one-row compilation.
            Some(single) if one_row => single.infer(input).map_err(transient),
            // (Without one, a batch of one, padded.)
            None if one_row && self.engine.fixed_batch() => self
                .engine
                .infer_batch(&[input])
                .map(|mut outs| outs.pop().expect("one request, one result"))
                .map_err(transient),
            _ => self.engine.infer(input).map_err(transient),
        }
    }

    fn warmup(&mut self) -> Result<(), SessionError> {
        let inputs = self.warmup.clone().map_err(SessionError::permanent)?;
        self.engine.infer(&inputs).map_err(SessionError::from)?;
        if let Some(single) = &mut self.single {
            // One row of the warmup input, for the one-row compilation.
            let rows: Tensors = inputs
                .iter()
                .map(|t| {
                    let mut shape = t.shape.clone();
                    let per = t.data.len() / shape.first().copied().unwrap_or(1).max(1);
                    shape[0] = 1;
                    Tensor::new(t.name.clone(), shape, t.data.slice(0..per))
                })
                .collect();
            single.infer(&rows).map_err(SessionError::from)?;
        }
        Ok(())
    }

    fn run_batch(&mut self, batch: &[BatchItem<'_, Tensors>]) -> BatchResult<Tensors> {
        let inputs: Vec<&Tensors> = batch.iter().map(|b| b.input).collect();
        match self.engine.infer_batch(&inputs) {
            Ok(outs) => Ok(outs.into_iter().map(Ok).collect()),
            // The batch as such did not work (a model whose outputs have no
            // batch dimension, a fixed batch too small): permanent, so the
            // runtime runs each request alone.
            Err(
                e @ OpenVinoError::Call {
                    step: "batch the inputs" | "split the outputs",
                    ..
                },
            ) => Err(SessionError::permanent(e.to_string())),
            Err(e) => Err(SessionError::transient(e.to_string())),
        }
    }
}
