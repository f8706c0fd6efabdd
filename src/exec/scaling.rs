//! Load scaling, run by the supervisor at every health check: reads each
//! group's load, asks the policy (`policy::scaling`) for a step, and picks
//! the worker it applies to. Workers parked by memory pressure are left
//! alone.

#![forbid(unsafe_code)]

use std::time::Duration;

use super::dispatch::Dispatch;
use super::park::Reason;
use crate::policy::scaling::{decide, Load, Step};

/// One scaling step per group; `now` in clock nanoseconds.
pub(crate) fn tick<I, O>(groups: &Dispatch<I, O>, now: u64, pressure_high: bool) {
    for g in groups.groups() {
        let cfg = &g.config().scaling;
        if !cfg.enabled {
            continue;
        }
        let workers = g.workers();
        let active: Vec<_> = workers.iter().filter(|w| w.state().is_active()).collect();
        let slowest_wait = active
            .iter()
            .map(|w| w.state().queue_wait_ewma())
            .max()
            .unwrap_or(0);
        let load = Load {
            queued: g.queued(),
            slowest_wait: Duration::from_nanos(slowest_wait),
            active: active.len(),
            min_workers: g.config().min_workers,
            pressure_high,
        };
        match decide(cfg, load) {
            Step::Hold => {}
            Step::Wake => {
                // Wake one worker parked only for idleness.
                if let Some(w) = workers
                    .iter()
                    .find(|w| w.state().park_reasons().only(Reason::Idle))
                {
                    w.state().park_reasons().remove(Reason::Idle);
                    w.wake();
                    tracing::info!(
                        "group `{}`: queue wait {} us over target; worker {} woken",
                        g.name(),
                        slowest_wait / 1000,
                        w.state().index()
                    );
                }
            }
            Step::ParkIdle => {
                let idle = u64::try_from(cfg.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
                let idle_worker = active.iter().rev().find(|w| {
                    !w.state().is_busy() && now.saturating_sub(w.state().heartbeat()) > idle
                });
                if let Some(w) = idle_worker {
                    w.state().park_reasons().add(Reason::Idle);
                    w.wake();
                    tracing::info!(
                        "group `{}`: worker {} idle past {:?}; parked",
                        g.name(),
                        w.state().index(),
                        cfg.idle_timeout
                    );
                }
            }
        }
    }
}
