//! Deficit round robin between tenants: the order in which one priority
//! level's requests are served when several tenants share it.
//!
//! Each tenant with requests waiting is in a ring. The tenant at the front
//! earns its weight in deficit, is served until it has spent it, and goes
//! to the back. Every request costs one, so over a busy period each tenant
//! is served in proportion to its weight, and a take is O(1). A tenant that
//! empties leaves the ring and forgets its deficit, so idleness earns no
//! credit; a tenant arriving waits at most one turn of the others.
//!
//! Pure: no locks, no clocks. The queue that owns it (`exec::queue`) holds
//! it under a mutex.

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The key of requests that name no tenant.
pub(crate) const DEFAULT_TENANT: &str = "";

/// Tenants with nothing waiting kept (with their queue's buffer) for when
/// they come back; past this an emptied tenant is forgotten, so keys never
/// pile up.
const IDLE_KEPT: usize = 64;

/// One tenant's queue.
struct Tenant<T> {
    queue: VecDeque<T>,
    weight: u32,
    deficit: u32,
    in_ring: bool,
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turned {
    /// The tenant has `max_queued` requests waiting already.
    TenantFull,
}

/// Per-tenant queues served by weight.
pub(crate) struct Drr<T> {
    tenants: HashMap<Arc<str>, Tenant<T>>,
    ring: VecDeque<Arc<str>>,
    /// Requests waiting over all tenants.
    len: usize,
    max_queued: usize,
    default_weight: u32,
    weights: HashMap<Arc<str>, u32>,
}

impl<T> Drr<T> {
    /// `weights` for the tenants that have one (others get
    /// `default_weight`); at most `max_queued` requests waiting per tenant.
    pub(crate) fn new(
        weights: HashMap<Arc<str>, u32>,
        default_weight: u32,
        max_queued: usize,
    ) -> Self {
        Self {
            tenants: HashMap::new(),
            ring: VecDeque::new(),
            len: 0,
            max_queued,
            default_weight: default_weight.max(1),
            weights,
        }
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Requests `tenant` has waiting.
    pub(crate) fn queued(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, |t| t.queue.len())
    }

    /// Tenants remembered (waiting, or idle and kept).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.tenants.len()
    }

    /// Queues `item` for `tenant`, or hands it back when that tenant has
    /// `max_queued` waiting.
    pub(crate) fn push(&mut self, tenant: &Arc<str>, item: T) -> Result<(), (T, Turned)> {
        let weight = self
            .weights
            .get(tenant)
            .copied()
            .unwrap_or(self.default_weight);
        let t = self
            .tenants
            .entry(Arc::clone(tenant))
            .or_insert_with(|| Tenant {
                queue: VecDeque::new(),
                weight,
                deficit: 0,
                in_ring: false,
            });
        if t.queue.len() >= self.max_queued {
            return Err((item, Turned::TenantFull));
        }
        t.queue.push_back(item);
        self.len += 1;
        if !t.in_ring {
            t.in_ring = true;
            self.ring.push_back(Arc::clone(tenant));
        }
        Ok(())
    }

    /// The next request by weight, with its tenant. O(1): the tenant at the
    /// front is served; a tenant reaching the front earns its weight, and
    /// goes to the back once it has spent it.
    pub(crate) fn pop(&mut self) -> Option<(Arc<str>, T)> {
        let key = self.ring.front()?;
        let Some(t) = self.tenants.get_mut(key) else {
            // Cannot be: a tenant in the ring has a queue. Drop the stale key.
            debug_assert!(false, "a tenant in the ring has a queue");
            self.ring.pop_front();
            return self.pop();
        };
        if t.deficit == 0 {
            t.deficit = t.weight;
        }
        t.deficit -= 1;
        let Some(item) = t.queue.pop_front() else {
            debug_assert!(false, "a tenant in the ring has a request");
            let key = self.ring.pop_front()?;
            self.tenants.remove(&key);
            return self.pop();
        };
        self.len -= 1;
        let key = if t.queue.is_empty() {
            // Empty: it leaves the ring and its deficit goes, so idleness
            // earns no credit. It is kept for its return unless many are.
            t.deficit = 0;
            t.in_ring = false;
            let key = self.ring.pop_front()?;
            if self.tenants.len() > self.ring.len() + IDLE_KEPT {
                self.tenants.remove(&key);
            }
            key
        } else {
            let key = Arc::clone(key);
            if t.deficit == 0 {
                self.ring.rotate_left(1);
            }
            key
        };
        Some((key, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn drr(weights: &[(&str, u32)], max_queued: usize) -> Drr<u32> {
        Drr::new(
            weights.iter().map(|&(k, w)| (key(k), w)).collect(),
            1,
            max_queued,
        )
    }

    #[test]
    fn tenants_take_turns_by_weight() {
        let mut d = drr(&[("a", 2)], 100);
        for i in 0..6 {
            d.push(&key("a"), i).unwrap();
            d.push(&key("b"), 100 + i).unwrap();
        }
        let order: Vec<u32> = std::iter::from_fn(|| d.pop().map(|(_, x)| x)).collect();
        // a serves two per turn, b one, each in its own order.
        assert_eq!(order, [0, 1, 100, 2, 3, 101, 4, 5, 102, 103, 104, 105]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn a_tenant_at_its_bound_is_turned_away_and_others_are_not() {
        let mut d = drr(&[], 2);
        d.push(&key("a"), 1).unwrap();
        d.push(&key("a"), 2).unwrap();
        assert_eq!(d.push(&key("a"), 3), Err((3, Turned::TenantFull)));
        d.push(&key("b"), 4).unwrap();
        assert_eq!((d.queued("a"), d.queued("b"), d.len()), (2, 1, 3));
    }

    #[test]
    fn tenants_that_come_and_go_do_not_pile_up() {
        let mut d = drr(&[], 4);
        for i in 0..10_000u32 {
            d.push(&key(&format!("t{i}")), i).unwrap();
            assert_eq!(d.pop().map(|(_, x)| x), Some(i));
        }
        assert!(d.remembered() <= IDLE_KEPT + 1, "{}", d.remembered());
        assert_eq!(d.len(), 0);
    }

    proptest! {
        /// While every tenant has requests waiting, each is served within
        /// one turn of its weight's share, whatever the weights and the
        /// order of arrival; nothing is lost or served twice.
        #[test]
        fn service_follows_the_weights(
            weights in proptest::collection::vec(1u32..8, 1..6),
            arrivals in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let names: Vec<String> = (0..weights.len()).map(|i| format!("t{i}")).collect();
            let pairs: Vec<(&str, u32)> = names.iter().map(String::as_str).zip(weights.iter().copied()).collect();
            let mut d = drr(&pairs, usize::MAX);
            // Every tenant has plenty waiting.
            let per = 50u32;
            for (i, n) in names.iter().enumerate() {
                for j in 0..per {
                    d.push(&key(n), i as u32 * 1000 + j).unwrap();
                }
            }
            // And some arrive in any order.
            let mut extra = vec![0u32; names.len()];
            for a in &arrivals {
                let i = a.index(names.len());
                d.push(&key(&names[i]), i as u32 * 1000 + per + extra[i]).unwrap();
                extra[i] += 1;
            }
            let total_weight: u32 = weights.iter().sum();
            // Serve one full round of every weight: each tenant got exactly
            // its weight (no one ran dry: each had at least 50).
            let rounds = per / 8;
            let mut served = vec![0u32; names.len()];
            for _ in 0..rounds * total_weight {
                let (k, x) = d.pop().unwrap();
                let i = names.iter().position(|n| **n == *k).unwrap();
                prop_assert_eq!(x / 1000, i as u32);
                served[i] += 1;
            }
            for (i, w) in weights.iter().enumerate() {
                prop_assert_eq!(served[i], rounds * w, "tenant {} of weights {:?}", i, weights);
            }
            // Then everything comes out once, each tenant's in its order.
            let mut next = served.clone();
            while let Some((k, x)) = d.pop() {
                let i = names.iter().position(|n| **n == *k).unwrap();
                prop_assert_eq!(x, i as u32 * 1000 + next[i]);
                next[i] += 1;
            }
            for i in 0..names.len() {
                prop_assert_eq!(next[i], per + extra[i]);
            }
            prop_assert_eq!(d.len(), 0);
        }
    }
}
