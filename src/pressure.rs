//! The memory-pressure controller, run by the supervisor every
//! `memory.sample_interval`.
//!
//! Two levels with hysteresis: `Normal` becomes `High` at or above the high
//! watermark, and `High` becomes `Normal` only at or below the low one, so a
//! reading that wavers between them changes nothing. Entering `High` parks
//! workers down to each group's `min_workers`, lowest-priority groups first
//! (a parked worker drops its session), and, if `refuse_below` is set,
//! refuses new requests below that priority. Entering `Normal` wakes the
//! workers it parked (each rebuilds its session) and admits everything
//! again. Every transition is reported to the pool's pressure callback.
//!
//! No queued request is lost: a group keeps at least one running worker,
//! which goes on draining its queues.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::memory::{MemorySample, PressureAction, PressureEvent, PressureLevel};
use crate::pool::Shared;
use crate::worker::PARK_PRESSURE;

/// The controller's state between samples.
pub(crate) struct Pressure {
    level: PressureLevel,
}

impl Pressure {
    pub(crate) fn new() -> Self {
        Self {
            level: PressureLevel::Normal,
        }
    }

    /// Takes one sample and acts on a transition.
    pub(crate) fn tick<I: Send + Sync + 'static, O: Send + 'static>(
        &mut self,
        shared: &Arc<Shared<I, O>>,
    ) {
        let cfg = &shared.memory;
        let sample = match shared.probe.sample() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("memory probe failed: {e}");
                return;
            }
        };
        let f = sample.fraction();
        let next = match self.level {
            PressureLevel::Normal if f >= cfg.high_watermark => PressureLevel::High,
            PressureLevel::High if f <= cfg.low_watermark => PressureLevel::Normal,
            same => same,
        };
        if next != self.level {
            self.transition(shared, next, sample);
        }
        // Published last: whoever sees this reading in the stats also sees
        // what it caused.
        *shared.last_sample.lock() = Some(sample);
    }

    fn transition<I: Send + Sync + 'static, O: Send + 'static>(
        &mut self,
        shared: &Arc<Shared<I, O>>,
        next: PressureLevel,
        sample: MemorySample,
    ) {
        let cfg = &shared.memory;
        self.level = next;
        shared
            .pressure_high
            .store(next == PressureLevel::High, Ordering::Release);
        let action = match next {
            PressureLevel::High => {
                if let Some(p) = cfg.refuse_below {
                    shared.admit_floor.store(p as u8 + 1, Ordering::Release);
                }
                PressureAction::Parked(park_to_minimum(shared))
            }
            PressureLevel::Normal => {
                shared.admit_floor.store(0, Ordering::Release);
                PressureAction::Woken(wake_all(shared))
            }
        };
        report(
            shared,
            PressureEvent {
                level: next,
                sample,
                action,
            },
        );
    }
}

fn report<I, O>(shared: &Shared<I, O>, event: PressureEvent) {
    log::warn!(
        "memory pressure {:?} at {:.1}% of {} MiB: {:?}",
        event.level,
        event.sample.fraction() * 100.0,
        event.sample.limit >> 20,
        event.action
    );
    shared.pressure_events.inc();
    if let Some(hook) = &shared.on_pressure {
        hook(&event);
    }
}

/// Parks workers down to each group's minimum, lowest-priority groups first.
fn park_to_minimum<I, O>(shared: &Shared<I, O>) -> Vec<(String, usize)> {
    let mut order: Vec<usize> = (0..shared.groups.len()).collect();
    // Groups are kept highest priority first: walk them from the end.
    order.reverse();
    let mut parked = Vec::new();
    for gi in order {
        let g = &shared.groups[gi];
        let workers = g.workers.lock();
        let mut active = workers.iter().filter(|w| w.shared.is_active()).count();
        let mut n = 0;
        for w in workers.iter().rev() {
            if active <= g.config.min_workers {
                break;
            }
            if w.shared.is_active() {
                w.shared.park.fetch_or(PARK_PRESSURE, Ordering::AcqRel);
                w.wake();
                active -= 1;
                n += 1;
            }
        }
        if n > 0 {
            parked.push((g.name.to_string(), n));
        }
    }
    parked
}

/// Wakes every worker parked by pressure.
fn wake_all<I, O>(shared: &Shared<I, O>) -> Vec<(String, usize)> {
    let mut woken = Vec::new();
    for g in &shared.groups {
        let n = g
            .workers
            .lock()
            .iter()
            .filter(|w| {
                let before = w.shared.park.fetch_and(!PARK_PRESSURE, Ordering::AcqRel);
                let was = before & PARK_PRESSURE != 0;
                if was {
                    w.wake();
                }
                was
            })
            .count();
        if n > 0 {
            woken.push((g.name.to_string(), n));
        }
    }
    woken
}

/// The memory part of the pool's stats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryStats {
    /// The current level.
    pub level: PressureLevel,
    /// The last reading, if any was taken.
    pub last_sample: Option<MemorySample>,
    /// Workers parked now (by pressure or load scaling).
    pub parked_workers: usize,
    /// Pressure transitions so far.
    pub transitions: u64,
    /// Requests below this priority are refused now.
    pub refusing_below: Option<crate::Priority>,
}
