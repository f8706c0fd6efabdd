//! Tensors across the boundary: element types, the read-only view a C
//! caller gets of an input or output, and building a tensor from the
//! caller's memory (copied, or lent with a release callback).

use std::ffi::{c_char, c_void};

use accelpool::openvino::{ElementType, SharedData, Tensor, TensorData};

use crate::args;
use crate::error::Error;

/// Element types of tensors (values of an `int32_t element_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum accelpool_element_type {
    /// 32-bit float (`float`).
    F32 = 1,
    /// Unsigned byte (`uint8_t`).
    U8 = 2,
    /// 32-bit signed integer (`int32_t`).
    I32 = 3,
    /// 64-bit signed integer (`int64_t`).
    I64 = 4,
}

impl accelpool_element_type {
    pub(crate) fn from_element(e: ElementType) -> Self {
        match e {
            ElementType::F32 => Self::F32,
            ElementType::U8 => Self::U8,
            ElementType::I32 => Self::I32,
            ElementType::I64 => Self::I64,
        }
    }
}

/// The element type a C caller named.
pub(crate) fn element(code: i32) -> Result<ElementType, Error> {
    Ok(match code {
        1 => ElementType::F32,
        2 => ElementType::U8,
        3 => ElementType::I32,
        4 => ElementType::I64,
        other => {
            return Err(Error::invalid(format!(
                "`element_type` {other} is not an element type; use ACCELPOOL_ELEMENT_TYPE_F32, \
                 _U8, _I32 or _I64"
            )))
        }
    })
}

/// A read-only view of one tensor. Every pointer in it stays valid as long
/// as the object it was read from (a result, or a batch during a session's
/// `run`).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct accelpool_tensor_view {
    /// The tensor's name, NUL-terminated UTF-8.
    pub name: *const c_char,
    /// One of `accelpool_element_type`.
    pub element_type: i32,
    /// The dimensions, outermost first.
    pub dims: *const usize,
    /// How many dimensions.
    pub ndims: usize,
    /// The elements, row-major, native-endian.
    pub data: *const c_void,
    /// The data's length in bytes (elements times the element size).
    pub byte_len: usize,
}

impl accelpool_tensor_view {
    /// A view of `t`, named by `name` (NUL-terminated, kept alive by the
    /// caller as long as `t`).
    pub(crate) fn of(t: &Tensor, name: *const c_char) -> Self {
        let bytes = t.data.as_bytes();
        Self {
            name,
            element_type: accelpool_element_type::from_element(t.data.element()) as i32,
            dims: t.shape.as_ptr(),
            ndims: t.shape.len(),
            data: bytes.as_ptr().cast(),
            byte_len: bytes.len(),
        }
    }
}

/// NUL-terminated copies of tensor names, in one buffer.
#[derive(Default)]
pub(crate) struct Names {
    buf: Vec<u8>,
    starts: Vec<usize>,
}

impl Names {
    /// Refills the buffer with `tensors`' names, reusing its memory. A name
    /// with an interior NUL is cut there.
    pub(crate) fn fill<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.buf.clear();
        self.starts.clear();
        for n in names {
            self.starts.push(self.buf.len());
            self.buf
                .extend(n.as_bytes().iter().copied().take_while(|&b| b != 0));
            self.buf.push(0);
        }
    }

    /// The `i`th name.
    pub(crate) fn get(&self, i: usize) -> *const c_char {
        self.buf[self.starts[i]..].as_ptr().cast()
    }
}

/// A tensor description from the caller: checked, not yet holding data.
pub(crate) struct Shape<'a> {
    pub(crate) name: &'a str,
    pub(crate) element: ElementType,
    pub(crate) dims: Vec<usize>,
    pub(crate) bytes: &'a [u8],
}

impl<'a> Shape<'a> {
    /// Reads and checks a tensor's arguments: the dims must describe
    /// exactly `byte_len` bytes of `element_type`.
    ///
    /// # Safety
    /// `name` is NULL or NUL-terminated; `dims` is NULL or has `ndims`
    /// elements; `data` is NULL or has `byte_len` readable bytes; all live
    /// for `'a`.
    pub(crate) unsafe fn read(
        name: *const c_char,
        element_type: i32,
        dims: *const usize,
        ndims: usize,
        data: *const c_void,
        byte_len: usize,
    ) -> Result<Self, Error> {
        // SAFETY: the function's contract, passed on.
        let name = unsafe { args::string(name, "name") }?;
        let element = element(element_type)?;
        if ndims > args::MAX_DIMS {
            return Err(Error::invalid(format!(
                "`ndims` is {ndims}; a tensor has at most {} dimensions",
                args::MAX_DIMS
            )));
        }
        // SAFETY: the function's contract, passed on.
        let dims = unsafe { args::slice(dims, ndims, "dims") }?.to_vec();
        let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let expected = elements.and_then(|n| n.checked_mul(element.size()));
        let Some(expected) = expected else {
            return Err(Error::invalid(format!(
                "tensor `{name}`: dims {dims:?} of {} hold more bytes than memory can; check \
                 `dims` and `ndims`",
                element.name()
            )));
        };
        if expected != byte_len {
            return Err(Error::invalid(format!(
                "tensor `{name}`: dims {dims:?} of {} need {expected} bytes but `byte_len` is \
                 {byte_len}; pass the data's length in bytes",
                element.name()
            )));
        }
        // SAFETY: the function's contract, passed on.
        let bytes = unsafe { args::slice(data.cast::<u8>(), byte_len, "data") }?;
        Ok(Self {
            name,
            element,
            dims,
            bytes,
        })
    }

    /// The tensor, its data copied into memory it owns.
    pub(crate) fn copied(self) -> Tensor {
        let data = match self.element {
            ElementType::F32 => TensorData::F32(typed(self.bytes)),
            ElementType::U8 => TensorData::U8(self.bytes.to_vec()),
            ElementType::I32 => TensorData::I32(typed(self.bytes)),
            ElementType::I64 => TensorData::I64(typed(self.bytes)),
        };
        Tensor::new(self.name, self.dims, data)
    }

    /// The tensor, its data left where it is: `release(user, data)` is
    /// called once the last user of the request lets go of it.
    pub(crate) fn lent(self, lender: Lender) -> Tensor {
        let data = SharedData::new(self.element, lender).expect("length checked by `read`");
        Tensor::new(self.name, self.dims, TensorData::Shared(data))
    }
}

/// Elements of `T` copied from native-endian bytes that need not be aligned.
fn typed<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut v = vec![T::zeroed(); bytes.len() / size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
    v
}

/// Gives a lent buffer back: called as `release(user, data)` once the pool
/// no longer needs it. May be NULL.
#[allow(non_camel_case_types)]
pub type accelpool_release_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, data: *const c_void)>;

/// A buffer the application lent, with the callback that gives it back.
pub(crate) struct Lender {
    pub(crate) data: *const u8,
    pub(crate) len: usize,
    pub(crate) release: accelpool_release_fn,
    pub(crate) user: *mut c_void,
}

// SAFETY: the header requires a lent buffer to stay valid and unmodified
// until its release callback runs, and the callback (and its `user`) to be
// callable from any thread; the buffer is only read.
unsafe impl Send for Lender {}
// SAFETY: as above; shared access only reads the buffer.
unsafe impl Sync for Lender {}

impl AsRef<[u8]> for Lender {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `data` is not NULL for a non-empty buffer (checked by
        // `Shape::read`), has `len` bytes, and stays valid and unmodified
        // until `release` runs in `drop` (the lender's promise).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the caller's callback with the caller's own pointers,
            // called exactly once (this is the only owner; `drop` runs once).
            // A panic cannot come from C code; a C callback must not unwind.
            unsafe { release(self.user, self.data.cast()) };
        }
    }
}
