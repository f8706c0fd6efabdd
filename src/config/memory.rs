//! Memory-pressure settings.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use super::ranges::{self, check_duration};
use super::ConfigError;
use crate::core::Priority;

/// Memory-pressure settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Act on memory pressure at all.
    pub enabled: bool,
    /// Above this fraction of the limit: park workers down to each group's
    /// minimum (lowest-priority groups first), dropping their sessions.
    pub high_watermark: f64,
    /// Below this fraction: wake the parked workers (they rebuild their sessions).
    pub low_watermark: f64,
    /// How often memory is read.
    #[serde(with = "humantime_serde")]
    pub sample_interval: std::time::Duration,
    /// While above the high watermark, refuse new requests below this
    /// priority (handed back, refused as `Refusal::MemoryPressure`).
    pub refuse_below: Option<Priority>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            high_watermark: 0.90,
            low_watermark: 0.75,
            sample_interval: std::time::Duration::from_millis(500),
            refuse_below: None,
        }
    }
}

impl MemoryConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.high_watermark > 0.0 && self.high_watermark <= 1.0) {
            return Err(ConfigError::new(
                "memory.high_watermark",
                format!("{} is outside 0.0 (excluded)..=1.0", self.high_watermark),
            ));
        }
        if !(self.low_watermark >= 0.0 && self.low_watermark < self.high_watermark) {
            return Err(ConfigError::new(
                "memory.low_watermark",
                format!(
                    "{} is outside 0.0..{} (it must be below memory.high_watermark)",
                    self.low_watermark, self.high_watermark
                ),
            ));
        }
        check_duration(
            || "memory.sample_interval".into(),
            self.sample_interval,
            ranges::SAMPLE_INTERVAL,
        )?;
        Ok(())
    }
}
