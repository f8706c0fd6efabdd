//! Sessions written in C: a device group whose sessions are a vtable of C
//! callbacks, so an application can put its own accelerator SDK behind the
//! pool's queues, priorities, retries and accounting.

use std::collections::hash_map::DefaultHasher;
use std::ffi::{c_char, c_void, CStr};
use std::hash::{Hash, Hasher};

use accelpool::openvino::Tensors;
use accelpool::{
    BatchItem, BatchResult, ErrorKind, RunContext, Session, SessionError, SessionFactory,
    WorkerInfo,
};

use crate::args;
use crate::error::{accelpool_code, accelpool_error, c_string, getter, guard, Error};
use crate::tensor::{accelpool_tensor_view, Names, Shape};

/// Bytes of the message buffer handed to `create` and `run`
/// (NUL-terminated; a longer message is cut).
pub const ACCELPOOL_MESSAGE_CAPACITY: usize = 512;

/// What a C session's callback returns, and the kind of a failed item.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum accelpool_session_status {
    /// Success.
    Ok = 0,
    /// Worth trying again, possibly on another worker or group: retried.
    Transient = 1,
    /// Retrying cannot help (bad input, say): dead-lettered at once.
    Permanent = 2,
    /// Stopped because the request was cancelled.
    Cancelled = 3,
}

fn kind(status: i32) -> Result<ErrorKind, i32> {
    match status {
        1 => Ok(ErrorKind::Transient),
        2 => Ok(ErrorKind::Permanent),
        3 => Ok(ErrorKind::Cancelled),
        other => Err(other),
    }
}

/// The worker a session is created for.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct accelpool_worker_info {
    /// The device group's name, NUL-terminated (valid during `create`).
    pub group: *const c_char,
    /// The worker's index within its group.
    pub worker: usize,
    /// The core the worker is pinned to, or -1 when it is not pinned.
    pub core: i64,
    /// 0 for the first session of this worker, then 1, 2, ... for each
    /// rebuild after a failure.
    pub rebuild: u64,
}

/// The callbacks of a C session type. The pool copies the struct.
///
/// `create` runs on the worker thread that will use the session, once per
/// worker (and again after a session is rebuilt); `run` and `destroy` run
/// on that same thread. Callbacks of different workers run at the same
/// time, so anything they share through `user` must be thread-safe.
/// Callbacks must not unwind (no C++ exception may leave them).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct accelpool_session_vtable {
    /// Passed to every callback as is.
    pub user: *mut c_void,
    /// Makes a session for `worker` in `*session`. Returns
    /// `ACCELPOOL_SESSION_STATUS_OK`, or a failure status with a message
    /// written to `message` (`ACCELPOOL_MESSAGE_CAPACITY` bytes). Required.
    pub create: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            worker: *const accelpool_worker_info,
            session: *mut *mut c_void,
            message: *mut c_char,
        ) -> i32,
    >,
    /// Runs a batch of one or more requests. For each item, add its outputs
    /// with `accelpool_batch_add_output` or fail it alone with
    /// `accelpool_batch_fail`, then return `ACCELPOOL_SESSION_STATUS_OK`.
    /// Returning a failure status fails every item of the call, with the
    /// message written to `message`. Required.
    pub run: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            session: *mut c_void,
            batch: *mut accelpool_batch,
            message: *mut c_char,
        ) -> i32,
    >,
    /// Frees a session `create` made. Optional.
    pub destroy: Option<unsafe extern "C" fn(user: *mut c_void, session: *mut c_void)>,
    /// Called once, from any thread, when the pool no longer needs `user`
    /// (the pool was freed, or the builder was freed unbuilt). Optional.
    pub release: Option<unsafe extern "C" fn(user: *mut c_void)>,
}

/// The requests of one `run` call, as the C session sees them. Valid only
/// until `run` returns; used by one thread at a time.
#[allow(non_camel_case_types)]
pub struct accelpool_batch {
    items: Vec<Item>,
    names: Vec<Names>,
    outputs: Vec<Tensors>,
    failures: Vec<Option<SessionError>>,
}

/// One request of a batch: pointers into the worker's stack frame, read only
/// while the C `run` callback that received the batch is running.
struct Item {
    input: *const Tensors,
    ctx: *const RunContext<'static>,
}

impl accelpool_batch {
    fn item(&self, item: usize) -> Result<&Item, Error> {
        self.items.get(item).ok_or_else(|| {
            Error::new(
                accelpool_code::NotFound,
                format!("item {item} is past the batch's {} items", self.items.len()),
            )
        })
    }

    fn input(&self, item: usize) -> Result<&Tensors, Error> {
        let it = self.item(item)?;
        // SAFETY: the batch is only reachable from C while `run` runs, and
        // the inputs outlive that call (`CSession::call`).
        Ok(unsafe { &*it.input })
    }
}

/// A C session type, as a factory the pool calls on each worker thread.
pub(crate) struct CFactory {
    vtable: accelpool_session_vtable,
}

// SAFETY: the header requires the vtable's callbacks and `user` to be
// usable from any thread (different workers call them at once).
unsafe impl Send for CFactory {}
// SAFETY: as above.
unsafe impl Sync for CFactory {}

impl CFactory {
    /// Checks and copies the caller's vtable.
    pub(crate) fn new(vtable: &accelpool_session_vtable) -> Result<Self, Error> {
        if vtable.create.is_none() {
            return Err(Error::null("vtable->create"));
        }
        if vtable.run.is_none() {
            return Err(Error::null("vtable->run"));
        }
        Ok(Self {
            vtable: accelpool_session_vtable { ..*vtable },
        })
    }
}

impl Drop for CFactory {
    fn drop(&mut self) {
        if let Some(release) = self.vtable.release {
            // SAFETY: the caller's callback and pointer, called once (the
            // factory is dropped once).
            unsafe { release(self.vtable.user) };
        }
    }
}

/// Runs a C callback that fills `message`, and reads the message back.
fn with_message(call: impl FnOnce(*mut c_char) -> i32) -> (i32, String) {
    let mut buf = [0 as c_char; ACCELPOOL_MESSAGE_CAPACITY];
    let status = call(buf.as_mut_ptr());
    // The callback may have filled the whole buffer without a NUL.
    buf[ACCELPOOL_MESSAGE_CAPACITY - 1] = 0;
    // SAFETY: NUL-terminated within the buffer (set above).
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) };
    (status, msg.to_string_lossy().into_owned())
}

fn status_error(callback: &str, status: i32, message: String) -> SessionError {
    match kind(status) {
        Ok(k) => SessionError::new(
            k,
            if message.is_empty() {
                format!("the C session's `{callback}` failed")
            } else {
                message
            },
        ),
        Err(other) => SessionError::permanent(format!(
            "the C session's `{callback}` returned {other}, which is no accelpool_session_status"
        )),
    }
}

impl SessionFactory<Tensors, Tensors> for CFactory {
    fn create(
        &self,
        worker: &WorkerInfo,
    ) -> Result<Box<dyn Session<Tensors, Tensors>>, SessionError> {
        let group = c_string(worker.group.clone());
        let info = accelpool_worker_info {
            group: group.as_ptr(),
            worker: worker.worker,
            core: worker.core.map_or(-1, |c| c as i64),
            rebuild: worker.rebuild,
        };
        let create = self.vtable.create.expect("checked in CFactory::new");
        let mut session: *mut c_void = std::ptr::null_mut();
        // SAFETY: the caller's callback, given pointers valid for the call.
        let (status, message) =
            with_message(|m| unsafe { create(self.vtable.user, &info, &mut session, m) });
        if status != 0 {
            return Err(status_error("create", status, message));
        }
        Ok(Box::new(CSession {
            vtable: accelpool_session_vtable { ..self.vtable },
            session,
            batch: accelpool_batch {
                items: Vec::new(),
                names: Vec::new(),
                outputs: Vec::new(),
                failures: Vec::new(),
            },
        }))
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![("backend".into(), "c".into())]
    }

    /// Requests batch together when their tensors agree in name, element
    /// type and every dimension but the first.
    fn batch_key(&self, input: &Tensors) -> Option<u64> {
        let mut h = DefaultHasher::new();
        for t in input {
            (&t.name, t.shape.get(1..), t.data.element_name()).hash(&mut h);
        }
        Some(h.finish())
    }
}

/// One worker's C session.
struct CSession {
    vtable: accelpool_session_vtable,
    session: *mut c_void,
    /// Reused from call to call: no allocation per request beyond outputs.
    batch: accelpool_batch,
}

impl CSession {
    fn call(&mut self, items: &[(&Tensors, &RunContext<'_>)]) -> BatchResult<Tensors> {
        let b = &mut self.batch;
        b.items.clear();
        b.items.extend(items.iter().map(|(input, ctx)| Item {
            input: *input,
            ctx: (*ctx as *const RunContext<'_>).cast(),
        }));
        if b.names.len() < items.len() {
            b.names.resize_with(items.len(), Names::default);
        }
        for ((input, _), names) in items.iter().zip(&mut b.names) {
            names.fill(input.iter().map(|t| t.name.as_str()));
        }
        b.outputs.clear();
        b.outputs.resize_with(items.len(), Vec::new);
        b.failures.clear();
        b.failures.resize_with(items.len(), || None);
        let run = self.vtable.run.expect("checked in CFactory::new");
        let (user, session) = (self.vtable.user, self.session);
        // SAFETY: the caller's callback; the batch and its items' inputs and
        // contexts are valid until it returns.
        let (status, message) = with_message(|m| unsafe { run(user, session, b, m) });
        b.items.clear();
        if status != 0 {
            return Err(status_error("run", status, message));
        }
        Ok(b.outputs
            .drain(..)
            .zip(b.failures.drain(..))
            .map(|(out, failed)| failed.map_or(Ok(out), Err))
            .collect())
    }
}

impl Session<Tensors, Tensors> for CSession {
    fn run(&mut self, input: &Tensors, ctx: &RunContext<'_>) -> Result<Tensors, SessionError> {
        let mut out = self.call(&[(input, ctx)])?;
        out.pop().expect("one result per item")
    }

    fn run_batch(&mut self, batch: &[BatchItem<'_, Tensors>]) -> BatchResult<Tensors> {
        let items: Vec<_> = batch.iter().map(|b| (b.input, &b.ctx)).collect();
        self.call(&items)
    }
}

impl Drop for CSession {
    fn drop(&mut self) {
        if let Some(destroy) = self.vtable.destroy {
            // SAFETY: the session `create` made, destroyed once, on the
            // thread that used it.
            unsafe { destroy(self.vtable.user, self.session) };
        }
    }
}

/// How many requests `batch` holds (1 unless the group batches).
#[no_mangle]
pub extern "C" fn accelpool_batch_len(
    batch: *const accelpool_batch,
    len: *mut usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(batch, "batch", len, "len", error, |b| Ok(b.items.len()))
}

/// How many input tensors item `item` has.
#[no_mangle]
pub extern "C" fn accelpool_batch_input_count(
    batch: *const accelpool_batch,
    item: usize,
    count: *mut usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(batch, "batch", count, "count", error, |b| {
        let n = b.input(item)?.len();
        Ok(n)
    })
}

/// A view of input `index` of item `item`, valid until `run` returns.
#[no_mangle]
pub extern "C" fn accelpool_batch_input(
    batch: *const accelpool_batch,
    item: usize,
    index: usize,
    view: *mut accelpool_tensor_view,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(batch, "batch", view, "view", error, |b| {
        let inputs = b.input(item)?;
        let t = inputs.get(index).ok_or_else(|| {
            Error::new(
                accelpool_code::NotFound,
                format!(
                    "input {index} is past item {item}'s {} inputs",
                    inputs.len()
                ),
            )
        })?;
        let v = accelpool_tensor_view::of(t, b.names[item].get(index));
        Ok(v)
    })
}

/// True in `*cancelled` when item `item`'s request was cancelled while it
/// runs: a long call may stop early and fail the item with
/// `ACCELPOOL_SESSION_STATUS_CANCELLED`.
#[no_mangle]
pub extern "C" fn accelpool_batch_is_cancelled(
    batch: *const accelpool_batch,
    item: usize,
    cancelled: *mut bool,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(batch, "batch", cancelled, "cancelled", error, |b| {
        let it = b.item(item)?;
        // SAFETY: the context outlives the `run` call (`CSession::call`).
        let c = unsafe { &*it.ctx }.is_cancelled();
        Ok(c)
    })
}

/// Adds an output tensor to item `item`'s result, copying the data (the
/// same rules as `accelpool_request_add_tensor`).
#[no_mangle]
pub extern "C" fn accelpool_batch_add_output(
    batch: *mut accelpool_batch,
    item: usize,
    name: *const c_char,
    element_type: i32,
    dims: *const usize,
    ndims: usize,
    data: *const c_void,
    byte_len: usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: a batch handed to `run`, used during that call by one thread.
        let b = unsafe { args::obj_mut(batch, "batch") }?;
        b.item(item)?;
        // SAFETY: the caller's arguments, as for a request's tensor.
        let shape = unsafe { Shape::read(name, element_type, dims, ndims, data, byte_len) }?;
        b.outputs[item].push(shape.copied());
        Ok(())
    })
}

/// Fails item `item` alone with `status` (a failure status) and `message`
/// (NULL for none); the other items keep their outputs.
#[no_mangle]
pub extern "C" fn accelpool_batch_fail(
    batch: *mut accelpool_batch,
    item: usize,
    status: i32,
    message: *const c_char,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: a batch handed to `run`, used during that call by one thread.
        let b = unsafe { args::obj_mut(batch, "batch") }?;
        b.item(item)?;
        let kind = kind(status).map_err(|s| {
            Error::invalid(format!(
                "`status` {s} is no failure status; use ACCELPOOL_SESSION_STATUS_TRANSIENT, \
                 _PERMANENT or _CANCELLED"
            ))
        })?;
        let message = if message.is_null() {
            "the C session failed this item".to_owned()
        } else {
            // SAFETY: the caller's NUL-terminated string.
            unsafe { args::string(message, "message") }?.to_owned()
        };
        b.failures[item] = Some(SessionError::new(kind, message));
        Ok(())
    })
}
