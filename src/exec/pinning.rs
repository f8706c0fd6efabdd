//! Pinning workers to cores.
//!
//! Core ids are read once, on the thread that builds the pool, before any
//! worker is pinned: a pinned thread would see only its own core. Workers are
//! handed cores round-robin across all groups (over the pool's `cores` when
//! its configuration lists them: a runtime's model gets its own), so two workers share a core
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
    /// The cores this process may run on, or of them those `only` lists
    /// (in its order). A listed core the process may not run on is an
    /// error naming it and the cores it may use.
    pub(crate) fn new(only: Option<&[usize]>) -> Result<Self, String> {
        let available = core_affinity::get_core_ids().unwrap_or_default();
        let Some(only) = only else {
            return Ok(Self { cores: available });
        };
        let mut cores = Vec::with_capacity(only.len());
        for &id in only {
            match available.iter().find(|c| c.id == id) {
                Some(&c) => cores.push(c),
                None => {
                    let ids: Vec<String> = available.iter().map(|c| c.id.to_string()).collect();
                    return Err(format!(
                        "core {id} is not one this process may run on (it may use {})",
                        if ids.is_empty() {
                            "none that the system reports".to_owned()
                        } else {
                            ids.join(", ")
                        }
                    ));
                }
            }
        }
        Ok(Self { cores })
    }

    /// The ids of the cores this process may run on.
    pub(crate) fn available_ids() -> Vec<usize> {
        core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect()
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
