//! Requests: named tensors with a priority, a deadline and a group. A
//! request belongs to its caller until a submit accepts it; a refused
//! request stays the caller's, untouched, to submit again or free.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use accelpool::openvino::Tensors;
use accelpool::{Priority, Request};

use crate::args;
use crate::error::{accelpool_code, accelpool_error, guard, Error};
use crate::tensor::{accelpool_release_fn, Lender, Shape};

/// Priority levels (values of an `int32_t priority`). Higher levels are
/// always served first.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum accelpool_priority {
    /// Background work: taken only when nothing else waits.
    Low = 1,
    /// The default level.
    Normal = 2,
    /// Interactive work.
    High = 3,
    /// Latency-critical work: always taken first.
    Urgent = 4,
}

fn priority(code: i32) -> Result<Priority, Error> {
    Ok(match code {
        1 => Priority::Low,
        2 => Priority::Normal,
        3 => Priority::High,
        4 => Priority::Urgent,
        other => {
            return Err(Error::invalid(format!(
                "`priority` {other} is not a priority; use ACCELPOOL_PRIORITY_LOW, _NORMAL, _HIGH \
                 or _URGENT"
            )))
        }
    })
}

/// A request being built, or handed back by a refusal. Used by one thread
/// at a time.
#[allow(non_camel_case_types)]
pub struct accelpool_request {
    /// `None` only while a submit holds it.
    request: Option<Request<Tensors>>,
}

impl accelpool_request {
    pub(crate) fn from_request(request: Request<Tensors>) -> Self {
        Self {
            request: Some(request),
        }
    }

    /// Takes the request out for a submit.
    pub(crate) fn take(&mut self) -> Request<Tensors> {
        self.request.take().expect("a request outside a submit")
    }

    /// Puts a refused request back.
    pub(crate) fn put_back(&mut self, request: Request<Tensors>) {
        self.request = Some(request);
    }

    fn update(&mut self, f: impl FnOnce(Request<Tensors>) -> Request<Tensors>) {
        let r = self.take();
        self.request = Some(f(r));
    }

    fn tensors(&mut self) -> &mut Tensors {
        self.request
            .as_mut()
            .expect("a request outside a submit")
            .input_mut()
    }

    /// Fails if the request already has a tensor called `name`.
    fn check_unique(&mut self, name: &str) -> Result<(), Error> {
        if self.tensors().iter().any(|t| t.name == name) {
            return Err(Error::invalid(format!(
                "the request already has a tensor named `{name}`; give each input its own name"
            )));
        }
        Ok(())
    }
}

/// Makes an empty request (no tensors, priority normal, no deadline, any
/// group) in `*request`. Free it with `accelpool_request_free` unless a
/// submit takes it.
#[no_mangle]
pub extern "C" fn accelpool_request_new(
    request: *mut *mut accelpool_request,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        let r = Box::new(accelpool_request::from_request(Request::new(Vec::new())));
        // SAFETY: the caller's out-pointer, checked for NULL.
        unsafe { args::write_out(request, "request", Box::into_raw(r)) }
    })
}

/// Adds an input tensor, copying `byte_len` bytes from `data` (the caller
/// may reuse its buffer at once). `dims` has `ndims` (at most 32)
/// dimensions whose product times the element size must equal `byte_len`.
/// Names must be unique within the request.
#[no_mangle]
pub extern "C" fn accelpool_request_add_tensor(
    request: *mut accelpool_request,
    name: *const c_char,
    element_type: i32,
    dims: *const usize,
    ndims: usize,
    data: *const c_void,
    byte_len: usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        // SAFETY: the caller's arguments as documented above.
        let shape = unsafe { Shape::read(name, element_type, dims, ndims, data, byte_len) }?;
        r.check_unique(shape.name)?;
        r.tensors().push(shape.copied());
        Ok(())
    })
}

/// Adds an input tensor without copying: the pool reads `data` in place.
/// The buffer must stay valid and unchanged until
/// `release(release_user, data)` is called, which happens exactly once,
/// from any thread, when no part of the pool needs it any more (after the
/// request finished and its result or dead letter was let go, or when a
/// request that was never submitted is freed). `release` may be NULL when
/// the buffer outlives the pool. If this call fails, the buffer was not
/// taken and `release` is not called.
#[no_mangle]
pub extern "C" fn accelpool_request_add_tensor_lent(
    request: *mut accelpool_request,
    name: *const c_char,
    element_type: i32,
    dims: *const usize,
    ndims: usize,
    data: *const c_void,
    byte_len: usize,
    release: accelpool_release_fn,
    release_user: *mut c_void,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        // SAFETY: the caller's arguments as documented above.
        let shape = unsafe { Shape::read(name, element_type, dims, ndims, data, byte_len) }?;
        r.check_unique(shape.name)?;
        let lender = Lender {
            data: data.cast(),
            len: byte_len,
            release,
            user: release_user,
        };
        r.tensors().push(shape.lent(lender));
        Ok(())
    })
}

/// Sets the priority: one of `accelpool_priority`.
#[no_mangle]
pub extern "C" fn accelpool_request_set_priority(
    request: *mut accelpool_request,
    priority: i32,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        let p = self::priority(priority)?;
        r.update(|r| r.priority(p));
        Ok(())
    })
}

/// Sets the deadline to `timeout_ms` milliseconds from now: a request still
/// queued then expires instead of running.
#[no_mangle]
pub extern "C" fn accelpool_request_set_timeout_ms(
    request: *mut accelpool_request,
    timeout_ms: u64,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        r.update(|r| r.timeout(Duration::from_millis(timeout_ms)));
        Ok(())
    })
}

/// Restricts the request to the device group named `group` (a copy is
/// kept). A name the pool does not have is refused at submit with
/// `ACCELPOOL_CODE_UNKNOWN_GROUP`.
#[no_mangle]
pub extern "C" fn accelpool_request_set_group(
    request: *mut accelpool_request,
    group: *const c_char,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        // SAFETY: the caller's NUL-terminated string.
        let g = unsafe { args::string(group, "group") }?.to_owned();
        r.update(|r| r.group(g));
        Ok(())
    })
}

/// Sets the tenant the request is served for (a copy is kept). With the
/// pool's tenant fairness on (`tenants: { enabled: true }`), tenants of one
/// priority level share the workers by weight and each has its own bound;
/// without it the key is carried and ignored. Requests without a tenant
/// share the default one.
#[no_mangle]
pub extern "C" fn accelpool_request_set_tenant(
    request: *mut accelpool_request,
    tenant: *const c_char,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        // SAFETY: the caller's NUL-terminated string.
        let t: std::sync::Arc<str> = unsafe { args::string(tenant, "tenant") }?.into();
        r.update(|r| r.tenant(t));
        Ok(())
    })
}

/// Sets the request's affinity key. With the pool's affinity on
/// (`affinity: { enabled: true }`), requests with the same key prefer the
/// worker that last ran that key, for sessions that keep per-key state
/// warm; without it the key is carried and ignored.
#[no_mangle]
pub extern "C" fn accelpool_request_set_affinity(
    request: *mut accelpool_request,
    key: u64,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live request, used by this thread only.
        let r = unsafe { args::obj_mut(request, "request") }?;
        r.update(|r| r.affinity(key));
        Ok(())
    })
}

/// Frees a request the caller still owns (never submitted, or refused),
/// releasing its lent buffers. NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_request_free(request: *mut accelpool_request) {
    // SAFETY: NULL or an object this library made, freed once (the
    // caller's promise, as the header documents).
    unsafe { args::free(request) }
}
