//! The fair part of a group's queues: with tenant fairness on, each
//! priority level keeps its requests in a deficit round robin
//! (`policy::drr`) and its channel carries only tokens, one per request,
//! so workers still wait on the channels (spin, then park) exactly as
//! without fairness.
//!
//! # The token protocol
//!
//! A request is queued under the level's lock: a token is sent (which fails
//! when the level is full), then the request is pushed. A worker that
//! receives a token takes the level's lock and pops the request the round
//! robin picks, which need not be the one whose token it received: tokens
//! are interchangeable, and because a token is sent only with its request
//! under the lock, a worker holding a token always finds a request. Every
//! take, the drain's included, goes through a token.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::TenantsConfig;
use crate::core::{Job, LevelCapacity, Priority, TenantStats};
use crate::policy::drr::{Drr, Turned, DEFAULT_TENANT};

/// Tenants whose counts are kept by name; the rest count as `other`.
const TRACKED_TENANTS: usize = 256;
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

/// One tenant's counts in one group.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    accepted: u64,
    served: u64,
    refused: u64,
}

/// Counts by tenant, bounded: the first `TRACKED_TENANTS` tenants by name,
/// the rest together.
#[derive(Default)]
struct Book {
    by_name: HashMap<Arc<str>, Counts>,
    other: Counts,
}

impl Book {
    fn entry(&mut self, tenant: &Arc<str>) -> &mut Counts {
        if !self.by_name.contains_key(tenant) && self.by_name.len() >= TRACKED_TENANTS {
            return &mut self.other;
        }
        self.by_name.entry(Arc::clone(tenant)).or_default()
    }
}

/// Per-level round robins and the tenants' counts of one group.
pub(crate) struct Fair<T> {
    levels: [Mutex<Drr<T>>; Priority::COUNT],
    book: Mutex<Book>,
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
                let level_cap = cap.of(Priority::ALL[i]);
                let max = cfg.max_queued_per_tenant.unwrap_or(level_cap);
                Mutex::new(Drr::new(weights.clone(), cfg.default_weight, max))
            }),
            book: Mutex::new(Book::default()),
            default: Arc::from(DEFAULT_TENANT),
        }
    }

    /// Queues `item` at level `lane` (0 = urgent): `send_token` is tried
    /// under the level's lock and the item pushed only if it succeeded.
    pub(crate) fn push(
        &self,
        lane: usize,
        item: T,
        send_token: impl FnOnce() -> bool,
    ) -> Result<(), Refused<T>> {
        let tenant = item.tenant().unwrap_or(&self.default).clone();
        let mut drr = self.levels[lane].lock();
        let room = drr.has_room(&tenant) && send_token();
        if !room {
            drop(drr);
            self.book.lock().entry(&tenant).refused += 1;
            return Err(Refused::Full(item));
        }
        if let Err((item, Turned::TenantFull)) = drr.push(&tenant, item) {
            // `has_room` said yes under the same lock, so this cannot be;
            // were it, the token sent has no item, and a worker receiving it
            // finds none and goes on (`Levels::try_take`).
            debug_assert!(false, "room was checked under the lock");
            return Err(Refused::Full(item));
        }
        drop(drr);
        self.book.lock().entry(&tenant).accepted += 1;
        Ok(())
    }

    /// The next item of level `lane` by the round robin, after its token
    /// was received.
    pub(crate) fn pop(&self, lane: usize) -> Option<T> {
        let (tenant, item) = self.levels[lane].lock().pop()?;
        self.book.lock().entry(&tenant).served += 1;
        Some(item)
    }

    /// The most accepted tenants' counts, then `other` (tenants past the
    /// tracked or the reported ones) when it has any.
    pub(crate) fn stats(&self) -> Vec<TenantStats> {
        let book = self.book.lock();
        let mut named: Vec<(&Arc<str>, &Counts)> = book.by_name.iter().collect();
        named.sort_by(|a, b| b.1.accepted.cmp(&a.1.accepted).then_with(|| a.0.cmp(b.0)));
        let mut other = book.other;
        for (_, c) in named.iter().skip(REPORTED_TENANTS) {
            other.accepted += c.accepted;
            other.served += c.served;
            other.refused += c.refused;
        }
        let queued = |t: &str| -> usize { self.levels.iter().map(|l| l.lock().queued(t)).sum() };
        let mut out: Vec<TenantStats> = named
            .iter()
            .take(REPORTED_TENANTS)
            .map(|(name, c)| TenantStats {
                tenant: name.to_string(),
                accepted: c.accepted,
                served: c.served,
                refused: c.refused,
                queued: queued(name),
            })
            .collect();
        if other.accepted + other.refused > 0 {
            let total: usize = self.levels.iter().map(|l| l.lock().len()).sum();
            let named_queued: usize = out.iter().map(|t| t.queued).sum();
            out.push(TenantStats {
                tenant: OTHER_TENANTS.to_owned(),
                accepted: other.accepted,
                served: other.served,
                refused: other.refused,
                queued: total.saturating_sub(named_queued),
            });
        }
        out
    }
}

/// The name of the bucket that sums the tenants not reported by name.
pub(crate) const OTHER_TENANTS: &str = "(other)";
