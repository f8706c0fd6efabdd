//! Dynamic-batching settings of one group (off by default).

#![forbid(unsafe_code)]

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranges::{self, check_count, check_duration};
use super::ConfigError;

/// The largest batch one call may take.
pub const MAX_BATCH_SIZE: u32 = 1024;

/// How a group's workers pack queued requests into one call.
///
/// A free worker takes the highest-priority request, then fills the batch
/// with what is queued at that level or above, never below (a lower level
/// never delays a higher one; a higher request that arrives joins the
/// batch, which then runs at once). Requests join only when the factory's
/// `batch_key` says they fit together. The worker waits for more only when
/// waiting can pay: the batch already holds two requests or more (they are
/// arriving faster than they are served), every other worker of the group
/// is busy (an idle one would take a new request at once), the size is not
/// in `preferred_batch_sizes`, and for at most `max_queue_delay`, never
/// past a member's deadline. So at light load a lone request runs at once,
/// and at heavy load batches fill by themselves from the queue.
///
/// ```
/// use accelpool::{BatchingConfig, GroupConfig};
/// use std::time::Duration;
/// let g = GroupConfig::new("cpu").batching(BatchingConfig {
///     max_batch_size: 8,
///     max_queue_delay: Duration::from_micros(500),
///     preferred_batch_sizes: vec![4, 8],
/// });
/// assert!(g.batching.enabled());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Most requests in one call; 1 turns batching off.
    pub max_batch_size: u32,
    /// Longest a worker waits to fill a batch (only while the group's
    /// other workers are all busy).
    #[serde(with = "humantime_serde")]
    pub max_queue_delay: Duration,
    /// Batch sizes worth running at once, without waiting for more (for
    /// example the sizes a fixed-batch model was compiled for).
    pub preferred_batch_sizes: Vec<u32>,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 1,
            max_queue_delay: Duration::from_micros(100),
            preferred_batch_sizes: Vec::new(),
        }
    }
}

impl BatchingConfig {
    /// True when calls may take more than one request.
    pub fn enabled(&self) -> bool {
        self.max_batch_size > 1
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        check_count(
            || format!("{path}.max_batch_size"),
            self.max_batch_size,
            1,
            MAX_BATCH_SIZE,
        )?;
        check_duration(
            || format!("{path}.max_queue_delay"),
            self.max_queue_delay,
            ranges::MAX_QUEUE_DELAY,
        )?;
        for (i, &size) in self.preferred_batch_sizes.iter().enumerate() {
            check_count(
                || format!("{path}.preferred_batch_sizes[{i}]"),
                size,
                1,
                self.max_batch_size,
            )
            .map_err(|e| {
                ConfigError::new(e.field, format!("{} (at most `max_batch_size`)", e.message))
            })?;
        }
        Ok(())
    }
}
