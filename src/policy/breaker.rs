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
            // A probe of an earlier spell, ending once the breaker moved
            // on: an ordinary success.
            self.consecutive.store(0, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ManualClock, SessionError};
    use proptest::prelude::*;

    /// One thing that can happen to a breaker.
    #[derive(Debug, Clone)]
    enum Op {
        /// A request is offered.
        Admit,
        /// The oldest admitted request succeeds, fails, or ends telling
        /// nothing (expired, cancelled).
        Success,
        Failure,
        Release,
        /// Time passes (milliseconds).
        Advance(u64),
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Admit),
            4 => Just(Op::Success),
            4 => Just(Op::Failure),
            1 => Just(Op::Release),
            2 => (1u64..1_500).prop_map(Op::Advance),
            1 => Just(Op::Reset),
        ]
    }

    fn config() -> impl Strategy<Value = BreakerConfig> {
        (1u32..6, 1u32..4, 1u64..500, 1.0f64..4.0, 0u64..2_000).prop_map(
            |(failure_threshold, half_open_max_calls, recovery_ms, backoff_multiplier, extra)| {
                BreakerConfig {
                    failure_threshold,
                    recovery_timeout: Duration::from_millis(recovery_ms),
                    backoff_multiplier,
                    max_backoff: Duration::from_millis(recovery_ms + extra),
                    half_open_max_calls,
                    history: 1_000,
                }
            },
        )
    }

    fn record() -> FailureRecord {
        FailureRecord {
            request: 1,
            group: "g".into(),
            worker: 0,
            error: SessionError::transient("injected"),
            at: SystemTime::now(),
        }
    }

    const ALLOWED: [(BreakerState, BreakerState); 5] = [
        (BreakerState::Closed, BreakerState::Open),
        (BreakerState::Open, BreakerState::HalfOpen),
        (BreakerState::HalfOpen, BreakerState::Closed),
        (BreakerState::HalfOpen, BreakerState::Open),
        // A manual reset closes from anywhere.
        (BreakerState::Open, BreakerState::Closed),
    ];

    proptest! {
        /// Any sequence of admissions, outcomes, time and resets keeps the
        /// documented machine: closed admits all; open admits nothing until
        /// its cooldown passes; half-open admits exactly its probes, which
        /// alone decide; `failure_threshold` consecutive failures open it;
        /// the cooldown stays within `recovery_timeout..=max_backoff`.
        #[test]
        fn any_sequence_keeps_the_documented_transitions(
            cfg in config(),
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let clock = ManualClock::new();
            let b = CircuitBreaker::new(cfg.clone(), Arc::new(clock.clone()));
            // Admitted and not yet ended, oldest first: is it a probe?
            let mut in_flight: std::collections::VecDeque<bool> = Default::default();
            let mut streak = 0u32;
            let mut open_until = None;
            // Probes admitted in this half-open spell, less those released.
            let mut spell_probes = 0u32;
            for op in ops {
                let before = b.state();
                match op {
                    Op::Admit => {
                        let a = b.admit();
                        match before {
                            BreakerState::Closed => prop_assert_eq!(a, Admission::Yes),
                            BreakerState::Open => {
                                let until = open_until.expect("opened at a known time");
                                if clock.now() < until {
                                    prop_assert_eq!(a, Admission::No, "open before its cooldown");
                                } else {
                                    // Cooldown over: the first offer is a probe.
                                    prop_assert_eq!(a, Admission::Probe);
                                    prop_assert_eq!(b.state(), BreakerState::HalfOpen);
                                }
                            }
                            BreakerState::HalfOpen => {
                                let expected = if spell_probes < cfg.half_open_max_calls {
                                    Admission::Probe
                                } else {
                                    Admission::No
                                };
                                prop_assert_eq!(a, expected, "half-open admits exactly its probes");
                            }
                        }
                        if a == Admission::Probe {
                            if before == BreakerState::Open {
                                spell_probes = 0;
                            }
                            spell_probes += 1;
                        }
                        if a != Admission::No {
                            in_flight.push_back(a == Admission::Probe);
                        }
                    }
                    Op::Success | Op::Failure | Op::Release => {
                        let Some(probe) = in_flight.pop_front() else { continue };
                        match op {
                            Op::Success => {
                                b.record_success(probe);
                                streak = 0;
                            }
                            Op::Failure => {
                                b.record_failure(probe, record());
                                if before == BreakerState::Closed {
                                    streak += 1;
                                    prop_assert_eq!(
                                        b.state() == BreakerState::Open,
                                        streak >= cfg.failure_threshold,
                                        "opens on the threshold-th consecutive failure"
                                    );
                                }
                                if probe && before == BreakerState::HalfOpen {
                                    prop_assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
                                }
                                if before == BreakerState::HalfOpen && !probe {
                                    prop_assert_eq!(b.state(), BreakerState::HalfOpen, "only probes decide");
                                }
                            }
                            _ => {
                                b.release_probe(probe);
                                if probe && b.state() == BreakerState::HalfOpen {
                                    spell_probes = spell_probes.saturating_sub(1);
                                }
                            }
                        }
                    }
                    Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                    Op::Reset => {
                        b.reset();
                        prop_assert_eq!(b.state(), BreakerState::Closed);
                        streak = 0;
                        // Requests admitted before the reset are no probes now.
                        for p in in_flight.iter_mut() { *p = false; }
                    }
                }
                let after = b.state();
                if after != before {
                    if after == BreakerState::Open {
                        open_until = Some(b.inner.lock().open_until);
                    }
                    // A new closed spell counts its failures afresh.
                    streak = 0;
                }
                let cooldown = Duration::from_secs_f64(b.stats().cooldown_ms / 1e3);
                prop_assert!(cooldown >= cfg.recovery_timeout.saturating_sub(Duration::from_micros(1)));
                prop_assert!(cooldown <= cfg.max_backoff + Duration::from_micros(1));
            }
            for t in b.stats().transitions {
                prop_assert!(ALLOWED.contains(&(t.from, t.to)), "undocumented transition {:?}", t);
            }
        }
    }
}
