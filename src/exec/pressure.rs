//! The memory-pressure controller, run by the supervisor every
//! `memory.sample_interval`, and the admission floor it sets.
//!
//! Each reading goes through the hysteresis (`policy::pressure`). Entering
//! `High` parks workers down to each group's `min_workers`, lowest-priority
//! groups first (a parked worker drops its session), and, if
//! `refuse_below` is set, refuses new requests below that priority.
//! Entering `Normal` wakes the workers it parked (each rebuilds its session)
//! and admits everything again. Every transition is reported to the pool's
//! pressure callback.
//!
//! No queued request is lost: a group keeps at least one running worker,
//! which goes on draining its queues.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::dispatch::Dispatch;
use super::park::Reason;
use crate::config::MemoryConfig;
use crate::core::{
    Counter, MemoryProbe, MemorySample, MemoryStats, PressureAction, PressureEvent, PressureLevel,
    Priority,
};
use crate::policy::pressure::Hysteresis;

/// The callback a pool calls on every pressure transition.
pub(crate) type PressureHook = Box<dyn Fn(&PressureEvent) + Send + Sync>;

/// A generation's view of memory pressure: what admission reads and the
/// stats report.
#[derive(Debug, Default)]
pub(crate) struct PressureState {
    /// The lowest priority admitted, stored as `priority + 1` (0: all).
    floor: AtomicU8,
    high: AtomicBool,
    last_sample: Mutex<Option<MemorySample>>,
    transitions: Counter,
}

impl PressureState {
    /// The lowest priority admitted now; `None` admits every priority.
    #[inline]
    pub(crate) fn floor(&self) -> Option<Priority> {
        match self.floor.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Priority::ALL[Priority::COUNT - usize::from(n)]),
        }
    }

    /// True if a request of priority `p` may be admitted now.
    #[inline]
    pub(crate) fn admits(&self, p: Priority) -> bool {
        self.floor().is_none_or(|floor| p >= floor)
    }

    fn set_floor(&self, floor: Option<Priority>) {
        // Priorities count down from `Urgent` (index 0); store so that a
        // higher priority is a larger number.
        let v = floor.map_or(0, |p| (Priority::COUNT - p.index()) as u8);
        self.floor.store(v, Ordering::Release);
    }

    /// True while memory is above the high watermark.
    pub(crate) fn is_high(&self) -> bool {
        self.high.load(Ordering::Acquire)
    }

    /// The memory part of the pool's stats.
    pub(crate) fn stats(&self, parked_workers: usize) -> MemoryStats {
        MemoryStats {
            level: if self.is_high() {
                PressureLevel::High
            } else {
                PressureLevel::Normal
            },
            last_sample: *self.last_sample.lock(),
            parked_workers,
            transitions: self.transitions.get(),
            refusing_below: self.floor(),
        }
    }
}

/// The controller, run on the supervisor's thread.
pub(crate) struct Controller {
    config: MemoryConfig,
    probe: Arc<dyn MemoryProbe>,
    hook: Option<Arc<PressureHook>>,
    state: Arc<PressureState>,
    hysteresis: Hysteresis,
}

impl Controller {
    pub(crate) fn new(
        config: MemoryConfig,
        probe: Arc<dyn MemoryProbe>,
        hook: Option<Arc<PressureHook>>,
        state: Arc<PressureState>,
    ) -> Self {
        Self {
            config,
            probe,
            hook,
            state,
            hysteresis: Hysteresis::new(),
        }
    }

    pub(crate) fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// True while memory is above the high watermark.
    pub(crate) fn is_high(&self) -> bool {
        self.state.is_high()
    }

    /// Takes one sample and acts on a transition.
    pub(crate) fn tick<I, O>(&mut self, groups: &Dispatch<I, O>) {
        let sample = match self.probe.sample() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("memory probe failed: {e}");
                return;
            }
        };
        if let Some(next) = self.hysteresis.observe(sample.fraction(), &self.config) {
            self.transition(groups, next, sample);
        }
        // Published last: whoever sees this reading in the stats also sees
        // what it caused.
        *self.state.last_sample.lock() = Some(sample);
    }

    fn transition<I, O>(&self, groups: &Dispatch<I, O>, next: PressureLevel, sample: MemorySample) {
        let high = next == PressureLevel::High;
        self.state.high.store(high, Ordering::Release);
        let action = if high {
            if let Some(p) = self.config.refuse_below {
                self.state.set_floor(Some(p));
            }
            PressureAction::Parked(park_to_minimum(groups))
        } else {
            self.state.set_floor(None);
            PressureAction::Woken(wake_all(groups))
        };
        let event = PressureEvent {
            level: next,
            sample,
            action,
        };
        tracing::warn!(
            "memory pressure {:?} at {:.1}% of {} MiB: {:?}",
            event.level,
            event.sample.fraction() * 100.0,
            event.sample.limit >> 20,
            event.action
        );
        self.state.transitions.inc();
        if let Some(hook) = &self.hook {
            hook(&event);
        }
    }
}

/// Parks workers down to each group's minimum, lowest-priority groups first.
fn park_to_minimum<I, O>(groups: &Dispatch<I, O>) -> Vec<(String, usize)> {
    let mut parked = Vec::new();
    // Groups are kept highest priority first: walk them from the end.
    for g in groups.groups().iter().rev() {
        let workers = g.workers();
        let mut active = workers.iter().filter(|w| w.state().is_active()).count();
        let mut n = 0;
        for w in workers.iter().rev() {
            if active <= g.config().min_workers {
                break;
            }
            if w.state().is_active() {
                w.state().park_reasons().add(Reason::Pressure);
                w.wake();
                active -= 1;
                n += 1;
            }
        }
        if n > 0 {
            parked.push((g.name().to_string(), n));
        }
    }
    parked
}

/// Wakes every worker parked by pressure.
fn wake_all<I, O>(groups: &Dispatch<I, O>) -> Vec<(String, usize)> {
    let mut woken = Vec::new();
    for g in groups.groups() {
        let n = g
            .workers()
            .iter()
            .filter(|w| {
                let was = w.state().park_reasons().remove(Reason::Pressure);
                if was {
                    w.wake();
                }
                was
            })
            .count();
        if n > 0 {
            woken.push((g.name().to_string(), n));
        }
    }
    woken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_admits_its_priority_and_above() {
        let s = PressureState::default();
        assert!(Priority::ALL.iter().all(|&p| s.admits(p)));
        for floor in Priority::ALL {
            s.set_floor(Some(floor));
            assert_eq!(s.floor(), Some(floor));
            for p in Priority::ALL {
                assert_eq!(s.admits(p), p >= floor, "{p} with floor {floor}");
            }
        }
        s.set_floor(None);
        assert_eq!(s.floor(), None);
    }
}
