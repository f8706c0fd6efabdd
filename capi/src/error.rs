//! The error convention of the whole C API: every function that can fail
//! returns an `accelpool_code` and takes, as its last argument, an
//! `accelpool_error **error` it fills on failure (when not NULL). Panics are
//! caught here, at the boundary, and become `accelpool_code::Internal`.

use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use accelpool::openvino::OpenVinoError;
use accelpool::{BuildError, ConfigError, Refusal, TaskError};

/// What a call returned. `ACCELPOOL_CODE_OK` (0) is success; every other
/// code comes with an `accelpool_error` when the caller asked for one.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum accelpool_code {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL (the message names it).
    NullArgument = 1,
    /// An argument is out of range or malformed: an unknown element type or
    /// priority, a string that is not UTF-8, dims that do not match the
    /// data's length (the message names the argument and the fix).
    InvalidArgument = 2,
    /// The configuration is invalid; `accelpool_error_field` gives the
    /// path of the offending field (for example `groups[0].workers`).
    Config = 10,
    /// The OpenVINO runtime library was not found, could not be loaded, or
    /// is too old.
    Library = 11,
    /// A model file is missing, unreadable, too large, or not a model.
    Model = 12,
    /// A configured device is not on this machine.
    Device = 13,
    /// A library or model path is writable by other users and was refused.
    InsecurePath = 14,
    /// OpenVINO failed a call (compiling a model, for example).
    Openvino = 15,
    /// The pool could not start: a group without sessions, a session that
    /// failed to build, a thread that could not be spawned.
    Build = 16,
    /// Refused: every eligible queue of the request's level is full.
    Full = 20,
    /// Refused: the queues stayed full until the submit timeout.
    Timeout = 21,
    /// Refused: the pool is shut down.
    Closed = 22,
    /// Refused: the request named a group the pool does not have.
    UnknownGroup = 23,
    /// Refused: memory is above the high watermark for the request's level.
    MemoryPressure = 24,
    /// Refused: no eligible group can take requests (breakers open, no
    /// healthy worker).
    Unavailable = 25,
    /// Refused: the input does not fit the model (tensor name, element type
    /// or shape).
    InvalidInput = 26,
    /// Refused: deadline-aware admission estimated the request would miss
    /// its deadline (the timeout given with `accelpool_request_set_timeout_ms`).
    DeadlineUnmeetable = 27,
    /// Refused for a reason this version of the header does not know.
    Refused = 29,
    /// Every attempt failed; the request is in the dead-letter queue.
    DeadLettered = 30,
    /// The request was cancelled (by its caller or by shutdown).
    Cancelled = 31,
    /// The request's deadline passed before a worker took it.
    Expired = 32,
    /// The result was already taken from this handle.
    AlreadyTaken = 33,
    /// A wait ran out of time; the request is still going and the handle
    /// is still valid.
    WaitTimeout = 34,
    /// Nothing to take (an empty list, an index past its end).
    NotFound = 35,
    /// A bug in accelpool (a caught panic); the message says where.
    Internal = 99,
}

/// The details of a failure. Read it with `accelpool_error_code`,
/// `accelpool_error_message` and `accelpool_error_field`; free it with
/// `accelpool_error_free`. Owned by the caller; not shared between
/// threads.
#[allow(non_camel_case_types)]
pub struct accelpool_error {
    code: accelpool_code,
    message: CString,
    field: Option<CString>,
}

/// A failure on the Rust side, before it crosses the boundary.
#[derive(Debug)]
pub(crate) struct Error {
    pub code: accelpool_code,
    pub message: String,
    pub field: Option<String>,
}

impl Error {
    pub fn new(code: accelpool_code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(accelpool_code::InvalidArgument, message)
    }

    pub fn null(argument: &str) -> Self {
        Self::new(
            accelpool_code::NullArgument,
            format!("`{argument}` is NULL; pass a valid pointer"),
        )
    }
}

/// The code of a refusal.
pub(crate) fn refusal_code(r: &Refusal) -> accelpool_code {
    match r {
        Refusal::Full { .. } => accelpool_code::Full,
        Refusal::Timeout { .. } => accelpool_code::Timeout,
        Refusal::Closed => accelpool_code::Closed,
        Refusal::UnknownGroup { .. } => accelpool_code::UnknownGroup,
        Refusal::MemoryPressure { .. } => accelpool_code::MemoryPressure,
        Refusal::Unavailable => accelpool_code::Unavailable,
        Refusal::Invalid { .. } => accelpool_code::InvalidInput,
        Refusal::DeadlineUnmeetable { .. } => accelpool_code::DeadlineUnmeetable,
        _ => accelpool_code::Refused,
    }
}

impl From<&Refusal> for Error {
    fn from(r: &Refusal) -> Self {
        Error::new(refusal_code(r), r.to_string())
    }
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Self {
        let code = match &e {
            TaskError::DeadLettered { .. } => accelpool_code::DeadLettered,
            TaskError::Cancelled { .. } => accelpool_code::Cancelled,
            TaskError::Expired => accelpool_code::Expired,
            TaskError::AlreadyTaken => accelpool_code::AlreadyTaken,
        };
        Error::new(code, e.to_string())
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error {
            code: accelpool_code::Config,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<OpenVinoError> for Error {
    fn from(e: OpenVinoError) -> Self {
        let code = match &e {
            OpenVinoError::LibraryNotFound { .. }
            | OpenVinoError::NotOpenVinoC { .. }
            | OpenVinoError::LibraryTooOld { .. }
            | OpenVinoError::LibraryLoad { .. } => accelpool_code::Library,
            OpenVinoError::InsecurePath { .. } => accelpool_code::InsecurePath,
            OpenVinoError::ModelTooLarge { .. }
            | OpenVinoError::ShapeTooLarge { .. }
            | OpenVinoError::ModelNotFound { .. }
            | OpenVinoError::ModelIsDirectory { .. }
            | OpenVinoError::UnsupportedElement { .. } => accelpool_code::Model,
            OpenVinoError::DeviceNotFound { .. } => accelpool_code::Device,
            _ => accelpool_code::Openvino,
        };
        Error::new(code, e.to_string())
    }
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Config(c) => c.into(),
            BuildError::Group { group, message } => Error::new(
                accelpool_code::Build,
                format!(
                    "group `{group}`: {message}; from C, give it an OpenVINO `backend` in the \
                     configuration or sessions with accelpool_builder_set_sessions"
                ),
            ),
            other => Error::new(accelpool_code::Build, other.to_string()),
        }
    }
}

/// Runs `f` at the boundary: its error, or a panic inside it, becomes a
/// code and (when `error` is not NULL) an error object for the caller.
pub(crate) fn guard(
    error: *mut *mut accelpool_error,
    f: impl FnOnce() -> Result<(), Error>,
) -> accelpool_code {
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(Error::new(
            accelpool_code::Internal,
            format!("internal error (a bug in accelpool, please report it): {what}"),
        ))
    });
    match outcome {
        Ok(()) => accelpool_code::Ok,
        Err(e) => {
            let code = e.code;
            if !error.is_null() {
                let boxed = Box::new(accelpool_error {
                    code,
                    message: c_string(e.message),
                    field: e.field.map(c_string),
                });
                // SAFETY: `error` is not NULL, and the caller promises it
                // points to writable storage for one pointer (the header's
                // convention for every `error` argument).
                unsafe { *error = Box::into_raw(boxed) };
            }
            code
        }
    }
}

/// A C string of `s`, any interior NUL replaced (messages quote user input).
pub(crate) fn c_string(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes
            .iter_mut()
            .filter(|b| **b == 0)
            .for_each(|b| *b = b'?');
        CString::new(bytes).expect("NULs replaced")
    })
}

/// The code of `error`; `ACCELPOOL_CODE_INVALID_ARGUMENT` for NULL.
#[no_mangle]
pub extern "C" fn accelpool_error_code(error: *const accelpool_error) -> accelpool_code {
    // SAFETY: NULL or an error this library made and the caller has not freed.
    unsafe { error.as_ref() }.map_or(accelpool_code::InvalidArgument, |e| e.code)
}

/// What went wrong and what to do, as UTF-8. Valid until the error is
/// freed; an empty string for NULL.
#[no_mangle]
pub extern "C" fn accelpool_error_message(error: *const accelpool_error) -> *const c_char {
    // SAFETY: NULL or an error this library made and the caller has not freed.
    unsafe { error.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
}

/// For `ACCELPOOL_CODE_CONFIG`, the path of the offending field (for
/// example `groups[0].workers`); NULL otherwise. Valid until the error is
/// freed.
#[no_mangle]
pub extern "C" fn accelpool_error_field(error: *const accelpool_error) -> *const c_char {
    // SAFETY: NULL or an error this library made and the caller has not freed.
    unsafe { error.as_ref() }
        .and_then(|e| e.field.as_ref())
        .map_or(std::ptr::null(), |f| f.as_ptr())
}

/// Frees an error. NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_error_free(error: *mut accelpool_error) {
    // SAFETY: NULL or an object this library made, freed once (the
    // caller's promise, as the header documents).
    unsafe { crate::args::free(error) }
}

/// Every code with its short name.
const NAMES: [(accelpool_code, &std::ffi::CStr); 26] = {
    use accelpool_code as C;
    [
        (C::Ok, c"ok"),
        (C::NullArgument, c"null_argument"),
        (C::InvalidArgument, c"invalid_argument"),
        (C::Config, c"config"),
        (C::Library, c"library"),
        (C::Model, c"model"),
        (C::Device, c"device"),
        (C::InsecurePath, c"insecure_path"),
        (C::Openvino, c"openvino"),
        (C::Build, c"build"),
        (C::Full, c"full"),
        (C::Timeout, c"timeout"),
        (C::Closed, c"closed"),
        (C::UnknownGroup, c"unknown_group"),
        (C::MemoryPressure, c"memory_pressure"),
        (C::Unavailable, c"unavailable"),
        (C::InvalidInput, c"invalid_input"),
        (C::DeadlineUnmeetable, c"deadline_unmeetable"),
        (C::Refused, c"refused"),
        (C::DeadLettered, c"dead_lettered"),
        (C::Cancelled, c"cancelled"),
        (C::Expired, c"expired"),
        (C::AlreadyTaken, c"already_taken"),
        (C::WaitTimeout, c"wait_timeout"),
        (C::NotFound, c"not_found"),
        (C::Internal, c"internal"),
    ]
};

/// A short, stable name for a code (`"full"`, `"dead_lettered"`, ...), for
/// logs; `"unknown"` for a value that is no code. Never NULL.
#[no_mangle]
pub extern "C" fn accelpool_code_name(code: i32) -> *const c_char {
    NAMES
        .iter()
        .find(|(c, _)| *c as i32 == code)
        .map_or(c"unknown", |(_, name)| name)
        .as_ptr()
}

/// The body of every getter: `read` of the caller's object `object`, written
/// to the caller's `*out`, both checked for NULL first.
pub(crate) fn getter<T, V>(
    object: *const T,
    object_name: &str,
    out: *mut V,
    out_name: &str,
    error: *mut *mut accelpool_error,
    read: impl FnOnce(&T) -> Result<V, Error>,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: NULL or the caller's live object (every getter's contract).
        let o = unsafe { crate::args::obj(object, object_name) }?;
        crate::args::out(out, out_name)?;
        let v = read(o)?;
        // SAFETY: not NULL (checked above) and writable by the contract.
        unsafe { out.write(v) };
        Ok(())
    })
}
