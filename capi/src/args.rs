//! Reading the C caller's arguments: every pointer checked for NULL, every
//! string for UTF-8, every length bounded, each failure a typed error that
//! names the argument.

use std::ffi::{c_char, CStr};

use crate::error::Error;

/// The most dimensions a tensor may have.
pub const MAX_DIMS: usize = 32;

/// A shared reference to the caller's object `name`.
///
/// # Safety
/// `p` is NULL or points to a live object of this type (the caller's promise
/// for every object argument).
pub unsafe fn obj<'a, T>(p: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the function's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Error::null(name))
}

/// An exclusive reference to the caller's object `name`.
///
/// # Safety
/// As [`obj`], and no other thread uses the object meanwhile (the header
/// documents which objects are single-threaded).
pub unsafe fn obj_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Error> {
    // SAFETY: the function's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Error::null(name))
}

/// Writes `value` through the caller's out-pointer `name`.
///
/// # Safety
/// `p` is NULL or points to writable storage for a `T`.
pub unsafe fn write_out<T>(p: *mut T, name: &str, value: T) -> Result<(), Error> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    // SAFETY: not NULL, and writable by the function's contract.
    unsafe { p.write(value) };
    Ok(())
}

/// Checks an out-pointer before any work is done, so a NULL one fails
/// without side effects.
pub fn out<T>(p: *mut T, name: &str) -> Result<(), Error> {
    if p.is_null() {
        Err(Error::null(name))
    } else {
        Ok(())
    }
}

/// The caller's NUL-terminated UTF-8 string `name`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub unsafe fn string<'a>(p: *const c_char, name: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    // SAFETY: not NULL and NUL-terminated by the function's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|e| Error::invalid(format!("`{name}` is not UTF-8 ({e}); pass UTF-8 text")))
}

/// The caller's array `name` of `len` elements (NULL allowed when empty).
///
/// # Safety
/// `p` is NULL or points to `len` initialised elements that outlive `'a`.
pub unsafe fn slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::null(name));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Error::invalid(format!(
            "`{name}`: {len} elements are more than memory can hold"
        )));
    }
    // SAFETY: not NULL, `len` elements by the function's contract, and the
    // byte size fits an `isize` (checked above).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A timeout in milliseconds; `u64::MAX` means none (wait for ever).
pub fn millis(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

/// Frees an object this library made with `Box::into_raw`; NULL is
/// ignored. A panic while dropping it is caught (nothing unwinds into C).
///
/// # Safety
/// `p` is NULL or such an object, freed once, used by no one afterwards.
pub unsafe fn free<T>(p: *mut T) {
    if p.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the function's contract.
        drop(unsafe { Box::from_raw(p) })
    }));
}
