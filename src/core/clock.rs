//! Time, injectable: breakers and stuck-call detection read a [`Clock`], so
//! tests drive them with a [`ManualClock`] instead of sleeping.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// About a century: the furthest ahead any deadline is set.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, saturating: a duration too large for an [`Instant`] (such as
/// `Duration::MAX`) gives an instant about a century ahead, which no wait
/// reaches. Every "now plus a caller's duration" in the crate goes through
/// here or [`checked_deadline`], so no duration can make it panic.
pub(crate) fn saturating_add(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(FAR)).unwrap_or(t)
}

/// `now + d`, or `None` when `d` is so large that it means "never" (more
/// than about a century, or past what an [`Instant`] can hold).
pub(crate) fn checked_deadline(d: Duration) -> Option<Instant> {
    if d > FAR {
        return None;
    }
    Instant::now().checked_add(d)
}

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;

    /// True only for [`SystemClock`]: lets the runtime reuse instants it
    /// read itself instead of asking the clock again.
    fn is_system(&self) -> bool {
        false
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn is_system(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to.
///
/// ```
/// use accelpool::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl ManualClock {
    /// Starts at the real now.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    /// Moves the clock forward (saturating: a huge `d` moves it about a
    /// century).
    pub fn advance(&self, d: Duration) {
        let mut now = self.0.lock();
        *now = saturating_add(*now, d);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock()
    }
}

/// A pool's clock as nanoseconds since the pool started: the form its
/// heartbeats and busy marks are stored in (one `u64` each).
#[derive(Clone)]
pub(crate) struct Timebase {
    clock: Arc<dyn Clock>,
    epoch: Instant,
    /// True when `clock` is the real clock.
    system: bool,
}

impl Timebase {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            epoch: clock.now(),
            system: clock.is_system(),
            clock,
        }
    }

    /// The clock's nanoseconds since the epoch (never 0, which means idle
    /// where it is stored).
    pub(crate) fn nanos(&self) -> u64 {
        self.since_epoch(self.clock.now())
    }

    /// Like [`Timebase::nanos`], given the real instant the caller has just
    /// read: with the system clock that instant is used as is (no second
    /// read on the worker's hot path).
    #[inline]
    pub(crate) fn nanos_at(&self, real_now: Instant) -> u64 {
        if self.system {
            self.since_epoch(real_now)
        } else {
            self.nanos()
        }
    }

    #[inline]
    fn since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}
