//! The dead-letter queue from C: its length, draining it as JSON, and
//! replaying its letters as new requests.

use std::ffi::c_char;

use accelpool::openvino::Tensors;
use accelpool::{DeadLetter, Request, TaskHandle};

use crate::args;
use crate::error::{accelpool_code, accelpool_error, c_string, getter, guard, Error};
use crate::handle::accelpool_handle;
use crate::pool::accelpool_pool;
use crate::request::accelpool_request;

/// Letters in the pool's dead-letter queue now, to `*count`.
#[no_mangle]
pub extern "C" fn accelpool_pool_dead_letter_count(
    pool: *const accelpool_pool,
    count: *mut usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(pool, "pool", count, "count", error, |p| {
        Ok(p.pool().dead_letters().len())
    })
}

/// A dead letter as JSON: everything but the input's data.
fn letter_json(l: &DeadLetter<Tensors>) -> serde_json::Value {
    let inputs: Vec<_> = l
        .input
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "element_type": t.data.element_name(),
                "shape": t.shape,
            })
        })
        .collect();
    serde_json::json!({
        "id": l.id,
        "priority": l.priority,
        "group": l.group,
        "inputs": inputs,
        "errors": l.errors,
        "submitted_at": l.submitted_at,
        "dead_lettered_at": l.dead_lettered_at,
    })
}

/// Removes every letter from the dead-letter queue and writes them to
/// `*json` as a JSON array, oldest first: id, priority, group, the inputs'
/// names, element types and shapes (not their data; use
/// `accelpool_pool_replay_dead_letters` to run them again instead), every
/// attempt's error, and timestamps. Free it with `accelpool_string_free`.
#[no_mangle]
pub extern "C" fn accelpool_pool_drain_dead_letters_json(
    pool: *const accelpool_pool,
    json: *mut *mut c_char,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(pool, "pool", json, "json", error, |p| {
        let letters = p.pool().dead_letters().drain();
        let all: Vec<_> = letters.iter().map(letter_json).collect();
        Ok(c_string(serde_json::Value::Array(all).to_string()).into_raw())
    })
}

/// The outcome of one replayed letter.
enum Replayed {
    Handle(TaskHandle<Tensors>),
    Refused(Request<Tensors>, Error),
    Taken,
}

/// The outcomes of a replay, one per letter, oldest first. Used by one
/// thread at a time.
#[allow(non_camel_case_types)]
pub struct accelpool_replay {
    entries: Vec<Replayed>,
}

/// Drains the dead-letter queue and submits every letter again as a new
/// request (same input, priority and group; no deadline), waiting while
/// queues are full. `*replay` lists the outcomes: take each with
/// `accelpool_replay_take`, then free the list.
#[no_mangle]
pub extern "C" fn accelpool_pool_replay_dead_letters(
    pool: *const accelpool_pool,
    replay: *mut *mut accelpool_replay,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live pool.
        let p = unsafe { args::obj(pool, "pool") }?;
        args::out(replay, "replay")?;
        let entries = p
            .pool()
            .replay_dead_letters()
            .into_iter()
            .map(|r| match r {
                Ok(h) => Replayed::Handle(h),
                Err(e) => {
                    let error = Error::from(&e.refusal);
                    let l = e.letter;
                    let input = l
                        .input
                        .into_inner()
                        .unwrap_or_else(|shared| (*shared).clone());
                    let mut req = Request::new(input).priority(l.priority);
                    if let Some(g) = l.group {
                        req = req.group(g);
                    }
                    Replayed::Refused(req, error)
                }
            })
            .collect();
        let r = Box::new(accelpool_replay { entries });
        // SAFETY: checked not NULL above.
        unsafe { replay.write(Box::into_raw(r)) };
        Ok(())
    })
}

/// How many letters the replay holds, to `*len`.
#[no_mangle]
pub extern "C" fn accelpool_replay_len(
    replay: *const accelpool_replay,
    len: *mut usize,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    getter(replay, "replay", len, "len", error, |r| Ok(r.entries.len()))
}

/// Takes entry `index`. `ACCELPOOL_CODE_OK`: it was resubmitted and
/// `*handle` is its handle. A refusal code: it was refused and `*request`
/// is the request, now the caller's (submit it again or free it).
/// `NOT_FOUND` for an index past the end or an entry already taken.
#[no_mangle]
pub extern "C" fn accelpool_replay_take(
    replay: *mut accelpool_replay,
    index: usize,
    handle: *mut *mut accelpool_handle,
    request: *mut *mut accelpool_request,
    error: *mut *mut accelpool_error,
) -> accelpool_code {
    guard(error, || {
        // SAFETY: the caller's live replay list, used by one thread.
        let r = unsafe { args::obj_mut(replay, "replay") }?;
        args::out(handle, "handle")?;
        args::out(request, "request")?;
        let entry = r.entries.get_mut(index).ok_or_else(|| {
            Error::new(
                accelpool_code::NotFound,
                format!("entry {index} is past the replay's end"),
            )
        })?;
        match std::mem::replace(entry, Replayed::Taken) {
            Replayed::Handle(h) => {
                // SAFETY: checked not NULL above.
                unsafe { handle.write(accelpool_handle::boxed(h)) };
                Ok(())
            }
            Replayed::Refused(req, e) => {
                let boxed = Box::new(accelpool_request::from_request(req));
                // SAFETY: checked not NULL above.
                unsafe { request.write(Box::into_raw(boxed)) };
                Err(e)
            }
            Replayed::Taken => Err(Error::new(
                accelpool_code::NotFound,
                format!("entry {index} was already taken"),
            )),
        }
    })
}

/// Frees a replay list; entries not taken are freed with it (their
/// requests keep running; refused ones are dropped). NULL is ignored.
#[no_mangle]
pub extern "C" fn accelpool_replay_free(replay: *mut accelpool_replay) {
    // SAFETY: NULL or an object this library made, freed once (the
    // caller's promise, as the header documents).
    unsafe { args::free(replay) }
}
