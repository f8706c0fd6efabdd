//! Memory-pressure hysteresis.
//!
//! Two levels: `Normal` becomes `High` at or above the high watermark, and
//! `High` becomes `Normal` only at or below the low one, so a reading that
//! wavers between them changes nothing. What a transition does (park
//! workers, refuse low priorities) is the runtime's: see
//! `exec::pressure`.

#![forbid(unsafe_code)]

use crate::config::MemoryConfig;
use crate::core::PressureLevel;

/// The level between readings.
#[derive(Debug)]
pub(crate) struct Hysteresis {
    level: PressureLevel,
}

impl Hysteresis {
    pub(crate) fn new() -> Self {
        Self {
            level: PressureLevel::Normal,
        }
    }

    /// Takes one reading (`used / limit`); the level entered, if it changed.
    pub(crate) fn observe(&mut self, fraction: f64, cfg: &MemoryConfig) -> Option<PressureLevel> {
        let next = match self.level {
            PressureLevel::Normal if fraction >= cfg.high_watermark => PressureLevel::High,
            PressureLevel::High if fraction <= cfg.low_watermark => PressureLevel::Normal,
            same => same,
        };
        (next != self.level).then(|| {
            self.level = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// High exactly from a reading at or above the high watermark until
        /// one at or below the low watermark; transitions alternate.
        #[test]
        fn levels_follow_the_watermarks(readings in proptest::collection::vec(0.0f64..1.0, 1..200)) {
            let cfg = MemoryConfig::default();
            let mut h = Hysteresis::new();
            let mut level = PressureLevel::Normal;
            for f in readings {
                let changed = h.observe(f, &cfg);
                if let Some(l) = changed {
                    prop_assert_ne!(l, level, "a transition changes the level");
                    level = l;
                }
                if f >= cfg.high_watermark {
                    prop_assert_eq!(level, PressureLevel::High);
                } else if f <= cfg.low_watermark {
                    prop_assert_eq!(level, PressureLevel::Normal);
                } else {
                    prop_assert!(changed.is_none(), "between the watermarks nothing changes");
                }
            }
        }
    }
}
