//! Deficit round robin: the order in which the tenants of one priority
//! level are served.
//!
//! Each tenant with requests waiting is in a ring. The tenant at the front
//! earns its weight in deficit, is served until it has spent it, and goes
//! to the back. Every request costs one, so over a busy period each tenant
//! is served in proportion to its weight, and a take is O(1). A tenant that
//! empties leaves the ring and forgets its deficit, so idleness earns no
//! credit; a tenant arriving waits at most one turn of the others.
//!
//! Pure: the ring holds the tenants' keys and deficits, not their requests
//! (`exec::fair` keeps those in per-tenant queues, and the ring under the
//! workers' lock).

#![forbid(unsafe_code)]

use std::collections::VecDeque;

/// The key of requests that name no tenant.
pub(crate) const DEFAULT_TENANT: &str = "";

/// A tenant in the ring.
struct Turn<K> {
    key: K,
    weight: u32,
    deficit: u32,
}

/// The ring of the tenants with requests waiting.
pub(crate) struct Drr<K> {
    ring: VecDeque<Turn<K>>,
}

impl<K> Default for Drr<K> {
    fn default() -> Self {
        Self {
            ring: VecDeque::new(),
        }
    }
}

impl<K> Drr<K> {
    /// Tenants in the ring.
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// A tenant that had nothing waiting has a request: it joins the back
    /// of the ring with no deficit. `weight` is at least one.
    pub(crate) fn activate(&mut self, key: K, weight: u32) {
        self.ring.push_back(Turn {
            key,
            weight: weight.max(1),
            deficit: 0,
        });
    }

    /// The tenant to serve next: the front one, which earns its weight when
    /// its turn begins. Follow with [`Drr::served`] or [`Drr::skip`].
    pub(crate) fn front(&mut self) -> Option<&mut K> {
        let t = self.ring.front_mut()?;
        if t.deficit == 0 {
            t.deficit = t.weight;
        }
        Some(&mut t.key)
    }

    /// The front tenant was served one request; `emptied`: it has nothing
    /// more waiting, and leaves the ring (its deficit forgotten). Otherwise
    /// it goes to the back once its deficit is spent. Returns the key of a
    /// tenant that left.
    pub(crate) fn served(&mut self, emptied: bool) -> Option<K> {
        let t = self.ring.front_mut()?;
        t.deficit = t.deficit.saturating_sub(1);
        if emptied {
            return self.ring.pop_front().map(|t| t.key);
        }
        if t.deficit == 0 {
            self.ring.rotate_left(1);
        }
        None
    }

    /// The front tenant had nothing to take just now (its request is on
    /// its way in): it goes to the back, keeping its deficit.
    pub(crate) fn skip(&mut self) {
        if !self.ring.is_empty() {
            self.ring.rotate_left(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ring over plain queues: tenant `i`'s requests in `queues[i]`.
    struct Sim {
        drr: Drr<usize>,
        queues: Vec<VecDeque<u32>>,
        weights: Vec<u32>,
    }

    impl Sim {
        fn new(weights: &[u32]) -> Self {
            Self {
                drr: Drr::default(),
                queues: vec![VecDeque::new(); weights.len()],
                weights: weights.to_vec(),
            }
        }

        fn push(&mut self, tenant: usize, x: u32) {
            if self.queues[tenant].is_empty() {
                self.drr.activate(tenant, self.weights[tenant]);
            }
            self.queues[tenant].push_back(x);
        }

        fn pop(&mut self) -> Option<u32> {
            let t = *self.drr.front()?;
            let x = self.queues[t].pop_front()?;
            self.drr.served(self.queues[t].is_empty());
            Some(x)
        }
    }

    #[test]
    fn tenants_take_turns_by_weight() {
        let mut s = Sim::new(&[2, 1]);
        for i in 0..6 {
            s.push(0, i);
            s.push(1, 100 + i);
        }
        let order: Vec<u32> = std::iter::from_fn(|| s.pop()).collect();
        // a serves two per turn, b one, each in its own order.
        assert_eq!(order, [0, 1, 100, 2, 3, 101, 4, 5, 102, 103, 104, 105]);
        assert_eq!(s.drr.len(), 0);
    }

    #[test]
    fn a_skipped_tenant_keeps_its_turn_and_deficit() {
        let mut d = Drr::default();
        d.activate("a", 2);
        d.activate("b", 1);
        assert_eq!(d.front().copied(), Some("a"));
        assert_eq!(d.served(false), None);
        // `a` has one left of its turn, but nothing to take yet.
        d.skip();
        assert_eq!(d.front().copied(), Some("b"));
        assert_eq!(d.served(true), Some("b"));
        // Back to `a`, which spends the rest of its turn, then empties.
        assert_eq!(d.front().copied(), Some("a"));
        assert_eq!(d.served(true), Some("a"));
        assert_eq!((d.len(), d.front().copied()), (0, None));
    }

    proptest! {
        /// While every tenant has requests waiting, each is served exactly
        /// its weight per round, whatever the weights and the order of
        /// arrival; nothing is lost or served twice.
        #[test]
        fn service_follows_the_weights(
            weights in proptest::collection::vec(1u32..8, 1..6),
            arrivals in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let mut s = Sim::new(&weights);
            let per = 50u32;
            for i in 0..weights.len() {
                for j in 0..per {
                    s.push(i, i as u32 * 1000 + j);
                }
            }
            let mut extra = vec![0u32; weights.len()];
            for a in &arrivals {
                let i = a.index(weights.len());
                s.push(i, i as u32 * 1000 + per + extra[i]);
                extra[i] += 1;
            }
            let total_weight: u32 = weights.iter().sum();
            let rounds = per / 8;
            let mut served = vec![0u32; weights.len()];
            for _ in 0..rounds * total_weight {
                let x = s.pop().unwrap();
                served[(x / 1000) as usize] += 1;
            }
            for (i, w) in weights.iter().enumerate() {
                prop_assert_eq!(served[i], rounds * w, "tenant {} of weights {:?}", i, weights);
            }
            let mut next = served.clone();
            while let Some(x) = s.pop() {
                let i = (x / 1000) as usize;
                prop_assert_eq!(x, i as u32 * 1000 + next[i]);
                next[i] += 1;
            }
            for i in 0..weights.len() {
                prop_assert_eq!(next[i], per + extra[i]);
            }
            prop_assert_eq!(s.drr.len(), 0);
        }
    }
}
