//! The circuit breaker of one device group.
//!
//! ```text
//!            failure rate over the window >= threshold
//!            (once it holds minimum_calls; or, in consecutive mode,
//!             failure_threshold failures in a row)
//!   Closed ------------------------------------------> Open
//!     ^                                                 |  cooldown passes
//!     | the probes' failure rate < threshold            v
//!     +-------------------------------------------- HalfOpen
//!                   the probes' failure rate >= threshold: Open again,
//!                   cooldown x backoff_multiplier
//! ```
//!
//! - **By rate, not by streak** (`BreakerConfig` explains the defaults): a
//!   closed breaker counts every call's outcome in a sliding window (the
//!   last N calls, or the last stretch of time) and opens only when the
//!   window holds `minimum_calls` and the share that failed, or the share
//!   that was slow, reaches its threshold. Which error kinds count is
//!   configured; a permanent error (bad input) or a cancel counts neither
//!   way.
//! - **Half-open that cannot be starved**: it admits `half_open_max_calls`
//!   probes, which the group's workers take before any queued work (the
//!   queues' front lane), and decides on their failure rate: it reopens as
//!   soon as enough probes failed that the rate must reach the threshold,
//!   and closes once every probe ended under it.
//! - **Cooldown**: starts at `recovery_timeout`, grows by
//!   `backoff_multiplier` after each failed recovery and after a reopening
//!   within `healthy_reset_after` of closing (a flapping device), up to
//!   `max_backoff`; a breaker that stays closed for `healthy_reset_after`
//!   (or a manual reset) brings it back to `recovery_timeout`.
//!
//! The router asks [`CircuitBreaker::admit`] for every request it offers the
//! group: in `Closed` that is one atomic load. Every outcome takes the
//! breaker's lock once, to count it in the window.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::window::{Call, Probes, Window};
use crate::config::{BreakerConfig, BreakerMode};
use crate::core::{
    BreakerState, BreakerStats, Clock, Counter, FailureRecord, Transition, WindowStats,
};

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
    window: Window,
    /// Failures in a row while closed (`mode: consecutive`).
    consecutive: u32,
    open_until: Instant,
    cooldown: Duration,
    /// When it last closed after a recovery (`None`: never opened, or reset).
    closed_at: Option<Instant>,
    probes: Probes,
    transitions: VecDeque<Transition>,
    /// Every transition since the breaker was made.
    transitions_total: u64,
    failures: VecDeque<FailureRecord>,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// A circuit breaker (see the module docs for the state machine).
///
/// ```
/// use accelpool::{Admission, BreakerConfig, BreakerState, CircuitBreaker, ManualClock};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let b = CircuitBreaker::new(
///     BreakerConfig { window: 10, minimum_calls: 10, ..BreakerConfig::default() },
///     Arc::new(clock.clone()),
/// );
/// // Three failures in ten calls: 30 %, under the 50 % threshold.
/// for i in 0..10 {
///     b.record_call(false, Duration::ZERO, i % 3 == 0);
/// }
/// assert_eq!(b.state(), BreakerState::Closed);
/// // Two more failures: five of the last ten calls failed, 50 %.
/// for _ in 0..2 {
///     b.record_call(false, Duration::ZERO, true);
/// }
/// assert_eq!(b.state(), BreakerState::Open);
/// assert_eq!(b.admit(), Admission::No);
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(b.admit(), Admission::Probe);
/// ```
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    /// When it was made: the instant handed to a count window, which
    /// ignores it.
    created: Instant,
    /// In a cache line of its own: every submit reads it, and a worker
    /// writes the window under `inner` after every call.
    state: CachePadded<AtomicU8>,
    rejected: Counter,
    overridden: Counter,
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
        let window = match config.window_duration {
            Some(span) => Window::time(span, now),
            None => Window::count(config.window),
        };
        Self {
            inner: Mutex::new(Inner {
                window,
                consecutive: 0,
                open_until: now,
                cooldown: config.recovery_timeout,
                closed_at: None,
                probes: Probes::default(),
                transitions: VecDeque::new(),
                transitions_total: 0,
                failures: VecDeque::new(),
            }),
            config,
            clock,
            created: now,
            state: CachePadded::new(AtomicU8::new(CLOSED)),
            rejected: Counter::default(),
            overridden: Counter::default(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
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
            inner.probes = Probes::default();
            let seen = inner.probes.stats();
            self.move_to(&mut inner, HALF_OPEN, "cooldown passed".into(), seen);
        }
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admission::Yes,
            _ if inner.probes.admitted < self.config.half_open_max_calls => {
                inner.probes.admitted += 1;
                Admission::Probe
            }
            _ => {
                self.rejected.inc();
                Admission::No
            }
        }
    }

    /// A request of the group succeeded (a call of no particular length).
    #[inline]
    pub fn record_success(&self, probe: bool) {
        self.record_call(probe, Duration::ZERO, false);
    }

    /// A request of the group failed in a way that counts against the
    /// device (see [`BreakerConfig::counts`]); the record is kept for the
    /// stats.
    pub fn record_failure(&self, probe: bool, record: FailureRecord) {
        self.keep_failure(record);
        self.record_call(probe, Duration::ZERO, true);
    }

    /// Keeps a failure for the stats (most recent `history`).
    pub fn keep_failure(&self, record: FailureRecord) {
        let mut inner = self.inner.lock();
        if inner.failures.len() >= self.config.history.max(1) {
            inner.failures.pop_front();
        }
        inner.failures.push_back(record);
    }

    /// Counts one call of the group that took `elapsed` and `failed` (or
    /// not): the window's input, and a probe's verdict.
    pub fn record_call(&self, probe: bool, elapsed: Duration, failed: bool) {
        let slow = self
            .config
            .slow_call_duration
            .is_some_and(|limit| elapsed >= limit);
        let call = Call { failed, slow };
        // A count window does not read the time: no clock read per call then.
        let now = if self.config.window_duration.is_some() {
            self.clock.now()
        } else {
            self.created
        };
        let mut inner = self.inner.lock();
        let state = self.state.load(Ordering::Acquire);
        if probe && state == HALF_OPEN {
            inner.probes.record(call);
            self.decide_half_open(&mut inner);
            return;
        }
        // Every other outcome is the device's too, whatever the state:
        // it goes in the window (a probe of an earlier spell included).
        inner.window.record(call, now);
        if state != CLOSED {
            return;
        }
        match self.config.mode {
            BreakerMode::Consecutive => {
                if failed || slow {
                    inner.consecutive += 1;
                    if inner.consecutive >= self.config.failure_threshold {
                        let n = inner.consecutive;
                        let seen = inner.window.stats(now);
                        self.open(&mut inner, format!("{n} consecutive failures"), seen);
                    }
                } else {
                    inner.consecutive = 0;
                }
            }
            BreakerMode::FailureRate => {
                let w = inner.window.stats(now);
                if w.calls >= u64::from(self.config.minimum_calls) {
                    if let Some(why) = self.over_threshold(&w) {
                        self.open(&mut inner, why, w);
                    }
                }
            }
        }
    }

    /// Why these calls are too many failures (or too slow), if they are.
    fn over_threshold(&self, w: &WindowStats) -> Option<String> {
        if w.failure_rate >= self.config.failure_rate_threshold {
            return Some(format!(
                "failure rate {:.1} % of {} calls (threshold {:.1} %)",
                w.failure_rate * 100.0,
                w.calls,
                self.config.failure_rate_threshold * 100.0
            ));
        }
        if self.config.slow_call_duration.is_some()
            && w.slow_call_rate >= self.config.slow_call_rate_threshold
        {
            return Some(format!(
                "slow-call rate {:.1} % of {} calls (threshold {:.1} %)",
                w.slow_call_rate * 100.0,
                w.calls,
                self.config.slow_call_rate_threshold * 100.0
            ));
        }
        None
    }

    /// Closes or reopens a half-open breaker once its probes tell.
    fn decide_half_open(&self, inner: &mut Inner) {
        let p = inner.probes;
        let n = f64::from(self.config.half_open_max_calls);
        let seen = p.stats();
        let reopen = match self.config.mode {
            BreakerMode::Consecutive => {
                p.failed() > 0 || (self.config.slow_call_duration.is_some() && p.slow() > 0)
            }
            // Reopen as soon as the failures alone make the rate of all the
            // probes reach the threshold, whatever the rest do.
            BreakerMode::FailureRate => {
                p.failed() as f64 / n >= self.config.failure_rate_threshold
                    || (self.config.slow_call_duration.is_some()
                        && p.slow() as f64 / n >= self.config.slow_call_rate_threshold)
            }
        };
        if reopen {
            let grown = inner.cooldown.as_secs_f64() * self.config.backoff_multiplier;
            inner.cooldown =
                Duration::from_secs_f64(grown.min(self.config.max_backoff.as_secs_f64()));
            let why = format!("{} of {} probe(s) failed", p.failed(), p.done());
            self.open(inner, why, seen);
        } else if p.done() >= u64::from(self.config.half_open_max_calls) {
            let now = self.clock.now();
            inner.closed_at = Some(now);
            inner.consecutive = 0;
            inner.window.clear(now);
            let why = format!("{} of {} probe(s) failed", p.failed(), p.done());
            self.move_to(inner, CLOSED, why, seen);
        }
    }

    /// A probe ended without telling anything about the device (it expired,
    /// was cancelled, or failed through no fault of the device): its slot
    /// goes back so a half-open breaker does not wait for an outcome that
    /// never comes.
    #[inline]
    pub fn release_probe(&self, probe: bool) {
        if probe {
            let mut inner = self.inner.lock();
            inner.probes.admitted = inner.probes.admitted.saturating_sub(1);
        }
    }

    fn open(&self, inner: &mut Inner, reason: String, seen: WindowStats) {
        let now = self.clock.now();
        if self.state.load(Ordering::Acquire) == CLOSED {
            // Reopening soon after a recovery: a flapping device keeps a
            // growing cooldown; one that stayed well starts afresh.
            match inner.closed_at {
                Some(t) if now.saturating_duration_since(t) < self.config.healthy_reset_after => {
                    let grown = inner.cooldown.as_secs_f64() * self.config.backoff_multiplier;
                    inner.cooldown =
                        Duration::from_secs_f64(grown.min(self.config.max_backoff.as_secs_f64()));
                }
                _ => inner.cooldown = self.config.recovery_timeout,
            }
        }
        inner.open_until = now + inner.cooldown;
        inner.consecutive = 0;
        let reason = format!("{reason}; cooldown {:?}", inner.cooldown);
        self.move_to(inner, OPEN, reason, seen);
    }

    /// Opens the breaker now, whatever the calls said, for `reason` (a
    /// backend that reports itself not ready): from closed with the usual
    /// cooldown, from half-open without growing it; an open breaker stays
    /// as it is. It comes back through its probes, as after failed calls.
    pub fn trip(&self, reason: String) {
        let mut inner = self.inner.lock();
        if self.state.load(Ordering::Acquire) == OPEN {
            return;
        }
        let seen = inner.window.stats(self.clock.now());
        self.open(&mut inner, reason, seen);
    }

    /// Closes the breaker by hand and resets its cooldown and window.
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        let now = self.clock.now();
        inner.cooldown = self.config.recovery_timeout;
        inner.consecutive = 0;
        inner.closed_at = None;
        let seen = inner.window.stats(now);
        inner.window.clear(now);
        if self.state.load(Ordering::Acquire) != CLOSED {
            self.move_to(&mut inner, CLOSED, "manual reset".into(), seen);
        }
    }

    fn move_to(&self, inner: &mut Inner, to: u8, reason: String, seen: WindowStats) {
        let from = BreakerState::from_u8(self.state.swap(to, Ordering::AcqRel));
        tracing::info!(
            "breaker {from:?} -> {:?}: {reason}",
            BreakerState::from_u8(to)
        );
        inner.transitions_total += 1;
        if inner.transitions.len() >= self.config.history.max(1) {
            inner.transitions.pop_front();
        }
        inner.transitions.push_back(Transition {
            from,
            to: BreakerState::from_u8(to),
            reason,
            window: seen,
            at: SystemTime::now(),
        });
    }

    /// A request was routed here while open, because every group it could
    /// go to was open (`when_all_open: least_bad`).
    pub(crate) fn note_override(&self) {
        self.overridden.inc();
    }

    /// How bad the group looks now, for choosing among open groups: the
    /// failure rate of its window (lower is better).
    pub(crate) fn badness(&self) -> f64 {
        let now = self.clock.now();
        self.inner.lock().window.stats(now).failure_rate
    }

    /// State, counters and recent history.
    pub fn stats(&self) -> BreakerStats {
        let now = self.clock.now();
        let mut inner = self.inner.lock();
        let state = self.state();
        let window = if state == BreakerState::HalfOpen {
            inner.probes.stats()
        } else {
            inner.window.stats(now)
        };
        BreakerStats {
            state,
            window,
            consecutive_failures: inner.consecutive,
            cooldown_ms: inner.cooldown.as_secs_f64() * 1e3,
            rejected: self.rejected.get(),
            overridden: self.overridden.get(),
            transitions: inner.transitions.iter().cloned().collect(),
            transitions_total: inner.transitions_total,
            recent_failures: inner.failures.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BreakerMode;
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
                    mode: BreakerMode::Consecutive,
                    failure_threshold,
                    recovery_timeout: Duration::from_millis(recovery_ms),
                    backoff_multiplier,
                    max_backoff: Duration::from_millis(recovery_ms + extra),
                    half_open_max_calls,
                    history: 1_000,
                    ..BreakerConfig::default()
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
        /// Consecutive mode: any sequence of admissions, outcomes, time and
        /// resets keeps the documented machine: closed admits all; open
        /// admits nothing until its cooldown passes; half-open admits
        /// exactly its probes, which alone decide; `failure_threshold`
        /// consecutive failures open it; the cooldown stays within
        /// `recovery_timeout..=max_backoff`.
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

    /// A rate-mode breaker on a manual clock.
    fn rate_breaker(cfg: BreakerConfig) -> (ManualClock, CircuitBreaker) {
        let clock = ManualClock::new();
        let b = CircuitBreaker::new(cfg, Arc::new(clock.clone()));
        (clock, b)
    }

    fn rate_config(window: u32, minimum_calls: u32, threshold: f64) -> BreakerConfig {
        BreakerConfig {
            window,
            minimum_calls,
            failure_rate_threshold: threshold,
            ..BreakerConfig::default()
        }
    }

    /// Whether call `i` of a sequence failing at exactly rate `p`, spread
    /// as evenly as it can be, fails.
    fn even_failure(i: u64, p: f64) -> bool {
        ((i + 1) as f64 * p).floor() > (i as f64 * p).floor()
    }

    proptest! {
        /// Rate mode: failures at a rate below the threshold never open the
        /// breaker once the window is full.
        #[test]
        fn a_rate_below_the_threshold_never_opens(
            window in 10u32..400,
            threshold in 0.1f64..0.9,
            share in 0.0f64..1.0,
            calls in 0u64..3_000,
        ) {
            let p = threshold * share;
            // Any `window` consecutive calls hold at most ceil(p * window)
            // failures: keep that under the threshold.
            prop_assume!((p * f64::from(window)).ceil() < threshold * f64::from(window));
            let (_clock, b) = rate_breaker(rate_config(window, window, threshold));
            for i in 0..u64::from(window) + calls {
                b.record_call(false, Duration::ZERO, even_failure(i, p));
                prop_assert_eq!(b.state(), BreakerState::Closed, "call {} at p = {}", i, p);
            }
        }

        /// Rate mode: at 100 % failures it opens on exactly the
        /// `minimum_calls`-th call.
        #[test]
        fn all_failures_open_after_exactly_the_minimum_calls(
            window in 1u32..500,
            minimum in 1u32..500,
            threshold in 0.01f64..=1.0,
        ) {
            let minimum = minimum.min(window);
            let (_clock, b) = rate_breaker(rate_config(window, minimum, threshold));
            for _ in 1..minimum {
                b.record_call(false, Duration::ZERO, true);
                prop_assert_eq!(b.state(), BreakerState::Closed);
            }
            b.record_call(false, Duration::ZERO, true);
            prop_assert_eq!(b.state(), BreakerState::Open);
            let t = b.stats().transitions;
            prop_assert_eq!(t[0].window.calls, u64::from(minimum));
            prop_assert_eq!(t[0].window.failure_rate, 1.0);
        }

        /// Rate mode: half-open admits exactly its probes, and closes or
        /// reopens by their failure rate (reopening as soon as the rate is
        /// certain to reach the threshold).
        #[test]
        fn half_open_decides_by_the_probes_rate(
            probes in 1u32..20,
            threshold in 0.05f64..=1.0,
            outcomes in proptest::collection::vec(any::<bool>(), 20),
        ) {
            let cfg = BreakerConfig {
                half_open_max_calls: probes,
                ..rate_config(10, 10, threshold)
            };
            let (clock, b) = rate_breaker(cfg.clone());
            for _ in 0..10 {
                b.record_call(false, Duration::ZERO, true);
            }
            prop_assert_eq!(b.state(), BreakerState::Open);
            clock.advance(cfg.recovery_timeout);
            for _ in 0..probes {
                prop_assert_eq!(b.admit(), Admission::Probe);
            }
            prop_assert_eq!(b.admit(), Admission::No, "exactly {} probes", probes);
            let mut failed = 0u32;
            for (k, &fail) in outcomes.iter().take(probes as usize).enumerate() {
                b.record_call(true, Duration::ZERO, fail);
                failed += u32::from(fail);
                let certain = f64::from(failed) / f64::from(probes) >= threshold;
                let all_in = k as u32 + 1 == probes;
                let expected = if certain {
                    BreakerState::Open
                } else if all_in {
                    BreakerState::Closed
                } else {
                    BreakerState::HalfOpen
                };
                prop_assert_eq!(b.state(), expected, "after probe {} ({} failed)", k + 1, failed);
                if expected != BreakerState::HalfOpen {
                    break;
                }
            }
        }

        /// A time window forgets calls older than its span: old failures
        /// never add up with new ones.
        #[test]
        fn a_time_window_forgets_old_failures(minimum in 2u32..50, span_ms in 10u64..10_000) {
            let span = Duration::from_millis(span_ms);
            let cfg = BreakerConfig {
                window_duration: Some(span),
                minimum_calls: minimum,
                ..BreakerConfig::default()
            };
            let (clock, b) = rate_breaker(cfg);
            for _ in 1..minimum {
                b.record_call(false, Duration::ZERO, true);
            }
            clock.advance(span + span / 10);
            for _ in 1..minimum {
                b.record_call(false, Duration::ZERO, true);
            }
            prop_assert_eq!(b.state(), BreakerState::Closed, "the first failures were forgotten");
            b.record_call(false, Duration::ZERO, true);
            prop_assert_eq!(b.state(), BreakerState::Open);
        }
    }

    /// Share of time a group with the default breaker admits new requests,
    /// simulated on a manual clock: 2 workers each finishing a 20 µs call
    /// every 20 µs (100,000 calls a second), a queue of 256 kept full by
    /// eager submitters, transient failures at rate `p`, `seconds` long.
    fn availability(cfg: BreakerConfig, p: f64, seconds: u64, seed: u64) -> f64 {
        let (clock, b) = rate_breaker(cfg);
        let step = Duration::from_micros(10);
        let mut rng = seed | 1;
        let mut fails = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            ((rng >> 11) as f64 / (1u64 << 53) as f64) < p
        };
        let mut queue: std::collections::VecDeque<bool> = Default::default();
        let steps = seconds * 100_000;
        let mut available = 0u64;
        for _ in 0..steps {
            let mut first = true;
            while queue.len() < 256 {
                let a = b.admit();
                if first && a != Admission::No {
                    available += 1;
                }
                first = false;
                match a {
                    Admission::No => break,
                    Admission::Probe => queue.push_front(true), // the front lane
                    Admission::Yes => queue.push_back(false),
                }
            }
            if first {
                available += 1; // the queue was full, the breaker closed
            }
            if let Some(probe) = queue.pop_front() {
                b.record_call(probe, Duration::from_micros(20), fails());
            }
            clock.advance(step);
        }
        available as f64 / steps as f64
    }

    /// The property the consecutive breaker broke: with the defaults and a
    /// steady 6 % (and up to 30 %) rate of transient failures, a group
    /// admits new requests at least 99 % of the time.
    #[test]
    fn noisy_but_working_devices_stay_available() {
        let rate = BreakerConfig::default;
        for (p, seed) in [(0.06, 1), (0.15, 2), (0.30, 3)] {
            let a = availability(rate(), p, 10, seed);
            assert!(a >= 0.99, "{:.1} % available at p = {p}", a * 100.0);
        }
        // A dead device is not: the breaker opens and stays open but for
        // its probes.
        assert!(availability(rate(), 1.0, 10, 4) < 0.01);
        // The streak breaker, same simulation: five failures in a row
        // happen several times a second at 15 %.
        let streak = BreakerConfig {
            mode: BreakerMode::Consecutive,
            ..rate()
        };
        let a = availability(streak, 0.15, 10, 2);
        assert!(
            a < 0.5,
            "the consecutive breaker was {:.1} % available",
            a * 100.0
        );
    }
}
