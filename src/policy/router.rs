//! Routing: which groups a request is offered to, in which order.
//!
//! Groups are kept sorted by priority, highest first. A request is offered to
//! them in that order; among groups of equal priority the routing strategy
//! ([`RoutingStrategy`]) says which goes first: the one with the least
//! in-flight work (queued plus running), the next in turn, or one drawn at
//! random (uniformly or by weight); the others of that priority follow in
//! turn from it. A full queue passes the
//! request on to the next group, so backpressure reaches the caller only when
//! every eligible group is full. A request restricted to one group sees only
//! that group. A retry prefers groups that have not failed it yet, and falls
//! back to the ones that did only when no other exists.
//!
//! A group with no healthy worker is left out. Pure: the caller says how
//! many groups there are and how to read one's health, priority and load
//! ([`Groups`]); breakers and input checks are the caller's as it walks the
//! route.

#![forbid(unsafe_code)]

use crate::config::RoutingStrategy;
use crate::core::MAX_GROUPS;

/// Group indices in the order to try them.
pub(crate) struct Route {
    idx: [u8; MAX_GROUPS],
    len: usize,
}

impl Route {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.idx[..self.len]
    }
}

/// The bit set of `n` groups.
fn all_of(n: usize) -> u64 {
    if n >= MAX_GROUPS {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Who may take a request: restricted to one group or not, which groups
/// failed it, and whether a failed group may try again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Eligibility {
    pub(crate) only: Option<usize>,
    pub(crate) failed: u64,
    pub(crate) same_group_fallback: bool,
}

/// What the router reads of the groups, by index: they are sorted by
/// priority, highest first.
pub(crate) trait Groups {
    /// How many.
    fn count(&self) -> usize;
    /// Whether two of them share a priority (then the strategy applies).
    fn has_ties(&self) -> bool;
    /// Whether group `g` has a healthy worker.
    fn healthy(&self, g: usize) -> bool;
    /// Group `g`'s priority.
    fn priority(&self, g: usize) -> u8;
    /// Group `g`'s in-flight load (read by `least_loaded` only).
    fn load(&self, g: usize) -> usize;
    /// Group `g`'s weight (read by `weighted` only).
    fn weight(&self, g: usize) -> u32;
}

/// How to order groups of equal priority for one request: the strategy and
/// the request's ticket (a turn counter for `round_robin`, a random draw
/// for `random` and `weighted`, unused by `least_loaded`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pick {
    pub(crate) strategy: RoutingStrategy,
    pub(crate) ticket: u64,
}

/// `x * n / 2^64`: a uniform 64-bit draw scaled to `0..n` without the bias
/// of `x % n` worth speaking of.
fn scale(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

/// Orders a run of equal-priority groups (`block`, in index order) for one
/// request: by load for `least_loaded` (stable: ties keep index order);
/// otherwise turned so that the strategy's pick leads and the rest follow
/// in turn.
fn order(groups: &impl Groups, block: &mut [u8], pick: Pick) {
    if pick.strategy == RoutingStrategy::LeastLoaded {
        block.sort_by_cached_key(|&g| groups.load(g as usize));
    } else {
        let first = first_of(groups, block, pick);
        block.rotate_left(first);
    }
}

/// Which of a run of equal-priority groups goes first under a drawing
/// strategy.
fn first_of(groups: &impl Groups, block: &[u8], pick: Pick) -> usize {
    let n = block.len() as u64;
    match pick.strategy {
        RoutingStrategy::LeastLoaded => 0, // ordered by `order`
        RoutingStrategy::RoundRobin => (pick.ticket % n) as usize,
        RoutingStrategy::Random => scale(pick.ticket, n) as usize,
        RoutingStrategy::Weighted => {
            let total: u64 = block
                .iter()
                .map(|&g| u64::from(groups.weight(g as usize)))
                .sum();
            let mut x = scale(pick.ticket, total.max(1));
            for (i, &g) in block.iter().enumerate() {
                let w = u64::from(groups.weight(g as usize));
                if x < w {
                    return i;
                }
                x -= w;
            }
            0
        }
    }
}

/// The healthy groups to offer a request to, best first.
pub(crate) fn candidates(groups: &impl Groups, who: Eligibility, pick: Pick) -> Route {
    let mut r = Route {
        idx: [0; MAX_GROUPS],
        len: 0,
    };
    if let Some(g) = who.only {
        if (who.same_group_fallback || who.failed & (1u64 << g) == 0) && groups.healthy(g) {
            r.idx[0] = g as u8;
            r.len = 1;
        }
        return r;
    }
    let n = groups.count().min(MAX_GROUPS);
    let all = all_of(n);
    // Skip groups that failed this request; if every group has, any may
    // try again when the retry policy allows it.
    let exclude = if who.failed & all == all && who.same_group_fallback {
        0
    } else {
        who.failed
    };
    for gi in 0..n {
        if exclude & (1u64 << gi) == 0 && groups.healthy(gi) {
            r.idx[r.len] = gi as u8;
            r.len += 1;
        }
    }
    if groups.has_ties() {
        // Groups are in priority order: each run of equal priorities is
        // turned so that the strategy's pick leads it.
        let mut start = 0;
        while start < r.len {
            let p = groups.priority(r.idx[start] as usize);
            let mut end = start + 1;
            while end < r.len && groups.priority(r.idx[end] as usize) == p {
                end += 1;
            }
            if end - start > 1 {
                order(groups, &mut r.idx[start..end], pick);
            }
            start = end;
        }
    }
    r
}

/// Whether a failed request has a group to go to: one that has not failed
/// it, or any group when `same_group_fallback` allows.
pub(crate) fn may_retry_somewhere(groups: usize, who: Eligibility) -> bool {
    if who.same_group_fallback {
        return true;
    }
    match who.only {
        Some(g) => who.failed & (1u64 << g) == 0,
        None => who.failed & all_of(groups) != all_of(groups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (priority, load, healthy) per group.
    struct View(Vec<(u8, usize, bool)>);

    impl Groups for View {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn has_ties(&self) -> bool {
            self.0.windows(2).any(|w| w[0].0 == w[1].0)
        }
        fn healthy(&self, g: usize) -> bool {
            self.0[g].2
        }
        fn priority(&self, g: usize) -> u8 {
            self.0[g].0
        }
        fn load(&self, g: usize) -> usize {
            self.0[g].1
        }
        fn weight(&self, g: usize) -> u32 {
            // The load doubles as the weight in these tests.
            self.0[g].1 as u32 + 1
        }
    }

    const LEAST_LOADED: Pick = Pick {
        strategy: RoutingStrategy::LeastLoaded,
        ticket: 0,
    };

    fn route_by(groups: &[(u8, usize, bool)], who: Eligibility, pick: Pick) -> Vec<usize> {
        candidates(&View(groups.to_vec()), who, pick)
            .as_slice()
            .iter()
            .map(|&g| g as usize)
            .collect()
    }

    fn route(groups: &[(u8, usize, bool)], who: Eligibility) -> Vec<usize> {
        route_by(groups, who, LEAST_LOADED)
    }

    const ANYONE: Eligibility = Eligibility {
        only: None,
        failed: 0,
        same_group_fallback: true,
    };

    /// Which group leads for each of `n` tickets spread evenly over the
    /// 64-bit range (the draws of a perfect generator).
    fn leaders(groups: &[(u8, usize, bool)], strategy: RoutingStrategy, n: u64) -> Vec<usize> {
        let mut count = vec![0; groups.len()];
        let step = u64::MAX / n;
        for i in 0..n {
            let ticket = match strategy {
                RoutingStrategy::RoundRobin => i,
                _ => i * step + step / 2,
            };
            count[route_by(groups, ANYONE, Pick { strategy, ticket })[0]] += 1;
        }
        count
    }

    #[test]
    fn round_robin_takes_turns_within_a_priority() {
        let groups = [(7, 0, true), (5, 9, true), (5, 0, true), (5, 4, true)];
        let rr = |ticket| {
            route_by(
                &groups,
                ANYONE,
                Pick {
                    strategy: RoutingStrategy::RoundRobin,
                    ticket,
                },
            )
        };
        // The higher priority always first; the three of priority 5 in turn,
        // each followed by the others in turn.
        assert_eq!(rr(0), [0, 1, 2, 3]);
        assert_eq!(rr(1), [0, 2, 3, 1]);
        assert_eq!(rr(2), [0, 3, 1, 2]);
        assert_eq!(rr(3), [0, 1, 2, 3]);
        // An unhealthy group leaves the turn to the others.
        let mut sick = groups;
        sick[2].2 = false;
        let leads: Vec<_> = (0..4)
            .map(|ticket| {
                let pick = Pick {
                    strategy: RoutingStrategy::RoundRobin,
                    ticket,
                };
                route_by(&sick, ANYONE, pick)[1]
            })
            .collect();
        assert_eq!(leads, [1, 3, 1, 3]);
    }

    #[test]
    fn random_draws_uniformly_and_weighted_by_weight() {
        let groups = [(5, 0, true), (5, 2, true), (5, 5, true)];
        assert_eq!(
            leaders(&groups, RoutingStrategy::Random, 3000),
            [1000, 1000, 1000]
        );
        // Weights 1, 3 and 6 (load + 1 in these tests).
        assert_eq!(
            leaders(&groups, RoutingStrategy::Weighted, 1000),
            [100, 300, 600]
        );
        assert_eq!(
            leaders(&groups, RoutingStrategy::LeastLoaded, 10),
            [10, 0, 0]
        );
    }

    /// Groups sorted by priority, highest first, as a pool keeps them.
    fn sorted_groups() -> impl Strategy<Value = Vec<(u8, usize, bool)>> {
        let group = (1u8..=10, 0usize..100, prop::bool::weighted(0.8));
        proptest::collection::vec(group, 1..=MAX_GROUPS).prop_map(|mut g| {
            g.sort_by_key(|&(p, _, _)| std::cmp::Reverse(p));
            g
        })
    }

    proptest! {
        /// Never an unhealthy group, nor one that failed the request (unless
        /// every group did and the fallback allows); never twice; always
        /// priority order, and by least load among equal priorities.
        #[test]
        fn routes_by_priority_then_load_and_skips_failed_groups(
            groups in sorted_groups(),
            failed in any::<u64>(),
            fallback in any::<bool>(),
            ticket in any::<u64>(),
        ) {
            let who = Eligibility { only: None, failed, same_group_fallback: fallback };
            let r = route(&groups, who);
            // Every strategy offers the same groups in the same priority order.
            for strategy in [RoutingStrategy::RoundRobin, RoutingStrategy::Random, RoutingStrategy::Weighted] {
                let other = route_by(&groups, who, Pick { strategy, ticket });
                let mut a = other.clone();
                let mut b = r.clone();
                a.sort_unstable();
                b.sort_unstable();
                prop_assert_eq!(a, b);
                for w in other.windows(2) {
                    prop_assert!(groups[w[0]].0 >= groups[w[1]].0);
                }
            }
            let all = all_of(groups.len());
            let everyone_failed = failed & all == all;
            let eligible = |g: usize| {
                groups[g].2 && (failed & (1 << g) == 0 || (everyone_failed && fallback))
            };
            for &g in &r {
                prop_assert!(g < groups.len());
                prop_assert!(eligible(g));
            }
            let mut seen = r.clone();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), r.len());
            let expected = (0..groups.len()).filter(|&g| eligible(g)).count();
            prop_assert_eq!(r.len(), expected);
            for w in r.windows(2) {
                let (a, b) = (groups[w[0]], groups[w[1]]);
                prop_assert!(a.0 > b.0 || (a.0 == b.0 && a.1 <= b.1), "{:?} before {:?}", a, b);
            }
            // Where no failed-group rule leaves a healthy group, a retry
            // has nowhere to go: the route is empty exactly then.
            if groups.iter().all(|g| g.2) {
                prop_assert_eq!(r.is_empty(), !may_retry_somewhere(groups.len(), who));
            }
        }

        /// A restricted request sees its own group only, and not at all once
        /// that group failed it unless the fallback allows.
        #[test]
        fn a_restricted_request_sees_only_its_group(
            groups in sorted_groups(),
            pick in any::<prop::sample::Index>(),
            failed in any::<u64>(),
            fallback in any::<bool>(),
        ) {
            let only = pick.index(groups.len());
            let who = Eligibility { only: Some(only), failed, same_group_fallback: fallback };
            let r = route(&groups, who);
            let allowed = fallback || failed & (1 << only) == 0;
            let healthy = groups[only].2;
            prop_assert_eq!(r, if allowed && healthy { vec![only] } else { vec![] });
            prop_assert_eq!(may_retry_somewhere(groups.len(), who), allowed);
        }
    }
}
