//! Pinning workers to cores.
//!
//! Core ids are read once, on the thread that builds the pool, before any
//! worker is pinned: a pinned thread would see only its own core. Workers are
//! handed cores round-robin across all groups, so two workers share a core
//! only when there are more workers than cores: the configured count is
//! honoured, never capped (a worker driving an NPU or a remote device mostly
//! waits). A failed pin is reported in the worker's stats and the worker runs
//! unpinned.

#![forbid(unsafe_code)]

use core_affinity::CoreId;

/// The cores workers are placed on, read once.
#[derive(Debug, Clone)]
pub(crate) struct CorePlan {
    cores: Vec<CoreId>,
}

impl CorePlan {
    /// Reads the cores this process may run on.
    pub(crate) fn detect() -> Self {
        Self {
            cores: core_affinity::get_core_ids().unwrap_or_default(),
        }
    }

    /// The core for the `seq`-th worker of the pool, if any core is known.
    pub(crate) fn core_for(&self, seq: usize) -> Option<CoreId> {
        if self.cores.is_empty() {
            None
        } else {
            Some(self.cores[seq % self.cores.len()])
        }
    }
}

/// The cores this process may use: its parallelism, which honours the
/// affinity mask and cgroup CPU quotas. Reported, never used as a cap.
pub(crate) fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling thread; true on success.
pub(crate) fn pin_current(core: CoreId) -> bool {
    core_affinity::set_for_current(core)
}
