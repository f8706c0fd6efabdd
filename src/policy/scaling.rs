//! The load-scaling decision, taken per group at every health check: wake
//! one worker parked for idleness when queued requests wait longer than
//! `queue_wait_target`, or park one worker idle longer than `idle_timeout`,
//! always between `min_workers` and `workers`. One step per group per
//! check, so it moves smoothly. The runtime picks the worker and acts
//! (`exec::scaling`).

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::config::ScalingConfig;

/// What the scaler reads of one group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Requests queued now.
    pub(crate) queued: usize,
    /// The longest average queue wait among the running workers.
    pub(crate) slowest_wait: Duration,
    /// Workers running (not parked).
    pub(crate) active: usize,
    /// The group's `min_workers`.
    pub(crate) min_workers: usize,
    /// Memory pressure is high: never wake a worker then.
    pub(crate) pressure_high: bool,
}

/// One step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Wake one worker parked for idleness.
    Wake,
    /// Park one worker idle longer than `idle_timeout`, if there is one.
    ParkIdle,
    /// Nothing.
    Hold,
}

pub(crate) fn decide(cfg: &ScalingConfig, load: Load) -> Step {
    if !cfg.enabled {
        return Step::Hold;
    }
    if load.queued > 0 && load.slowest_wait > cfg.queue_wait_target && !load.pressure_high {
        return Step::Wake;
    }
    if load.active > load.min_workers {
        Step::ParkIdle
    } else {
        Step::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Never below `min_workers`, never a wake under memory pressure or
        /// without queued work waiting past the target.
        #[test]
        fn steps_stay_within_bounds(
            queued in 0usize..10,
            wait_us in 0u64..2_000,
            active in 0usize..8,
            min_workers in 0usize..8,
            pressure_high in any::<bool>(),
        ) {
            let cfg = ScalingConfig { enabled: true, ..ScalingConfig::default() };
            let load = Load {
                queued,
                slowest_wait: Duration::from_micros(wait_us),
                active,
                min_workers,
                pressure_high,
            };
            match decide(&cfg, load) {
                Step::Wake => {
                    prop_assert!(!pressure_high && queued > 0);
                    prop_assert!(load.slowest_wait > cfg.queue_wait_target);
                }
                Step::ParkIdle => prop_assert!(active > min_workers),
                Step::Hold => {}
            }
            let off = ScalingConfig { enabled: false, ..cfg };
            prop_assert_eq!(decide(&off, load), Step::Hold);
        }
    }
}
