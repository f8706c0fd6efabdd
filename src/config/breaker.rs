//! Circuit-breaker settings.

#![forbid(unsafe_code)]

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranges::{self, check_duration};
use super::ConfigError;

/// Breaker settings of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// First cooldown of an open breaker.
    #[serde(with = "humantime_serde")]
    pub recovery_timeout: Duration,
    /// Growth of the cooldown after each failed recovery (at least 1).
    pub backoff_multiplier: f64,
    /// Longest cooldown.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Probe requests admitted while half-open.
    pub half_open_max_calls: u32,
    /// Transitions and failures kept for inspection.
    pub history: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            max_backoff: Duration::from_secs(60),
            half_open_max_calls: 1,
            history: 32,
        }
    }
}

impl BreakerConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::new(
                format!("{path}.failure_threshold"),
                "0 is outside 1..",
            ));
        }
        if self.half_open_max_calls == 0 {
            return Err(ConfigError::new(
                format!("{path}.half_open_max_calls"),
                "0 is outside 1..",
            ));
        }
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier.is_finite()) {
            return Err(ConfigError::new(
                format!("{path}.backoff_multiplier"),
                format!("{} is outside 1.0.. (finite)", self.backoff_multiplier),
            ));
        }
        for (name, value) in [
            ("recovery_timeout", self.recovery_timeout),
            ("max_backoff", self.max_backoff),
        ] {
            check_duration(|| format!("{path}.{name}"), value, ranges::BREAKER_COOLDOWN)?;
        }
        if self.max_backoff < self.recovery_timeout {
            return Err(ConfigError::new(
                format!("{path}.max_backoff"),
                format!("must be at least {path}.recovery_timeout"),
            ));
        }
        Ok(())
    }
}
