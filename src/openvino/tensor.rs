//! Named tensors: what an OpenVINO request takes and returns.

#![forbid(unsafe_code)]

use std::fmt;

/// Element data of a tensor. `f16` model outputs are read as `F32`.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// Bytes (images).
    U8(Vec<u8>),
    /// 32-bit integers.
    I32(Vec<i32>),
    /// 64-bit integers (token ids).
    I64(Vec<i64>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name as OpenVINO writes it.
    pub fn element_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "f32",
            TensorData::U8(_) => "u8",
            TensorData::I32(_) => "i32",
            TensorData::I64(_) => "i64",
        }
    }

    /// The data as `f32`, if it is.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
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
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        // Plain-old-data element types, viewed as bytes without copying.
        fn bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
            bytemuck::cast_slice(v)
        }
        match self {
            TensorData::F32(v) => bytes(v),
            TensorData::U8(v) => v,
            TensorData::I32(v) => bytes(v),
            TensorData::I64(v) => bytes(v),
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
