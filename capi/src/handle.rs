//! Handles and results: waiting for a request, its status, cancelling it,
//! and reading its output tensors.

use accelpool::openvino::Tensors;
use accelpool::{Status, TaskHandle};

use crate::args;
use crate::error::{accelpool_code, accelpool_error, getter, guard, Error};
use crate::tensor::{accelpool_tensor_view, Names};

/// Where a request is (values written by `accelpool_handle_status`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum accelpool_status {
    /// Waiting in a queue, or for a retry.
    Queued = 0,
    /// A session is running it.
    Running = 1,
    /// Finished with a result.
    Completed = 2,
    /// Every attempt failed; it is in the dead-letter queue.
    Failed = 3,
    /// Cancelled by its caller or by shutdown.
    Cancelled = 4,
    /// Its deadline passed before a worker took it.
    Expired = 5,
}

/// A submitted request: wait for it, look at it, cancel it. Used by one
/// thread at a time; it may move between threads. Freeing it before the
/// request finishes is allowed: the request still runs (or is cancelled
/// only if `accelpool_handle_cancel` was called) and its result is dropped.
#[allow(non_camel_case_types)]
pub struct accelpool_handle {
    handle: TaskHandle<Tensors>,
}

impl accelpool_handle {
    pub(crate) fn boxed(handle: TaskHandle<Tensors>) -> *mut accelpool_handle {
        Box::into_raw(Box::new(accelpool_handle { handle }))
    }
}

/// A finished request's outputs. Every pointer read from it stays valid
/// until it is freed. Read-only: may be shared by threads.
#[allow(non_camel_case_types)]
pub struct accelpool_result {
    outputs: Tensors,
    names: Names,
}

/// Turns a wait's outcome into a result for the caller, or an error.
fn deliver(
    outcome: Option<Result<Tensors, accelpool::TaskError>>,
    result: *mut *mut accelpool_result,
) -> Result<(), Error> {
    let outputs = match outcome {
        None => {
            return Err(Error::new(
                accelpool_code::WaitTimeout,
                "the request did not finish within the timeout; wait again or cancel it",
            ))
        }
        Some(r) => r?,
    };
    let mut names = Names::default();
    names.fill(outputs.iter().map(|t| t.name.as_str()));
    let r = Box::into_raw(Box::new(accelpool_result { outputs, names }));
    // SAFETY: checked not NULL before waiting (`args::out`).
    unsafe { result.write(r) };
    Ok(())
}

/// Blocks until the request finishes. On `ACCELPOOL_CODE_OK`, `*result` is
/// its outputs (free with `accelpool_result_free`). Otherwise the code
/// says why there is none: `DEAD_LETTERED`, `CANCELLED`, `EXPIRED`, or
/// `ALREADY_TAKEN` on a second wait. The handle stays valid either way.
#[no_mangle]
pub extern "C" fn accelpool_handle_wait(
    handle: *mut accelpool_handle,
    result: *mut *mut accelpool_result,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    accelpool_handle_wait_timeout(handle, u64::MAX, result, error)
}

/// As `accelpool_handle_wait`, but gives up after `timeout_ms`
/// milliseconds with `ACCELPOOL_CODE_WAIT_TIMEOUT` (the request goes on;
/// wait again later). `UINT64_MAX` waits for ever.
#[no_mangle]
pub extern "C" fn accelpool_handle_wait_timeout(
    handle: *mut accelpool_handle,
    timeout_ms: u64,
    result: *mut *mut accelpool_result,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live handle, used by one thread at a time.
        let h = unsafe { args::obj_mut(handle, "handle") }?;
        args::out(result, "result")?;
        let outcome = h.handle.wait_timeout(args::millis(timeout_ms));
        deliver(outcome, result)
    })
}

/// Takes the result if the request has finished, without blocking;
/// `ACCELPOOL_CODE_WAIT_TIMEOUT` if it has not.
#[no_mangle]
pub extern "C" fn accelpool_handle_try_get(
    handle: *mut accelpool_handle,
    result: *mut *mut accelpool_result,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live handle, used by one thread at a time.
        let h = unsafe { args::obj_mut(handle, "handle") }?;
        args::out(result, "result")?;
        deliver(h.handle.try_get(), result)
    })
}

/// Writes where the request is now (an `accelpool_status`) to `*status`.
#[no_mangle]
pub extern "C" fn accelpool_handle_status(
    handle: *const accelpool_handle,
    status: *mut i32,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(handle, "handle", status, "status", error, |h| {
        let s = match h.handle.status() {
            Status::Queued => accelpool_status::Queued,
            Status::Running => accelpool_status::Running,
            Status::Completed => accelpool_status::Completed,
            Status::Failed => accelpool_status::Failed,
            Status::Cancelled => accelpool_status::Cancelled,
            Status::Expired => accelpool_status::Expired,
        };
        Ok(s as i32)
    })
}

/// The request's id, unique within its pool, to `*id`.
#[no_mangle]
pub extern "C" fn accelpool_handle_id(
    handle: *const accelpool_handle,
    id: *mut u64,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(handle, "handle", id, "id", error, |h| Ok(h.handle.id()))
}

/// Cancels the request. `*cancelled` (may be NULL) is true when it was
/// still queued and is now cancelled for good; false when it is running
/// (its session is told and may stop early) or already finished.
#[no_mangle]
pub extern "C" fn accelpool_handle_cancel(
    handle: *const accelpool_handle,
    cancelled: *mut bool,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live handle.
        let h = unsafe { args::obj(handle, "handle") }?;
        let c = h.handle.cancel();
        if !cancelled.is_null() {
            // SAFETY: not NULL, the caller's out-pointer.
            unsafe { cancelled.write(c) };
        }
        Ok(())
    })
}

/// Frees a handle. The request is not cancelled; its result, when it
/// comes, is dropped. NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_handle_free(handle: *mut accelpool_handle) {
    // SAFETY: NULL or an object this library made, freed once (the
    // caller's promise, as the header documents).
    unsafe { args::free(handle) }
}

/// How many output tensors the result has, to `*count`.
#[no_mangle]
pub extern "C" fn accelpool_result_output_count(
    result: *const accelpool_result,
    count: *mut usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(result, "result", count, "count", error, |r| {
        Ok(r.outputs.len())
    })
}

/// A view of output `index` (name, element type, dims, data), valid until
/// the result is freed.
#[no_mangle]
pub extern "C" fn accelpool_result_output(
    result: *const accelpool_result,
    index: usize,
    view: *mut accelpool_tensor_view,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(result, "result", view, "view", error, |r| {
        let t = r.outputs.get(index).ok_or_else(|| {
            Error::new(
                accelpool_code::NotFound,
                format!(
                    "output {index} is past the result's {} outputs",
                    r.outputs.len()
                ),
            )
        })?;
        let v = accelpool_tensor_view::of(t, r.names.get(index));
        Ok(v)
    })
}

/// Frees a result. NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_result_free(result: *mut accelpool_result) {
    // SAFETY: NULL or an object this library made, freed once (the
    // caller's promise, as the header documents).
    unsafe { args::free(result) }
}
