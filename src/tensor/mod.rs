//! Named tensors: what a tensor model's request takes and returns, in
//! every backend that runs one (OpenVINO in process, a remote inference
//! server).

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

mod spec;

pub(crate) use spec::{find_input, validate, InputShape, ShapeText};

/// Element data of a tensor. `f16` model outputs are read as `F32`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// Bytes (images).
    U8(Vec<u8>),
    /// 32-bit integers.
    I32(Vec<i32>),
    /// 64-bit integers (token ids).
    I64(Vec<i64>),
    /// Elements in memory the tensor does not own: a buffer lent by the
    /// application (the C API's no-copy inputs), released when the last
    /// user of the request lets go of it.
    Shared(SharedData),
}

/// The element types a request's tensor may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// 32-bit floats.
    F32,
    /// Bytes.
    U8,
    /// 32-bit integers.
    I32,
    /// 64-bit integers.
    I64,
}

impl ElementType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::U8 => 1,
            ElementType::I64 => 8,
        }
    }

    /// The name as OpenVINO writes it.
    pub const fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::U8 => "u8",
            ElementType::I32 => "i32",
            ElementType::I64 => "i64",
        }
    }
}

/// Elements of one type in bytes someone else owns, shared without copying.
/// The owner is any `AsRef<[u8]>`; it is dropped (its memory released) when
/// the last clone of the tensor is.
///
/// ```
/// use accelpool::openvino::{ElementType, SharedData, TensorData};
/// let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_ne_bytes()).collect();
/// let data = TensorData::Shared(SharedData::new(ElementType::F32, bytes)?);
/// assert_eq!(data.len(), 2);
/// assert_eq!(data.element_name(), "f32");
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct SharedData {
    element: ElementType,
    bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
}

impl SharedData {
    /// Wraps `owner`'s bytes as elements of `element`; an error if their
    /// length is not a whole number of elements.
    pub fn new(
        element: ElementType,
        owner: impl AsRef<[u8]> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let len = owner.as_ref().len();
        if len % element.size() != 0 {
            return Err(format!(
                "{len} bytes are not a whole number of {} elements ({} bytes each)",
                element.name(),
                element.size()
            ));
        }
        Ok(Self {
            element,
            bytes: Arc::new(owner),
        })
    }

    /// The element type.
    pub fn element(&self) -> ElementType {
        self.element
    }

    /// The elements' bytes, native-endian.
    pub fn bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }
}

impl fmt::Debug for SharedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedData({} bytes of {})",
            self.bytes().len(),
            self.element.name()
        )
    }
}

impl PartialEq for SharedData {
    fn eq(&self, other: &Self) -> bool {
        self.element == other.element && self.bytes() == other.bytes()
    }
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Shared(s) => s.bytes().len() / s.element.size(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name as OpenVINO writes it.
    pub fn element_name(&self) -> &'static str {
        self.element().name()
    }

    /// The element type.
    pub fn element(&self) -> ElementType {
        match self {
            TensorData::F32(_) => ElementType::F32,
            TensorData::U8(_) => ElementType::U8,
            TensorData::I32(_) => ElementType::I32,
            TensorData::I64(_) => ElementType::I64,
            TensorData::Shared(s) => s.element,
        }
    }

    /// The data as `f32`, if it is (shared bytes too, when they are aligned
    /// for `f32`).
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
            TensorData::Shared(s) if s.element == ElementType::F32 => {
                bytemuck::try_cast_slice(s.bytes()).ok()
            }
            _ => None,
        }
    }

    /// Elements `range` of the data, of the same type: one row of a batch.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        match self {
            TensorData::F32(v) => TensorData::F32(v[range].to_vec()),
            TensorData::U8(v) => TensorData::U8(v[range].to_vec()),
            TensorData::I32(v) => TensorData::I32(v[range].to_vec()),
            TensorData::I64(v) => TensorData::I64(v[range].to_vec()),
            TensorData::Shared(s) => {
                let size = s.element.size();
                let bytes = &s.bytes()[range.start * size..range.end * size];
                let shared = SharedData::new(s.element, bytes.to_vec());
                TensorData::Shared(shared.expect("a whole number of elements"))
            }
        }
    }

    /// The elements' bytes, native-endian, without copying.
    pub fn as_bytes(&self) -> &[u8] {
        // Plain-old-data element types, viewed as bytes without copying.
        fn bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
            bytemuck::cast_slice(v)
        }
        match self {
            TensorData::F32(v) => bytes(v),
            TensorData::U8(v) => v,
            TensorData::I32(v) => bytes(v),
            TensorData::I64(v) => bytes(v),
            TensorData::Shared(s) => s.bytes(),
        }
    }
}

/// A named tensor with its shape.
///
/// ```
/// use accelpool::openvino::Tensor;
/// let t = Tensor::f32("x", [1, 3], vec![0.1, 0.2, 0.7]);
/// assert_eq!(t.shape, [1, 3]);
/// assert!(t.check_len().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The model's name for this input or output.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor of any element type.
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<usize>>, data: TensorData) -> Self {
        Self {
            name: name.into(),
            shape: shape.into(),
            data,
        }
    }

    /// An `f32` tensor.
    pub fn f32(name: impl Into<String>, shape: impl Into<Vec<usize>>, data: Vec<f32>) -> Self {
        Self::new(name, shape, TensorData::F32(data))
    }

    /// Elements the shape calls for; `None` if that number overflows.
    pub fn shape_len(&self) -> Option<usize> {
        element_count(&self.shape, usize::MAX)
    }

    /// Checks that the data has as many elements as the shape calls for.
    pub fn check_len(&self) -> Result<(), String> {
        match self.shape_len() {
            Some(n) if n == self.data.len() => Ok(()),
            Some(n) => Err(format!(
                "shape {:?} holds {n} elements but {} were given",
                self.shape,
                self.data.len()
            )),
            None => Err(format!(
                "shape {:?} holds more elements than memory can",
                self.shape
            )),
        }
    }
}

/// The elements a shape holds, if that number is at most `limit` (and so
/// does not overflow). Computed without allocating.
pub(crate) fn element_count(shape: &[usize], limit: usize) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= limit)
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {}",
            self.name,
            self.shape,
            self.data.element_name()
        )
    }
}

/// The inputs of one request, or the outputs of one result.
pub type Tensors = Vec<Tensor>;
