//! Sliding windows of call outcomes, for the circuit breaker: the last N
//! calls (a ring of outcome bits), or the calls of the last stretch of time
//! (a fixed number of buckets). Both hold bounded memory and do O(1) work
//! per call.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::config::TIME_WINDOW_BUCKETS;
use crate::core::WindowStats;

/// One call's outcome as the breaker counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

impl Call {
    fn bits(self) -> u8 {
        u8::from(self.failed) | u8::from(self.slow) << 1
    }
}

/// Running totals over the calls a window holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    calls: u64,
    failed: u64,
    slow: u64,
}

impl Totals {
    fn add(&mut self, c: Call) {
        self.calls += 1;
        self.failed += u64::from(c.failed);
        self.slow += u64::from(c.slow);
    }

    fn remove(&mut self, other: &Totals) {
        self.calls -= other.calls;
        self.failed -= other.failed;
        self.slow -= other.slow;
    }

    pub(crate) fn stats(&self) -> WindowStats {
        let share = |n: u64| {
            if self.calls == 0 {
                0.0
            } else {
                n as f64 / self.calls as f64
            }
        };
        WindowStats {
            calls: self.calls,
            failure_rate: share(self.failed),
            slow_call_rate: share(self.slow),
        }
    }
}

/// A sliding window of calls.
#[derive(Debug)]
pub(crate) enum Window {
    /// The last `ring.len()` calls.
    Count {
        ring: Vec<u8>,
        next: usize,
        full: bool,
        totals: Totals,
    },
    /// The calls of the last `bucket * TIME_WINDOW_BUCKETS`.
    Time {
        start: Instant,
        bucket: Duration,
        /// Per bucket: its epoch (bucket number since `start`) and totals.
        buckets: Vec<(u64, Totals)>,
        totals: Totals,
    },
}

impl Window {
    /// A window over the last `calls` calls.
    pub(crate) fn count(calls: u32) -> Self {
        Window::Count {
            ring: vec![0; calls.max(1) as usize],
            next: 0,
            full: false,
            totals: Totals::default(),
        }
    }

    /// A window over the calls of the last `span`, from `now`.
    pub(crate) fn time(span: Duration, now: Instant) -> Self {
        let bucket = (span / TIME_WINDOW_BUCKETS).max(Duration::from_nanos(1));
        Window::Time {
            start: now,
            bucket,
            buckets: vec![(0, Totals::default()); TIME_WINDOW_BUCKETS as usize],
            totals: Totals::default(),
        }
    }

    /// Counts one call ending at `now`.
    pub(crate) fn record(&mut self, call: Call, now: Instant) {
        match self {
            Window::Count {
                ring,
                next,
                full,
                totals,
            } => {
                if *full {
                    let old = ring[*next];
                    totals.remove(&Totals {
                        calls: 1,
                        failed: u64::from(old & 1),
                        slow: u64::from(old >> 1),
                    });
                }
                ring[*next] = call.bits();
                totals.add(call);
                *next += 1;
                if *next == ring.len() {
                    *next = 0;
                    *full = true;
                }
            }
            Window::Time { .. } => {
                let epoch = self.forget_old(now);
                let Window::Time {
                    buckets, totals, ..
                } = self
                else {
                    unreachable!("matched above")
                };
                let slot = &mut buckets[(epoch % u64::from(TIME_WINDOW_BUCKETS)) as usize];
                if slot.0 != epoch {
                    totals.remove(&slot.1);
                    *slot = (epoch, Totals::default());
                }
                slot.1.add(call);
                totals.add(call);
            }
        }
    }

    /// Drops the buckets that fell out of a time window; returns the
    /// current epoch (0 for a count window).
    fn forget_old(&mut self, now: Instant) -> u64 {
        let Window::Time {
            start,
            bucket,
            buckets,
            totals,
        } = self
        else {
            return 0;
        };
        let epoch =
            u64::try_from(now.saturating_duration_since(*start).as_nanos() / bucket.as_nanos())
                .unwrap_or(u64::MAX);
        for slot in buckets.iter_mut() {
            if slot.1.calls > 0 && slot.0 + u64::from(TIME_WINDOW_BUCKETS) <= epoch {
                totals.remove(&slot.1);
                slot.1 = Totals::default();
            }
        }
        epoch
    }

    /// The calls held at `now`.
    pub(crate) fn stats(&mut self, now: Instant) -> WindowStats {
        self.forget_old(now);
        match self {
            Window::Count { totals, .. } | Window::Time { totals, .. } => totals.stats(),
        }
    }

    /// Forgets every call.
    pub(crate) fn clear(&mut self, now: Instant) {
        *self = match self {
            Window::Count { ring, .. } => Window::count(ring.len() as u32),
            Window::Time { bucket, .. } => Window::time(*bucket * TIME_WINDOW_BUCKETS, now),
        };
    }
}

/// The outcomes of a half-open breaker's probes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Probes {
    /// Admitted and not released.
    pub(crate) admitted: u32,
    totals: Totals,
}

impl Probes {
    pub(crate) fn record(&mut self, call: Call) {
        self.totals.add(call);
    }

    /// Probes that ended with an outcome.
    pub(crate) fn done(&self) -> u64 {
        self.totals.calls
    }

    pub(crate) fn failed(&self) -> u64 {
        self.totals.failed
    }

    pub(crate) fn slow(&self) -> u64 {
        self.totals.slow
    }

    pub(crate) fn stats(&self) -> WindowStats {
        self.totals.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A count window holds exactly the last N calls.
        #[test]
        fn a_count_window_holds_the_last_calls(
            size in 1u32..50,
            calls in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..300),
        ) {
            let now = Instant::now();
            let mut w = Window::count(size);
            for &(failed, slow) in &calls {
                w.record(Call { failed, slow }, now);
            }
            let last: Vec<_> = calls.iter().rev().take(size as usize).collect();
            let s = w.stats(now);
            prop_assert_eq!(s.calls, last.len() as u64);
            let failed = last.iter().filter(|c| c.0).count() as f64;
            let slow = last.iter().filter(|c| c.1).count() as f64;
            if !last.is_empty() {
                prop_assert!((s.failure_rate - failed / last.len() as f64).abs() < 1e-9);
                prop_assert!((s.slow_call_rate - slow / last.len() as f64).abs() < 1e-9);
            }
        }

        /// A time window forgets the calls older than its span, and keeps
        /// the ones within the span less one bucket.
        #[test]
        fn a_time_window_forgets_old_calls(
            steps in proptest::collection::vec((0u64..300, any::<bool>()), 1..200),
        ) {
            let span = Duration::from_millis(1000);
            let bucket = span / TIME_WINDOW_BUCKETS;
            let t0 = Instant::now();
            let mut w = Window::time(span, t0);
            let mut now = t0;
            let mut seen: Vec<(Instant, bool)> = Vec::new();
            for (advance_ms, failed) in steps {
                now += Duration::from_millis(advance_ms);
                w.record(Call { failed, slow: false }, now);
                seen.push((now, failed));
                let s = w.stats(now);
                let newer = |age: Duration| seen.iter().filter(|(t, _)| now - *t < age).count() as u64;
                // Everything younger than span - bucket is held; nothing
                // older than the span is.
                prop_assert!(s.calls >= newer(span - bucket), "{} < {}", s.calls, newer(span - bucket));
                prop_assert!(s.calls <= newer(span + Duration::from_nanos(1)));
            }
            // A whole span later, the window is empty.
            now += span + bucket;
            prop_assert_eq!(w.stats(now).calls, 0);
        }
    }
}
