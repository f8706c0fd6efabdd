//! Pools: built from YAML (OpenVINO groups, and groups whose sessions are
//! C vtables), shared by any number of threads; submitting, stats, the
//! dead-letter queue and shutdown.

use std::ffi::c_char;
use std::path::Path;
use std::time::Duration;

use accelpool::openvino::Tensors;
use accelpool::{Pool, PoolBuilder, PoolConfig, Request, SubmitError, TaskHandle};

use crate::args;
use crate::error::{accelpool_code, accelpool_error, c_string, getter, guard, Error};
use crate::handle::accelpool_handle;
use crate::request::accelpool_request;
use crate::session::{accelpool_session_vtable, CFactory};

/// A configuration on its way to becoming a pool: set the sessions of the
/// groups that have no `backend` here, then build. Used by one thread at a
/// time.
#[allow(non_camel_case_types)]
pub struct accelpool_builder {
    config: PoolConfig,
    sessions: Vec<(String, CFactory)>,
}

/// A running pool. Shared by any number of threads: every function taking
/// a `const accelpool_pool *` may be called concurrently.
/// `accelpool_pool_free` must be the last call on it.
#[allow(non_camel_case_types)]
pub struct accelpool_pool {
    pool: Pool<Tensors, Tensors>,
}

impl accelpool_pool {
    pub(crate) fn pool(&self) -> &Pool<Tensors, Tensors> {
        &self.pool
    }
}

fn builder(config: PoolConfig, out: *mut *mut accelpool_builder) -> Result<(), Error> {
    let b = Box::new(accelpool_builder {
        config,
        sessions: Vec::new(),
    });
    // SAFETY: checked not NULL by the caller (`args::out`) before parsing.
    unsafe { out.write(Box::into_raw(b)) };
    Ok(())
}

/// Reads a pool configuration from the YAML file at `path` (UTF-8) into a
/// new builder. Errors: `CONFIG` (with the field path) for a bad file.
#[no_mangle]
pub extern "C" fn accelpool_builder_from_yaml_file(
    path: *const c_char,
    builder: *mut *mut accelpool_builder,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's NUL-terminated string.
        let path = unsafe { args::string(path, "path") }?;
        args::out(builder, "builder")?;
        self::builder(PoolConfig::from_yaml_file(Path::new(path))?, builder)
    })
}

/// Reads a pool configuration from YAML text (UTF-8, NUL-terminated) into a
/// new builder. Errors: `CONFIG` (with the field path) for bad YAML.
#[no_mangle]
pub extern "C" fn accelpool_builder_from_yaml_str(
    yaml: *const c_char,
    builder: *mut *mut accelpool_builder,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's NUL-terminated string.
        let yaml = unsafe { args::string(yaml, "yaml") }?;
        args::out(builder, "builder")?;
        self::builder(PoolConfig::from_yaml(yaml)?, builder)
    })
}

/// Makes the sessions of group `group` (one without a `backend` in the
/// configuration) from the C vtable `vtable` (copied). Its `release` runs
/// when the pool, or this builder unbuilt, is freed.
#[no_mangle]
pub extern "C" fn accelpool_builder_set_sessions(
    builder: *mut accelpool_builder,
    group: *const c_char,
    vtable: *const accelpool_session_vtable,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live builder, used by one thread.
        let b = unsafe { args::obj_mut(builder, "builder") }?;
        // SAFETY: the caller's NUL-terminated string.
        let group = unsafe { args::string(group, "group") }?;
        // SAFETY: the caller's vtable, read once here.
        let vtable = unsafe { args::obj(vtable, "vtable") }?;
        let Some(g) = b.config.groups.iter().find(|g| g.name == group) else {
            let names: Vec<&str> = b.config.groups.iter().map(|g| g.name.as_str()).collect();
            return Err(Error::new(
                accelpool_code::UnknownGroup,
                format!(
                    "the configuration has no group `{group}` (it has: {}); name one of those",
                    names.join(", ")
                ),
            ));
        };
        if g.backend.is_some() {
            return Err(Error::invalid(format!(
                "group `{group}` has a `backend` in its configuration; C sessions serve only \
                 groups without one"
            )));
        }
        if b.sessions.iter().any(|(n, _)| n == group) {
            return Err(Error::invalid(format!(
                "group `{group}` already has its sessions set"
            )));
        }
        b.sessions.push((group.to_owned(), CFactory::new(vtable)?));
        Ok(())
    })
}

/// Builds the pool and frees the builder, whatever the outcome (`*builder`
/// is set to NULL). OpenVINO groups compile their models now; every worker
/// builds its first session before this returns. Errors: `CONFIG`,
/// `LIBRARY`, `MODEL`, `DEVICE`, `INSECURE_PATH`, `OPENVINO`, `BUILD`.
#[no_mangle]
pub extern "C" fn accelpool_builder_build(
    builder: *mut *mut accelpool_builder,
    pool: *mut *mut accelpool_pool,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's pointer to its builder pointer.
        let slot = unsafe { args::obj_mut(builder, "builder") }?;
        if slot.is_null() {
            return Err(Error::null("*builder"));
        }
        args::out(pool, "pool")?;
        // SAFETY: a builder this library made; the caller gives it up here
        // and its pointer is cleared.
        let b = unsafe { Box::from_raw(std::mem::replace(slot, std::ptr::null_mut())) };
        let built = build(*b)?;
        // SAFETY: checked not NULL above.
        unsafe { pool.write(Box::into_raw(Box::new(accelpool_pool { pool: built }))) };
        Ok(())
    })
}

/// Builds a pool of OpenVINO groups only into the caller's `*out`
/// (checked not NULL by the caller).
fn new_pool(config: PoolConfig, out: *mut *mut accelpool_pool) -> Result<(), Error> {
    let b = accelpool_builder {
        config,
        sessions: Vec::new(),
    };
    let p = Box::new(accelpool_pool { pool: build(b)? });
    // SAFETY: checked not NULL by the caller, before any work.
    unsafe { out.write(Box::into_raw(p)) };
    Ok(())
}

fn build(b: accelpool_builder) -> Result<Pool<Tensors, Tensors>, Error> {
    let mut pb = PoolBuilder::from_openvino_config(b.config)?;
    for (group, factory) in b.sessions {
        pb = pb.factory(group, factory);
    }
    Ok(pb.build()?)
}

/// Frees a builder that was not built, releasing the vtables given to it.
/// NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_builder_free(builder: *mut accelpool_builder) {
    // SAFETY: NULL or an object this library made, freed once (the
    // caller's promise, as the header documents).
    unsafe { args::free(builder) }
}

/// Builds a pool from the YAML file at `path`, whose groups all have an
/// OpenVINO `backend`: `accelpool_builder_from_yaml_file` then
/// `accelpool_builder_build`.
#[no_mangle]
pub extern "C" fn accelpool_pool_from_yaml_file(
    path: *const c_char,
    pool: *mut *mut accelpool_pool,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's NUL-terminated string.
        let path = unsafe { args::string(path, "path") }?;
        args::out(pool, "pool")?;
        new_pool(PoolConfig::from_yaml_file(Path::new(path))?, pool)
    })
}

/// Builds a pool from YAML text whose groups all have an OpenVINO
/// `backend`.
#[no_mangle]
pub extern "C" fn accelpool_pool_from_yaml_str(
    yaml: *const c_char,
    pool: *mut *mut accelpool_pool,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's NUL-terminated string.
        let yaml = unsafe { args::string(yaml, "yaml") }?;
        args::out(pool, "pool")?;
        new_pool(PoolConfig::from_yaml(yaml)?, pool)
    })
}

/// How a submit waits for room.
enum Wait {
    Never,
    Forever,
    For(Duration),
}

fn submit(
    pool: *const accelpool_pool,
    request: *mut *mut accelpool_request,
    handle: *mut *mut accelpool_handle,
    wait: Wait,
) -> Result<(), Error> {
    // SAFETY: the caller's live pool, shared by any number of threads.
    let p = unsafe { args::obj(pool, "pool") }?;
    // SAFETY: the caller's pointer to its request pointer.
    let slot = unsafe { args::obj_mut(request, "request") }?;
    // SAFETY: the caller's request, owned by this thread during the call.
    let r = unsafe { args::obj_mut(*slot, "*request") }?;
    args::out(handle, "handle")?;
    let req: Request<Tensors> = r.take();
    let outcome: Result<TaskHandle<Tensors>, SubmitError<Tensors>> = match wait {
        Wait::Never => p.pool.try_submit(req),
        Wait::Forever => p.pool.submit(req),
        Wait::For(t) => p.pool.submit_timeout(req, t),
    };
    match outcome {
        Ok(h) => {
            // SAFETY: the request was taken; its (now empty) box is freed
            // and the caller's pointer cleared, as documented.
            drop(unsafe { Box::from_raw(std::mem::replace(slot, std::ptr::null_mut())) });
            // SAFETY: checked not NULL above.
            unsafe { handle.write(accelpool_handle::boxed(h)) };
            Ok(())
        }
        Err(e) => {
            let (req, refusal) = e.into_parts();
            r.put_back(req);
            Err(Error::from(&refusal))
        }
    }
}

/// Submits `*request` without waiting. On success the pool owns the request
/// (`*request` is set to NULL) and `*handle` is its handle. When refused
/// (`FULL`, `CLOSED`, `UNKNOWN_GROUP`, `MEMORY_PRESSURE`, `UNAVAILABLE`,
/// `INVALID_INPUT`), the request is untouched and still the caller's: submit
/// it again, or free it.
#[no_mangle]
pub extern "C" fn accelpool_pool_try_submit(
    pool: *const accelpool_pool,
    request: *mut *mut accelpool_request,
    handle: *mut *mut accelpool_handle,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || submit(pool, request, handle, Wait::Never))
}

/// As `accelpool_pool_try_submit`, but waits while the queues are full.
#[no_mangle]
pub extern "C" fn accelpool_pool_submit(
    pool: *const accelpool_pool,
    request: *mut *mut accelpool_request,
    handle: *mut *mut accelpool_handle,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || submit(pool, request, handle, Wait::Forever))
}

/// As `accelpool_pool_submit`, but waits at most `timeout_ms`
/// milliseconds for room, then refuses with `TIMEOUT`.
#[no_mangle]
pub extern "C" fn accelpool_pool_submit_timeout(
    pool: *const accelpool_pool,
    request: *mut *mut accelpool_request,
    timeout_ms: u64,
    handle: *mut *mut accelpool_handle,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        submit(pool, request, handle, Wait::For(args::millis(timeout_ms)))
    })
}

/// The pool's request counters (the accounting identity holds once the
/// pool is drained: `accepted = completed + dead_lettered + cancelled +
/// expired`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct accelpool_counts {
    /// Requests taken into a queue.
    pub accepted: u64,
    /// Submissions refused and handed back.
    pub rejected: u64,
    /// Attempts a worker started.
    pub started: u64,
    /// Requests that finished with a result.
    pub completed: u64,
    /// Attempts that failed.
    pub failed_attempts: u64,
    /// Failed attempts scheduled to run again.
    pub retried: u64,
    /// Requests that exhausted their attempts.
    pub dead_lettered: u64,
    /// Requests cancelled by their caller or by shutdown.
    pub cancelled: u64,
    /// Requests whose deadline passed before a worker took them.
    pub expired: u64,
}

/// The pool's counters now, to `*counts`.
#[no_mangle]
pub extern "C" fn accelpool_pool_counts(
    pool: *const accelpool_pool,
    counts: *mut accelpool_counts,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(pool, "pool", counts, "counts", error, |p| {
        let c = p.pool.stats().counts;
        let out = accelpool_counts {
            accepted: c.accepted,
            rejected: c.rejected,
            started: c.started,
            completed: c.completed,
            failed_attempts: c.failed_attempts,
            retried: c.retried,
            dead_lettered: c.dead_lettered,
            cancelled: c.cancelled,
            expired: c.expired,
        };
        Ok(out)
    })
}

/// Which latency `accelpool_pool_latency` reports (values of an
/// `int32_t which`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum accelpool_latency_kind {
    /// From acceptance at submit to the completed result.
    EndToEnd = 1,
    /// From entering a queue to a worker taking it (per attempt).
    QueueWait = 2,
    /// Time inside the session (per attempt).
    Service = 3,
}

/// Percentiles of one latency, in microseconds, since the pool started.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct accelpool_latency {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// One of the pool's latencies (`which`: an `accelpool_latency_kind`), to
/// `*latency`; the same figures as the stats JSON's `latency` object.
#[no_mangle]
pub extern "C" fn accelpool_pool_latency(
    pool: *const accelpool_pool,
    which: i32,
    latency: *mut accelpool_latency,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(pool, "pool", latency, "latency", error, |p| {
        args::out(latency, "latency")?;
        let l = p.pool.stats().latency;
        let q = match which {
            1 => l.end_to_end,
            2 => l.queue_wait,
            3 => l.service,
            other => {
                return Err(Error::invalid(format!(
                    "`which` {other} is no accelpool_latency_kind; use \
                         ACCELPOOL_LATENCY_KIND_END_TO_END, _QUEUE_WAIT or _SERVICE"
                )))
            }
        };
        let out = accelpool_latency {
            count: q.count,
            mean_us: q.mean_us,
            p50_us: q.p50_us,
            p90_us: q.p90_us,
            p95_us: q.p95_us,
            p99_us: q.p99_us,
            p999_us: q.p999_us,
            max_us: q.max_us,
        };
        Ok(out)
    })
}

/// Hands `json` to the caller as a string it frees with
/// `accelpool_string_free`.
fn give_string(json: String, out: *mut *mut c_char) {
    // SAFETY: checked not NULL by the caller of this function.
    unsafe { out.write(c_string(json).into_raw()) };
}

fn json(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|e| Error::new(accelpool_code::Internal, format!("stats as JSON: {e}")))
}

/// The pool's stats as JSON (the snapshot the Rust API's `Pool::stats`
/// serialises: counts, latencies, groups, workers, breakers, health,
/// memory) in `*json`; free it with `accelpool_string_free`.
#[no_mangle]
pub extern "C" fn accelpool_pool_stats_json(
    pool: *const accelpool_pool,
    json: *mut *mut c_char,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(pool, "pool", json, "json", error, |p| {
        Ok(c_string(self::json(&p.pool.stats())?).into_raw())
    })
}

/// Shuts the pool down: stops taking requests, lets queued ones finish for
/// up to `timeout_ms` milliseconds, cancels the rest, joins the workers.
/// `*report_json` (may be NULL) gets the report as JSON (free it with
/// `accelpool_string_free`). A second shutdown reports nothing new. The
/// pool must still be freed.
#[no_mangle]
pub extern "C" fn accelpool_pool_shutdown(
    pool: *const accelpool_pool,
    timeout_ms: u64,
    report_json: *mut *mut c_char,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live pool.
        let p = unsafe { args::obj(pool, "pool") }?;
        let report = p.pool.shutdown(args::millis(timeout_ms));
        if !report_json.is_null() {
            give_string(self::json(&report)?, report_json);
        }
        Ok(())
    })
}

/// Frees a pool, shutting it down first if it is running (queued requests
/// get the configured drop timeout to finish). No other thread may use it
/// during or after this call. NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_pool_free(pool: *mut accelpool_pool) {
    // SAFETY: NULL or a pool this library made, freed once, used by no
    // other thread (the caller's promise).
    unsafe { args::free(pool) }
}

/// Frees a string this library returned. NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_string_free(string: *mut c_char) {
    if !string.is_null() {
        // SAFETY: a string this library made with `CString::into_raw`,
        // freed once (the caller's promise).
        drop(unsafe { std::ffi::CString::from_raw(string) });
    }
}
