//! Tenant fairness within a priority level.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ranges::check_count;
use super::{ConfigError, MAX_CAPACITY, MAX_WEIGHT};

/// Tenants sharing each priority level by weight (off by default).
///
/// With it on, each level of each group serves the tenants that have
/// requests waiting by deficit round robin: a tenant is served in turn up to
/// its weight, so over any busy stretch each gets its weight's share of the
/// level's service, whatever the others submit; a take costs O(1). Strict
/// priority between levels is unchanged. Each tenant may have at most
/// `max_queued_per_tenant` requests waiting per level, so one tenant's
/// backlog cannot fill the level (its excess is refused as
/// [`Refusal::Full`](crate::Refusal::Full)). Requests without a tenant
/// ([`Request::tenant`](crate::Request::tenant)) share the default tenant.
///
/// ```yaml
/// tenants:
///   enabled: true
///   default_weight: 1
///   weights: { interactive: 4, batch: 1 }
///   max_queued_per_tenant: 256
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsConfig {
    /// Share levels between tenants (off by default: one FIFO per level).
    pub enabled: bool,
    /// Weights of named tenants, 1 to [`MAX_WEIGHT`].
    pub weights: BTreeMap<String, u32>,
    /// The weight of every other tenant (and of the default one).
    pub default_weight: u32,
    /// Most requests one tenant may have waiting in one level of one group,
    /// 1 to [`MAX_CAPACITY`]; by default half of what the level holds, so
    /// one tenant's backlog never fills a level for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_per_tenant: Option<usize>,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weights: BTreeMap::new(),
            default_weight: 1,
            max_queued_per_tenant: None,
        }
    }
}

impl TenantsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            || "tenants.default_weight".into(),
            self.default_weight,
            1,
            MAX_WEIGHT,
        )?;
        for (name, &w) in &self.weights {
            check_count(|| format!("tenants.weights.{name}"), w, 1, MAX_WEIGHT)?;
        }
        if let Some(n) = self.max_queued_per_tenant {
            check_count(
                || "tenants.max_queued_per_tenant".into(),
                n,
                1,
                MAX_CAPACITY,
            )?;
        }
        Ok(())
    }
}
