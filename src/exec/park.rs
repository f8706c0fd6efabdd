//! Why a worker is parked: memory pressure, load scaling, or both. A worker
//! runs only while it has no reason to park.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU8, Ordering};

/// One reason to park.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reason {
    /// To free memory under pressure.
    Pressure = 1,
    /// Idle, by load scaling.
    Idle = 2,
}

/// A worker's set of park reasons.
#[derive(Debug, Default)]
pub(crate) struct ParkReasons(AtomicU8);

impl ParkReasons {
    /// True with no reason to park: the worker runs.
    #[inline]
    pub(crate) fn none(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }

    /// True when `reason` is the only one.
    pub(crate) fn only(&self, reason: Reason) -> bool {
        self.0.load(Ordering::Acquire) == reason as u8
    }

    /// Adds a reason.
    pub(crate) fn add(&self, reason: Reason) {
        self.0.fetch_or(reason as u8, Ordering::AcqRel);
    }

    /// Removes a reason; true if it was there.
    pub(crate) fn remove(&self, reason: Reason) -> bool {
        self.0.fetch_and(!(reason as u8), Ordering::AcqRel) & reason as u8 != 0
    }
}
