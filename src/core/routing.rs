//! Routing strategies: how a request is spread over device groups of equal
//! priority (the router in `policy::router` applies them).

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// How a request is spread over groups that share a priority. Groups of
/// different priorities are always tried highest first; the strategy only
/// orders a run of equal ones. A request restricted to one group, and
/// groups whose breaker is open or that have no healthy worker, are not
/// affected.
///
/// ```
/// use accelpool::{PoolConfig, RoutingStrategy};
/// let cfg = PoolConfig::from_yaml(
///     "routing:\n  strategy: random\n  seed: 7\ngroups:\n  - name: a\n  - name: b\n",
/// )?;
/// assert_eq!(cfg.routing.strategy, RoutingStrategy::Random);
/// # Ok::<(), accelpool::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    /// The group with the least in-flight work (queued plus running) first.
    #[default]
    LeastLoaded,
    /// Each request starts at the next group in turn.
    RoundRobin,
    /// Each request starts at a group drawn uniformly from a seeded
    /// generator: the same seed and order of submissions give the same
    /// routes.
    Random,
    /// Like `random`, but a group is drawn with probability proportional
    /// to its `weight`.
    Weighted,
}

impl RoutingStrategy {
    /// The name used in YAML and in the stats.
    pub const fn name(self) -> &'static str {
        match self {
            RoutingStrategy::LeastLoaded => "least_loaded",
            RoutingStrategy::RoundRobin => "round_robin",
            RoutingStrategy::Random => "random",
            RoutingStrategy::Weighted => "weighted",
        }
    }
}

impl std::fmt::Display for RoutingStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
