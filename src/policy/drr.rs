//! Deficit round robin between tenants: the order in which one priority
//! level's requests are served when several tenants share it, and each
//! tenant's counts.
//!
//! Each tenant with requests waiting is in a ring. The tenant at the front
//! earns its weight in deficit, is served until it has spent it, and goes
//! to the back. Every request costs one, so over a busy period each tenant
//! is served in proportion to its weight, and a take is O(1). A tenant that
//! empties leaves the ring and forgets its deficit, so idleness earns no
//! credit; a tenant arriving waits at most one turn of the others.
//!
//! Tenants live in a slab and the ring holds their indices, so a push
//! hashes the tenant's name once and a pop not at all. Each tenant's counts
//! live with it; a tenant forgotten (past `IDLE_KEPT` idle ones) leaves its
//! counts in a bounded book (`TRACKED_TENANTS` names, the rest together).
//!
//! Pure: no locks, no clocks. The queue that owns it (`exec::fair`) holds
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

/// Forgotten tenants whose counts are kept by name; the rest count
/// together.
const TRACKED_TENANTS: usize = 256;

/// One tenant's counts in one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TenantCounts {
    pub(crate) accepted: u64,
    pub(crate) served: u64,
    pub(crate) refused: u64,
}

impl TenantCounts {
    pub(crate) fn add(&mut self, o: &TenantCounts) {
        self.accepted += o.accepted;
        self.served += o.served;
        self.refused += o.refused;
    }
}

/// One tenant's queue.
struct Tenant<T> {
    name: Arc<str>,
    queue: VecDeque<T>,
    weight: u32,
    deficit: u32,
    in_ring: bool,
    counts: TenantCounts,
}

/// A tenant's place in a [`Drr`], valid until the next pop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place(usize);

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turned {
    /// The tenant has `max_queued` requests waiting already.
    TenantFull,
}

/// Per-tenant queues served by weight.
pub(crate) struct Drr<T> {
    /// Tenants remembered; `None` slots are free (listed in `free`).
    slab: Vec<Option<Tenant<T>>>,
    free: Vec<usize>,
    index: HashMap<Arc<str>, usize>,
    /// Indices of the tenants with requests waiting, in serving order.
    ring: VecDeque<usize>,
    /// Requests waiting over all tenants.
    len: usize,
    max_queued: usize,
    default_weight: u32,
    weights: HashMap<Arc<str>, u32>,
    /// Counts of forgotten tenants (and refusals of unknown ones), bounded.
    book: HashMap<Arc<str>, TenantCounts>,
    other: TenantCounts,
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
            slab: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            ring: VecDeque::new(),
            len: 0,
            max_queued,
            default_weight: default_weight.max(1),
            weights,
            book: HashMap::new(),
            other: TenantCounts::default(),
        }
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Tenants remembered (waiting, or idle and kept).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.index.len()
    }

    /// `tenant`'s place, remembering it if it is new: what [`Drr::push`]
    /// takes, so the caller need not keep the name while it moves the
    /// request in.
    pub(crate) fn tenant(&mut self, tenant: &Arc<str>) -> Place {
        Place(self.place(tenant))
    }

    fn place(&mut self, tenant: &Arc<str>) -> usize {
        if let Some(&i) = self.index.get(&**tenant) {
            return i;
        }
        let weight = self
            .weights
            .get(&**tenant)
            .copied()
            .unwrap_or(self.default_weight);
        let t = Tenant {
            name: Arc::clone(tenant),
            queue: VecDeque::new(),
            weight,
            deficit: 0,
            in_ring: false,
            // Counts of an earlier life go on from where they were.
            counts: self.book.remove(&**tenant).unwrap_or_default(),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(t);
                i
            }
            None => {
                self.slab.push(Some(t));
                self.slab.len() - 1
            }
        };
        self.index.insert(Arc::clone(tenant), i);
        i
    }

    /// Queues `item` for the tenant at `place` (from [`Drr::tenant`], with
    /// no pop in between), or hands it back when that tenant has
    /// `max_queued` waiting (counted as refused).
    pub(crate) fn push(&mut self, place: Place, item: T) -> Result<(), (T, Turned)> {
        let i = place.0;
        let Some(t) = self.slab.get_mut(i).and_then(Option::as_mut) else {
            debug_assert!(false, "a place is taken just before its push");
            return Err((item, Turned::TenantFull));
        };
        if t.queue.len() >= self.max_queued {
            t.counts.refused += 1;
            return Err((item, Turned::TenantFull));
        }
        t.queue.push_back(item);
        t.counts.accepted += 1;
        self.len += 1;
        if !t.in_ring {
            t.in_ring = true;
            self.ring.push_back(i);
        }
        Ok(())
    }

    /// Counts a request of the tenant at `place` refused because the
    /// level was full.
    pub(crate) fn refused(&mut self, place: Place) {
        let Some(t) = self.slab.get_mut(place.0).and_then(Option::as_mut) else {
            return;
        };
        t.counts.refused += 1;
        // A tenant met only here never waits: past the idle ones kept, it
        // is forgotten at once, so refusals cannot pile up names.
        if !t.in_ring && self.index.len() > self.ring.len() + IDLE_KEPT {
            self.forget(place.0);
        }
    }

    /// The book's counts for `tenant` (by name while there is room).
    fn book_entry(&mut self, tenant: &Arc<str>) -> &mut TenantCounts {
        if !self.book.contains_key(&**tenant) && self.book.len() >= TRACKED_TENANTS {
            return &mut self.other;
        }
        self.book.entry(Arc::clone(tenant)).or_default()
    }

    /// The next request by weight. O(1): the tenant at the front is served;
    /// a tenant reaching the front earns its weight, and goes to the back
    /// once it has spent it.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let i = *self.ring.front()?;
        let t = self.slab[i].as_mut()?;
        if t.deficit == 0 {
            t.deficit = t.weight;
        }
        t.deficit -= 1;
        let item = t.queue.pop_front()?;
        t.counts.served += 1;
        self.len -= 1;
        if t.queue.is_empty() {
            // Empty: it leaves the ring and its deficit goes, so idleness
            // earns no credit. It is kept for its return unless many are.
            t.deficit = 0;
            t.in_ring = false;
            self.ring.pop_front();
            if self.index.len() > self.ring.len() + IDLE_KEPT {
                self.forget(i);
            }
        } else if t.deficit == 0 {
            self.ring.rotate_left(1);
        }
        Some(item)
    }

    /// Forgets the idle tenant at `i`, keeping its counts in the book.
    fn forget(&mut self, i: usize) {
        let Some(t) = self.slab[i].take() else { return };
        self.index.remove(&*t.name);
        self.free.push(i);
        self.book_entry(&t.name).add(&t.counts);
    }

    /// Every tenant's counts (remembered ones with their requests waiting,
    /// then the book's), and the book's `other`.
    pub(crate) fn counts(&self) -> (Vec<(Arc<str>, TenantCounts, usize)>, TenantCounts) {
        let live = self
            .slab
            .iter()
            .flatten()
            .map(|t| (Arc::clone(&t.name), t.counts, t.queue.len()));
        let book = self.book.iter().map(|(n, c)| (Arc::clone(n), *c, 0));
        (live.chain(book).collect(), self.other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn push(d: &mut Drr<u32>, tenant: &Arc<str>, x: u32) -> Result<(), (u32, Turned)> {
        let place = d.tenant(tenant);
        d.push(place, x)
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
            push(&mut d, &key("a"), i).unwrap();
            push(&mut d, &key("b"), 100 + i).unwrap();
        }
        let order: Vec<u32> = std::iter::from_fn(|| d.pop()).collect();
        // a serves two per turn, b one, each in its own order.
        assert_eq!(order, [0, 1, 100, 2, 3, 101, 4, 5, 102, 103, 104, 105]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn a_tenant_at_its_bound_is_turned_away_and_others_are_not() {
        let mut d = drr(&[], 2);
        push(&mut d, &key("a"), 1).unwrap();
        push(&mut d, &key("a"), 2).unwrap();
        assert_eq!(push(&mut d, &key("a"), 3), Err((3, Turned::TenantFull)));
        push(&mut d, &key("b"), 4).unwrap();
        assert_eq!(d.len(), 3);
        let (counts, _) = d.counts();
        let of = |n: &str| {
            counts
                .iter()
                .find(|c| &*c.0 == n)
                .map(|c| (c.1.accepted, c.1.refused, c.2))
        };
        assert_eq!((of("a"), of("b")), (Some((2, 1, 2)), Some((1, 0, 1))));
    }

    #[test]
    fn tenants_refused_at_a_full_level_do_not_pile_up() {
        let mut d = drr(&[], 4);
        for i in 0..10_000u32 {
            let place = d.tenant(&key(&format!("t{i}")));
            d.refused(place);
        }
        assert!(d.remembered() <= IDLE_KEPT + 1, "{}", d.remembered());
        let (counts, other) = d.counts();
        let refused: u64 = counts.iter().map(|c| c.1.refused).sum::<u64>() + other.refused;
        assert_eq!(refused, 10_000);
    }

    #[test]
    fn tenants_that_come_and_go_do_not_pile_up() {
        let mut d = drr(&[], 4);
        for i in 0..10_000u32 {
            push(&mut d, &key(&format!("t{i}")), i).unwrap();
            assert_eq!(d.pop(), Some(i));
        }
        assert!(d.remembered() <= IDLE_KEPT + 1, "{}", d.remembered());
        assert_eq!(d.len(), 0);
        // Their counts stay, bounded: by name for the first ones, the
        // rest together.
        let (counts, other) = d.counts();
        assert!(counts.len() <= IDLE_KEPT + 1 + TRACKED_TENANTS);
        let served: u64 = counts.iter().map(|c| c.1.served).sum::<u64>() + other.served;
        assert_eq!(served, 10_000);
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
                    push(&mut d, &key(n), i as u32 * 1000 + j).unwrap();
                }
            }
            // And some arrive in any order.
            let mut extra = vec![0u32; names.len()];
            for a in &arrivals {
                let i = a.index(names.len());
                push(&mut d, &key(&names[i]), i as u32 * 1000 + per + extra[i]).unwrap();
                extra[i] += 1;
            }
            let total_weight: u32 = weights.iter().sum();
            // Serve one full round of every weight: each tenant got exactly
            // its weight (no one ran dry: each had at least 50).
            let rounds = per / 8;
            let mut served = vec![0u32; names.len()];
            for _ in 0..rounds * total_weight {
                let x = d.pop().unwrap();
                let i = (x / 1000) as usize;
                served[i] += 1;
            }
            for (i, w) in weights.iter().enumerate() {
                prop_assert_eq!(served[i], rounds * w, "tenant {} of weights {:?}", i, weights);
            }
            // Then everything comes out once, each tenant's in its order.
            let mut next = served.clone();
            while let Some(x) = d.pop() {
                let i = (x / 1000) as usize;
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
