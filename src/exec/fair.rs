//! The fair part of a group's queues: with tenant fairness on, each
//! priority level keeps its requests in a deficit round robin
//! (`policy::drr`) and its channel carries only tokens, one per request,
//! so workers still wait on the channels (spin, then park) exactly as
//! without fairness.
//!
//! # The token protocol
//!
//! A request is pushed under the level's lock, if the level holds fewer
//! than its capacity (and its tenant fewer than its share); its token is
//! sent after the lock is released, so the send's wake-up never finds the
//! lock held. A worker that receives a token takes the level's lock and
//! pops the request the round robin picks, which need not be the one whose
//! token it received: tokens are interchangeable. Two counts keep this
//! sound: tokens in the channel never exceed requests in the round robin
//! (a request is pushed before its token is sent, and popped after a token
//! is received), so a worker holding a token always finds a request; and
//! requests never exceed the capacity, which is the channel's, so a token
//! send never finds the channel full. Every take, the drain's included,
//! goes through a token.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::TenantsConfig;
use crate::core::{Job, LevelCapacity, Priority, TenantStats};
use crate::policy::drr::{Drr, TenantCounts, Turned, DEFAULT_TENANT};

/// Tenants named in the stats (the most accepted), before `other`.
pub(crate) const REPORTED_TENANTS: usize = 16;

/// What a queued item says about whom it is for.
pub(crate) trait Tenanted {
    /// Its tenant; `None` is the default one.
    fn tenant(&self) -> Option<&Arc<str>>;
}

impl<I, O> Tenanted for Job<I, O> {
    fn tenant(&self) -> Option<&Arc<str>> {
        Job::tenant(self)
    }
}

/// One level: its round robin (with the tenants' counts) and its capacity,
/// under one lock.
struct Level<T> {
    drr: Drr<T>,
    capacity: usize,
}

/// Per-level round robins and the tenants' counts of one group.
pub(crate) struct Fair<T> {
    levels: [Mutex<Level<T>>; Priority::COUNT],
    default: Arc<str>,
}

/// Why a fair level did not take an item.
pub(crate) enum Refused<T> {
    /// The level (its channel) or the tenant's share of it is full.
    Full(T),
}

impl<T: Tenanted> Fair<T> {
    pub(crate) fn new(cfg: &TenantsConfig, cap: &LevelCapacity) -> Self {
        let weights: HashMap<Arc<str>, u32> = cfg
            .weights
            .iter()
            .map(|(k, &w)| (Arc::from(k.as_str()), w))
            .collect();
        Self {
            levels: std::array::from_fn(|i| {
                let capacity = cap.of(Priority::ALL[i]);
                // By default a tenant may fill half a level: one tenant's
                // backlog never fills it for the others.
                let max = cfg.max_queued_per_tenant.unwrap_or(capacity.div_ceil(2));
                Mutex::new(Level {
                    drr: Drr::new(weights.clone(), cfg.default_weight, max),
                    capacity,
                })
            }),
            default: Arc::from(DEFAULT_TENANT),
        }
    }

    /// Queues `item` at level `lane` (0 = urgent) if the level and its
    /// tenant's share have room, then calls `send_token` (outside the lock).
    pub(crate) fn push(
        &self,
        lane: usize,
        item: T,
        send_token: impl FnOnce(),
    ) -> Result<(), Refused<T>> {
        let mut guard = self.levels[lane].lock();
        let level = &mut *guard;
        // The tenant's place is found while its name is borrowed from the
        // item; the name's count is touched only for a new tenant.
        let place = level.drr.tenant(item.tenant().unwrap_or(&self.default));
        if level.drr.len() >= level.capacity {
            level.drr.refused(place);
            return Err(Refused::Full(item));
        }
        match level.drr.push(place, item) {
            Ok(()) => {}
            Err((item, Turned::TenantFull)) => return Err(Refused::Full(item)),
        }
        drop(guard);
        send_token();
        Ok(())
    }

    /// The next item of level `lane` by the round robin, after a token was
    /// received.
    pub(crate) fn pop(&self, lane: usize) -> Option<T> {
        self.levels[lane].lock().drr.pop()
    }

    /// The most accepted tenants' counts, then `other` (tenants past the
    /// tracked or the reported ones) when it has any.
    pub(crate) fn stats(&self) -> Vec<TenantStats> {
        // Merge the levels' counts (each bounded) by name.
        let mut merged: HashMap<Arc<str>, (TenantCounts, usize)> = HashMap::new();
        let mut other = TenantCounts::default();
        for level in &self.levels {
            let (counts, level_other) = level.lock().drr.counts();
            for (name, c, queued) in counts {
                let e = merged.entry(name).or_default();
                e.0.add(&c);
                e.1 += queued;
            }
            other.add(&level_other);
        }
        let mut named: Vec<_> = merged.into_iter().collect();
        named.sort_by(|a, b| {
            b.1 .0
                .accepted
                .cmp(&a.1 .0.accepted)
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut other_queued = 0;
        for (_, (c, queued)) in named.iter().skip(REPORTED_TENANTS) {
            other.add(c);
            other_queued += queued;
        }
        let mut out: Vec<TenantStats> = named
            .iter()
            .take(REPORTED_TENANTS)
            .map(|(name, (c, queued))| TenantStats {
                tenant: name.to_string(),
                accepted: c.accepted,
                served: c.served,
                refused: c.refused,
                queued: *queued,
            })
            .collect();
        if other.accepted + other.refused > 0 {
            out.push(TenantStats {
                tenant: OTHER_TENANTS.to_owned(),
                accepted: other.accepted,
                served: other.served,
                refused: other.refused,
                queued: other_queued,
            });
        }
        out
    }
}

/// The name of the bucket that sums the tenants not reported by name.
pub(crate) const OTHER_TENANTS: &str = "(other)";
