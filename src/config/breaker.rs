//! Circuit-breaker settings.
//!
//! The default breaker decides by failure **rate** over a sliding window of
//! calls, never by a streak: at tens of thousands of calls a second a streak
//! of five failures happens by chance on a device that fails one call in
//! sixteen, while a rate over 200 calls tells a noisy device (retries absorb
//! its errors) from a broken one. The defaults, and why:
//!
//! | setting | default | why |
//! | --- | --- | --- |
//! | `mode` | `failure_rate` | streaks trip on noise at high call rates |
//! | `window` | 200 calls | at 30 % transient errors the rate over 200 calls reaches 50 % about once in 10^10 calls |
//! | `minimum_calls` | 100 | no verdict on a handful of calls; a dead device is still caught within 100 calls (a millisecond at full load) |
//! | `failure_rate_threshold` | 0.5 | a device failing half its calls costs more in retries than it serves |
//! | `half_open_max_calls` | 10 | probes decide by their rate too; one probe is a coin toss on a noisy device |
//! | `recovery_timeout`, `max_backoff` | 1 s, 10 s | a device reset takes seconds; a minute of refusal outlives most faults |
//! | `healthy_reset_after` | 30 s | a device that flaps keeps its longer cooldown; one that stays well earns the short one back |
//!
//! A time-based window (`window_duration`) suits a group with few calls: a
//! count window of 200 would take minutes to fill at a few calls a second.

#![forbid(unsafe_code)]

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranges::{self, check_count, check_duration};
use super::ConfigError;
use crate::core::ErrorKind;

/// How a closed breaker decides to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerMode {
    /// On the failure (or slow-call) rate over the sliding window, once it
    /// holds `minimum_calls`.
    #[default]
    FailureRate,
    /// On `failure_threshold` consecutive failures (the 0.1 breaker): simple,
    /// but a noisy device at a high call rate trips it by chance.
    Consecutive,
}

/// The most calls a count window holds (its memory is allocated whole).
pub const MAX_BREAKER_WINDOW: u32 = 100_000;
/// The most probes a half-open breaker admits.
pub const MAX_HALF_OPEN_CALLS: u32 = 1_000;
/// Buckets of a time-based window: its memory and per-call work are fixed.
pub const TIME_WINDOW_BUCKETS: u32 = 10;

/// Breaker settings of one group (see the module docs for the defaults).
///
/// ```
/// use accelpool::{BreakerConfig, BreakerMode};
/// use std::time::Duration;
/// let b = BreakerConfig {
///     window_duration: Some(Duration::from_secs(30)), // few calls: a time window
///     minimum_calls: 20,
///     ..BreakerConfig::default()
/// };
/// assert_eq!(b.mode, BreakerMode::FailureRate);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Rate over a window (default) or consecutive failures.
    pub mode: BreakerMode,
    /// Calls in the sliding window (count-based window).
    pub window: u32,
    /// If set, the window is the calls of this last stretch of time
    /// instead (in ten buckets), and `window` is not used.
    #[serde(with = "humantime_serde")]
    pub window_duration: Option<Duration>,
    /// Calls the window must hold before the breaker may open.
    pub minimum_calls: u32,
    /// Opens when this share of the window's calls failed (0 < t <= 1).
    pub failure_rate_threshold: f64,
    /// A call that takes at least this long is slow (off when unset).
    #[serde(with = "humantime_serde")]
    pub slow_call_duration: Option<Duration>,
    /// Opens when this share of the window's calls was slow (0 < t <= 1).
    pub slow_call_rate_threshold: f64,
    /// Error kinds that count as the device failing. A permanent error (bad
    /// input) is the request's fault and a cancel the caller's: neither
    /// counts by default, nor as a success.
    pub count_as_failure: Vec<ErrorKind>,
    /// Consecutive failures that open a closed breaker (`mode: consecutive`).
    pub failure_threshold: u32,
    /// First cooldown of an open breaker.
    #[serde(with = "humantime_serde")]
    pub recovery_timeout: Duration,
    /// Growth of the cooldown after each failed recovery, and after a
    /// reopening within `healthy_reset_after` of closing (at least 1).
    pub backoff_multiplier: f64,
    /// Longest cooldown.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Closed this long, the cooldown is back to `recovery_timeout`.
    #[serde(with = "humantime_serde")]
    pub healthy_reset_after: Duration,
    /// Probes a half-open breaker admits; it closes or reopens on their
    /// failure rate (in consecutive mode: any failed probe reopens).
    pub half_open_max_calls: u32,
    /// Transitions and failures kept for inspection.
    pub history: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            mode: BreakerMode::FailureRate,
            window: 200,
            window_duration: None,
            minimum_calls: 100,
            failure_rate_threshold: 0.5,
            slow_call_duration: None,
            slow_call_rate_threshold: 1.0,
            count_as_failure: vec![
                ErrorKind::Transient,
                ErrorKind::Panicked,
                ErrorKind::TimedOut,
            ],
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            max_backoff: Duration::from_secs(10),
            healthy_reset_after: Duration::from_secs(30),
            half_open_max_calls: 10,
            history: 32,
        }
    }
}

impl BreakerConfig {
    /// Whether an error of this kind counts against the device.
    #[inline]
    pub fn counts(&self, kind: ErrorKind) -> bool {
        self.count_as_failure.contains(&kind)
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        check_count(
            || field("failure_threshold"),
            self.failure_threshold,
            1,
            1_000,
        )?;
        check_count(
            || field("half_open_max_calls"),
            self.half_open_max_calls,
            1,
            MAX_HALF_OPEN_CALLS,
        )?;
        check_count(|| field("history"), self.history, 1, 10_000)?;
        if self.window_duration.is_none() {
            check_count(|| field("window"), self.window, 1, MAX_BREAKER_WINDOW)?;
            check_count(
                || field("minimum_calls"),
                self.minimum_calls,
                1,
                self.window,
            )
            .map_err(|e| ConfigError::new(e.field, format!("{} (at most `window`)", e.message)))?;
        } else {
            check_count(|| field("minimum_calls"), self.minimum_calls, 1, u32::MAX)?;
        }
        if let Some(d) = self.window_duration {
            check_duration(|| field("window_duration"), d, ranges::BREAKER_WINDOW)?;
        }
        if let Some(d) = self.slow_call_duration {
            check_duration(|| field("slow_call_duration"), d, ranges::SLOW_CALL)?;
        }
        for (name, v) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(ConfigError::new(
                    field(name),
                    format!("{v} is outside 0.0 (excluded)..=1.0"),
                ));
            }
        }
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier.is_finite()) {
            return Err(ConfigError::new(
                field("backoff_multiplier"),
                format!("{} is outside 1.0.. (finite)", self.backoff_multiplier),
            ));
        }
        for (name, value) in [
            ("recovery_timeout", self.recovery_timeout),
            ("max_backoff", self.max_backoff),
        ] {
            check_duration(|| field(name), value, ranges::BREAKER_COOLDOWN)?;
        }
        check_duration(
            || field("healthy_reset_after"),
            self.healthy_reset_after,
            ranges::BREAKER_HEALTHY_RESET,
        )?;
        if self.max_backoff < self.recovery_timeout {
            return Err(ConfigError::new(
                field("max_backoff"),
                format!("must be at least {path}.recovery_timeout"),
            ));
        }
        Ok(())
    }
}

/// What the router does when every group a request may go to has its
/// breaker open.
///
/// ```
/// use accelpool::{AllOpenPolicy, PoolConfig};
/// assert_eq!(PoolConfig::default().when_all_open, AllOpenPolicy::LeastBad);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllOpenPolicy {
    /// Route to the open group whose window shows the lowest failure rate
    /// (Envoy's panic mode): work keeps flowing, and retries and the
    /// dead-letter queue still catch what fails. The default: a
    /// latency-critical application rarely wants every request refused
    /// because each device had a bad second. Counted per group in
    /// `BreakerStats::overridden`, and named in the pool's health.
    #[default]
    LeastBad,
    /// Refuse the request (`Refusal::Unavailable`): the caller decides what
    /// to do, at the price of refusing everything while all are open.
    Refuse,
}
