//! Load scaling, run by the supervisor at every health check: a group with
//! `scaling.enabled` wakes one worker parked for idleness when its queued
//! requests wait longer than `queue_wait_target`, and parks one worker idle
//! longer than `idle_timeout`, always between `min_workers` and `workers`
//! (which never exceeds the cores available). One step per group per check,
//! so it moves smoothly. Workers parked by memory pressure are left alone.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::pool::Shared;
use crate::worker::PARK_IDLE;

pub(crate) fn tick<I, O>(shared: &Shared<I, O>, now: u64, pressure_high: bool) {
    for g in &shared.groups {
        let cfg = &g.config.scaling;
        if !cfg.enabled {
            continue;
        }
        let workers = g.workers.lock();
        let active: Vec<_> = workers.iter().filter(|w| w.shared.is_active()).collect();
        let queued = g.levels.depth().iter().sum::<usize>();
        let slowest_wait = active
            .iter()
            .map(|w| w.shared.queue_wait_ewma.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let target = u64::try_from(cfg.queue_wait_target.as_nanos()).unwrap_or(u64::MAX);
        if queued > 0 && slowest_wait > target && !pressure_high {
            // Scale up: wake one worker parked only for idleness.
            if let Some(w) = workers
                .iter()
                .find(|w| w.shared.park.load(Ordering::Acquire) == PARK_IDLE)
            {
                w.shared.park.fetch_and(!PARK_IDLE, Ordering::AcqRel);
                w.wake();
                log::info!(
                    "group `{}`: queue wait {} us over target; worker {} woken",
                    g.name,
                    slowest_wait / 1000,
                    w.shared.index
                );
            }
            continue;
        }
        if active.len() <= g.config.min_workers {
            continue;
        }
        let idle = u64::try_from(cfg.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
        let idle_worker = active.iter().rev().find(|w| {
            w.shared.busy_since.load(Ordering::Acquire) == 0
                && now.saturating_sub(w.shared.heartbeat.load(Ordering::Relaxed)) > idle
        });
        if let Some(w) = idle_worker {
            w.shared.park.fetch_or(PARK_IDLE, Ordering::AcqRel);
            w.wake();
            log::info!(
                "group `{}`: worker {} idle past {:?}; parked",
                g.name,
                w.shared.index,
                cfg.idle_timeout
            );
        }
    }
}
