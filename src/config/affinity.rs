//! Affinity: requests with one key prefer the worker that last ran it.

#![forbid(unsafe_code)]

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranges::{self, check_count, check_duration};
use super::ConfigError;

/// Most keys a group may remember (`affinity.max_keys`).
pub const MAX_AFFINITY_KEYS: usize = 1 << 20;

/// Requests with the same affinity key prefer the worker that last ran that
/// key (off by default), for sessions that keep per-key state warm: a
/// cached prompt, a tracker's state.
///
/// A worker that takes a keyed request whose key last ran on another worker
/// of the group hands it to that worker when the worker is free, and runs
/// it itself when it is not. With `max_wait` above zero it also hands it to
/// a busy one, which then has `max_wait` to take it; after that any idle
/// worker of the group does. Either way the request is taken at its
/// priority level, before that level's queue; nothing is lost or starved
/// (the architecture notes, "Affinity", have the protocol). Each
/// group remembers up to `max_keys` keys, the least recently used
/// forgotten first.
///
/// ```yaml
/// affinity:
///   enabled: true
///   max_wait: 2ms
///   max_keys: 4096
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AffinityConfig {
    /// Route keyed requests to the worker that last ran their key.
    pub enabled: bool,
    /// How long a keyed request waits for its busy worker before any idle
    /// worker takes it; zero (the default) never waits for a busy one.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Most keys remembered per group, 2 to [`MAX_AFFINITY_KEYS`].
    pub max_keys: usize,
}

impl Default for AffinityConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_wait: Duration::ZERO,
            max_keys: 4096,
        }
    }
}

impl AffinityConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_duration(
            || "affinity.max_wait".into(),
            self.max_wait,
            ranges::AFFINITY_MAX_WAIT,
        )?;
        check_count(
            || "affinity.max_keys".into(),
            self.max_keys,
            2,
            MAX_AFFINITY_KEYS,
        )
    }
}
