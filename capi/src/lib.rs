//! The C ABI of accelpool: `libaccelpool_c` (shared and static) and the
//! header `include/accelpool.h` generated from this crate by cbindgen.
//!
//! # Conventions (the header repeats them)
//!
//! - Every function that can fail returns an `accelpool_code`
//!   (`ACCELPOOL_CODE_OK` is 0) and takes, last, an `accelpool_error **error`:
//!   when it is not NULL and the call fails, `*error` is set to a new error
//!   object (code, message, field path for configuration errors) the caller
//!   frees with `accelpool_error_free`. Nothing is written on success.
//! - Every pointer argument is checked: NULL where an object is needed is
//!   `ACCELPOOL_CODE_NULL_ARGUMENT`, never a crash. A dangling pointer or a
//!   double free cannot be detected and is undefined behaviour, as in any C
//!   API.
//! - No panic crosses the boundary: each function catches them and returns
//!   `ACCELPOOL_CODE_INTERNAL`.
//! - Objects the library makes are freed by their `_free` function, which
//!   ignores NULL. A pool is shared by any number of threads; a request, a
//!   handle, a builder and a replay list by one thread at a time (they may
//!   move between threads); a result is read-only and may be shared.
//! - A submit takes the request (`*request` becomes NULL) only when it is
//!   accepted; a refused request stays the caller's, untouched.
//!
//! Rust code should use the `accelpool` crate directly; this crate's items
//! exist for C and C++.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
// The exported functions are entry points for C, where `unsafe` does not
// exist: each checks its pointers for NULL, and the rest of its contract
// (live objects, one thread for single-threaded ones) is in the header.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod args;
pub mod dead_letters;
pub mod error;
pub mod handle;
pub mod pool;
pub mod request;
pub mod session;
pub mod tensor;

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// The version of this library, as `MAJOR.MINOR.PATCH`. Never NULL.
#[no_mangle]
pub extern "C" fn accelpool_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The version of the OpenVINO runtime this process loaded (for example
/// `2026.4.1-...`), or NULL when none is loaded yet (a pool with an
/// OpenVINO group loads it).
#[no_mangle]
pub extern "C" fn accelpool_openvino_version() -> *const c_char {
    static VERSION: OnceLock<CString> = OnceLock::new();
    // Nothing here is expected to panic; the boundary holds regardless.
    std::panic::catch_unwind(|| match accelpool::openvino::library::runtime_version() {
        Some(v) => VERSION
            .get_or_init(|| error::c_string(v.to_owned()))
            .as_ptr(),
        None => std::ptr::null(),
    })
    .unwrap_or(std::ptr::null())
}
