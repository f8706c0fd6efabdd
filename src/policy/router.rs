//! Routing: which groups a request is offered to, in which order.
//!
//! Groups are kept sorted by priority, highest first. A request is offered to
//! them in that order; among groups of equal priority the one with the least
//! in-flight work (queued plus running) goes first. A full queue passes the
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
    /// Whether two of them share a priority (then [`Groups::rank`] is read).
    fn has_ties(&self) -> bool;
    /// Whether group `g` has a healthy worker.
    fn healthy(&self, g: usize) -> bool;
    /// Group `g`'s priority and in-flight load.
    fn rank(&self, g: usize) -> (u8, usize);
}

/// The healthy groups to offer a request to, best first.
pub(crate) fn candidates(groups: &impl Groups, who: Eligibility) -> Route {
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
        // Stable sort keeps priority order; equal priorities by least load.
        r.idx[..r.len].sort_by_cached_key(|&gi| {
            let (priority, load) = groups.rank(gi as usize);
            (std::cmp::Reverse(priority), load)
        });
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
        fn rank(&self, g: usize) -> (u8, usize) {
            (self.0[g].0, self.0[g].1)
        }
    }

    fn route(groups: &[(u8, usize, bool)], who: Eligibility) -> Vec<usize> {
        candidates(&View(groups.to_vec()), who)
            .as_slice()
            .iter()
            .map(|&g| g as usize)
            .collect()
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
        ) {
            let who = Eligibility { only: None, failed, same_group_fallback: fallback };
            let r = route(&groups, who);
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
