//! The circuit breaker of one device group.
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ------------------------------------------> Open
//!     ^                                                 |  cooldown passes
//!     | half_open_max_calls probes succeed              v
//!     +-------------------------------------------- HalfOpen
//!                   any probe fails: Open again, cooldown x backoff_multiplier
//! ```
//!
//! The cooldown starts at `recovery_timeout` and grows by
//! `backoff_multiplier` after each failed recovery, up to `max_backoff`; a
//! successful recovery (or a manual reset) brings it back to
//! `recovery_timeout`.
//!
//! The router asks [`CircuitBreaker::admit`] for every request it offers the
//! group. In `Closed` that is one atomic load; the lock is taken only on
//! transitions and in the rare states. In `HalfOpen` at most
//! `half_open_max_calls` requests are admitted, as probes; only probe
//! outcomes decide whether the breaker closes or opens again.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::config::BreakerConfig;
use crate::core::{BreakerState, BreakerStats, Clock, Counter, FailureRecord, Transition};

/// The router's answer from a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted.
    Yes,
    /// Admitted as a half-open probe: its outcome decides the breaker.
    Probe,
    /// Turned away.
    No,
}

struct Inner {
    open_until: Instant,
    cooldown: Duration,
    probes_admitted: u32,
    probe_successes: u32,
    transitions: VecDeque<Transition>,
    failures: VecDeque<FailureRecord>,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// A circuit breaker (see the module docs for the state machine).
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    state: AtomicU8,
    consecutive: AtomicU32,
    rejected: Counter,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            inner: Mutex::new(Inner {
                open_until: now,
                cooldown: config.recovery_timeout,
                probes_admitted: 0,
                probe_successes: 0,
                transitions: VecDeque::new(),
                failures: VecDeque::new(),
            }),
            config,
            clock,
            state: AtomicU8::new(CLOSED),
            consecutive: AtomicU32::new(0),
            rejected: Default::default(),
        }
    }

    /// The current state (an open breaker whose cooldown has passed reports
    /// `Open` until the next [`admit`](Self::admit) moves it on).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether a request may go to the group now.
    #[inline]
    pub fn admit(&self) -> Admission {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Admission::Yes;
        }
        self.admit_slow()
    }

    #[cold]
    fn admit_slow(&self) -> Admission {
        let mut inner = self.inner.lock();
        let state = self.state.load(Ordering::Acquire);
        if state == OPEN {
            if self.clock.now() < inner.open_until {
                self.rejected.inc();
                return Admission::No;
            }
            self.move_to(&mut inner, HALF_OPEN, "cooldown passed".into());
            inner.probes_admitted = 0;
            inner.probe_successes = 0;
        }
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admission::Yes,
            _ if inner.probes_admitted < self.config.half_open_max_calls => {
                inner.probes_admitted += 1;
                Admission::Probe
            }
            _ => {
                self.rejected.inc();
                Admission::No
            }
        }
    }

    /// A request of the group succeeded.
    #[inline]
    pub fn record_success(&self, probe: bool) {
        if probe {
            self.probe_success();
        } else if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    #[cold]
    fn probe_success(&self) {
        let mut inner = self.inner.lock();
        if self.state.load(Ordering::Acquire) != HALF_OPEN {
            return;
        }
        inner.probe_successes += 1;
        if inner.probe_successes >= self.config.half_open_max_calls {
            inner.cooldown = self.config.recovery_timeout;
            self.consecutive.store(0, Ordering::Relaxed);
            let n = inner.probe_successes;
            self.move_to(&mut inner, CLOSED, format!("{n} probe(s) succeeded"));
        }
    }

    /// A probe ended without telling anything about the device (it expired,
    /// was cancelled, or was refused by its input): its slot goes back so a
    /// half-open breaker does not wait for an outcome that never comes.
    #[inline]
    pub fn release_probe(&self, probe: bool) {
        if probe {
            let mut inner = self.inner.lock();
            inner.probes_admitted = inner.probes_admitted.saturating_sub(1);
        }
    }

    /// A request of the group failed (an error or a panic in the session).
    #[cold]
    pub fn record_failure(&self, probe: bool, record: FailureRecord) {
        let mut inner = self.inner.lock();
        if inner.failures.len() >= self.config.history.max(1) {
            inner.failures.pop_front();
        }
        inner.failures.push_back(record);
        let state = self.state.load(Ordering::Acquire);
        if probe && state == HALF_OPEN {
            let grown = inner.cooldown.as_secs_f64() * self.config.backoff_multiplier;
            inner.cooldown =
                Duration::from_secs_f64(grown.min(self.config.max_backoff.as_secs_f64()));
            self.open(&mut inner, "a probe failed".into());
        } else if state == CLOSED {
            let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.config.failure_threshold {
                self.open(&mut inner, format!("{n} consecutive failures"));
            }
        }
    }

    fn open(&self, inner: &mut Inner, reason: String) {
        inner.open_until = self.clock.now() + inner.cooldown;
        self.consecutive.store(0, Ordering::Relaxed);
        let reason = format!("{reason}; cooldown {:?}", inner.cooldown);
        self.move_to(inner, OPEN, reason);
    }

    /// Closes the breaker by hand and resets its cooldown.
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        inner.cooldown = self.config.recovery_timeout;
        self.consecutive.store(0, Ordering::Relaxed);
        if self.state.load(Ordering::Acquire) != CLOSED {
            self.move_to(&mut inner, CLOSED, "manual reset".into());
        }
    }

    fn move_to(&self, inner: &mut Inner, to: u8, reason: String) {
        let from = BreakerState::from_u8(self.state.swap(to, Ordering::AcqRel));
        log::info!(
            "breaker {from:?} -> {:?}: {reason}",
            BreakerState::from_u8(to)
        );
        if inner.transitions.len() >= self.config.history.max(1) {
            inner.transitions.pop_front();
        }
        inner.transitions.push_back(Transition {
            from,
            to: BreakerState::from_u8(to),
            reason,
            at: SystemTime::now(),
        });
    }

    /// State, counters and recent history.
    pub fn stats(&self) -> BreakerStats {
        let inner = self.inner.lock();
        BreakerStats {
            state: self.state(),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            cooldown_ms: inner.cooldown.as_secs_f64() * 1e3,
            rejected: self.rejected.get(),
            transitions: inner.transitions.iter().cloned().collect(),
            recent_failures: inner.failures.iter().cloned().collect(),
        }
    }
}
