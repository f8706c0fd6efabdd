//! Real inference through OpenVINO (feature `openvino`, on by default).
//!
//! One [`OpenVinoFactory`] per device group: it loads the runtime, applies
//! the device's properties, reads the model and compiles it once. Each worker
//! then gets an [`OpenVinoSession`] holding one infer request and its input
//! tensors for its whole life.
//!
//! ```no_run
//! use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, Tensor};
//! use accelpool::{GroupConfig, Pool, Request};
//!
//! let ov = OpenVinoConfig::new("models/ppocr/cls.onnx", "CPU");
//! let factory = OpenVinoFactory::new(&ov)?;
//! let pool = Pool::builder().group(GroupConfig::new("cpu").workers(2), factory).build()?;
//! let image = Tensor::f32("x", [1, 3, 48, 192], vec![0.0; 3 * 48 * 192]);
//! let out = pool.submit(Request::new(vec![image]))?.wait()?;
//! println!("{:?}", out[0].data.as_f32());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod factory;
pub mod library;

pub use crate::config::openvino::{
    OpenVinoConfig, PerformanceHint, Precision, DEFAULT_MAX_MODEL_BYTES,
    DEFAULT_MAX_TENSOR_ELEMENTS,
};
pub use crate::tensor::{ElementType, SharedData, Tensor, TensorData, Tensors};
pub use factory::{InputSpec, OpenVinoError, OpenVinoFactory, OpenVinoSession};
