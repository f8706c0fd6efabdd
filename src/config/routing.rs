//! How a request chooses between device groups of equal priority, and
//! whether a request that cannot meet its deadline is refused at submit.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use super::ConfigError;
pub use crate::core::RoutingStrategy;

/// The most a group's routing weight may be.
pub const MAX_WEIGHT: u32 = 1000;

/// Routing between groups of equal priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// The strategy.
    pub strategy: RoutingStrategy,
    /// Seed of `random` and `weighted`. Without one, each pool draws its
    /// own seed when it starts (and a reload keeps drawing from where the
    /// last generation was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Refusing at submit a request whose deadline cannot be met, instead of
/// queueing it only for it to expire.
///
/// A group's estimate for a request of priority `p` is
/// `(ahead / workers) * per_request + per_call`, times `safety_factor`:
/// `ahead` counts the requests queued at `p` and above plus the calls
/// running, `workers` the group's running workers, `per_call` a moving
/// average of its calls' service time and `per_request` the same divided by
/// the batch size (equal without batching). A group that has not finished a
/// call yet has no estimate and takes the request. A request whose deadline
/// falls before every eligible group's estimate is refused as
/// [`Refusal::DeadlineUnmeetable`](crate::Refusal::DeadlineUnmeetable).
/// Only submissions are checked: a retry keeps its place, and a request
/// waiting for room (`submit`) is not checked again when room comes.
///
/// ```yaml
/// deadline_admission:
///   enabled: true
///   safety_factor: 1.0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlineAdmission {
    /// Check deadlines at submit (off by default).
    pub enabled: bool,
    /// The estimate is multiplied by this before it is compared with the
    /// time left: above 1 refuses sooner, below 1 gives the benefit of the
    /// doubt. 0.1 to 10.
    pub safety_factor: f64,
}

impl Default for DeadlineAdmission {
    fn default() -> Self {
        Self {
            enabled: false,
            safety_factor: 1.0,
        }
    }
}

impl DeadlineAdmission {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.1..=10.0).contains(&self.safety_factor) {
            return Err(ConfigError::new(
                "deadline_admission.safety_factor",
                format!("{} is outside 0.1..=10.0", self.safety_factor),
            ));
        }
        Ok(())
    }
}
