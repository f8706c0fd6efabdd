//! Memory: a probe of how much memory is used against the limit that
//! applies to this process, and the pressure levels the supervisor acts on.
//!
//! The limit is the container's (the cgroup memory limit) when one is set,
//! not the host's total: a pool in a 4 GiB container on a 256 GiB host must
//! react at 4 GiB.

#![forbid(unsafe_code)]

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

/// One reading of memory use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemorySample {
    /// Bytes in use.
    pub used: u64,
    /// Bytes available to this process in all (the cgroup limit if set).
    pub limit: u64,
}

impl MemorySample {
    /// `used / limit`, 0 when the limit is unknown.
    pub fn fraction(&self) -> f64 {
        if self.limit == 0 {
            0.0
        } else {
            self.used as f64 / self.limit as f64
        }
    }
}

/// A source of memory readings (the supervisor samples it).
pub trait MemoryProbe: Send + Sync + 'static {
    /// Reads memory use now.
    fn sample(&self) -> Result<MemorySample, String>;
}

/// Reads the machine (or the container's cgroup limit) through sysinfo.
pub struct SysinfoProbe(Mutex<sysinfo::System>);

impl std::fmt::Debug for SysinfoProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SysinfoProbe")
    }
}

impl SysinfoProbe {
    /// A probe of this machine.
    pub fn new() -> Self {
        Self(Mutex::new(sysinfo::System::new()))
    }
}

impl Default for SysinfoProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryProbe for SysinfoProbe {
    fn sample(&self) -> Result<MemorySample, String> {
        let mut sys = self.0.lock();
        sys.refresh_memory();
        let (total, used) = (sys.total_memory(), sys.used_memory());
        if total == 0 {
            return Err("sysinfo reports no memory on this machine".into());
        }
        // A cgroup limit above the host's memory means "no limit".
        Ok(match sys.cgroup_limits() {
            Some(c) if c.total_memory > 0 && c.total_memory < total => MemorySample {
                used: c.total_memory.saturating_sub(c.free_memory),
                limit: c.total_memory,
            },
            _ => MemorySample { used, limit: total },
        })
    }
}

/// A probe the caller sets by hand: for tests, or to feed readings from
/// elsewhere (a device's own memory, say).
///
/// ```
/// use accelpool::{ManualProbe, MemoryProbe};
/// let p = ManualProbe::new(1 << 30);
/// p.set_fraction(0.95);
/// assert!((p.sample().unwrap().fraction() - 0.95).abs() < 1e-9);
/// ```
#[derive(Debug, Clone)]
pub struct ManualProbe(Arc<Mutex<MemorySample>>);

impl ManualProbe {
    /// A probe with the given limit and nothing used.
    pub fn new(limit: u64) -> Self {
        Self(Arc::new(Mutex::new(MemorySample { used: 0, limit })))
    }

    /// Sets bytes in use.
    pub fn set_used(&self, used: u64) {
        self.0.lock().used = used;
    }

    /// Sets use as a fraction of the limit.
    pub fn set_fraction(&self, f: f64) {
        let mut s = self.0.lock();
        s.used = (s.limit as f64 * f) as u64;
    }
}

impl MemoryProbe for ManualProbe {
    fn sample(&self) -> Result<MemorySample, String> {
        Ok(*self.0.lock())
    }
}

/// Memory pressure as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PressureLevel {
    /// Below the high watermark (or back below the low one).
    Normal,
    /// Above the high watermark, not yet back below the low one.
    High,
}

/// What the supervisor did on a pressure transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PressureAction {
    /// Workers parked (sessions dropped), per group, lowest priority first.
    Parked(Vec<(String, usize)>),
    /// Workers woken (sessions rebuilt), per group.
    Woken(Vec<(String, usize)>),
}

/// One pressure transition, handed to the pool's pressure callback.
#[derive(Debug, Clone, Serialize)]
pub struct PressureEvent {
    /// The level entered.
    pub level: PressureLevel,
    /// The reading that caused it.
    pub sample: MemorySample,
    /// What was done.
    pub action: PressureAction,
}
