//! Routing: which group's queue a request goes to.
//!
//! Groups are kept sorted by priority, highest first. A request is offered to
//! them in that order; among groups of equal priority the one with the least
//! in-flight work (queued plus running) goes first. A full queue passes the
//! request on to the next group, so backpressure reaches the caller only when
//! every eligible group is full. A request restricted to one group sees only
//! that group. A retry prefers groups that have not failed it yet, and falls
//! back to the ones that did only when no other exists.

#![forbid(unsafe_code)]

use crate::group::Group;

/// Most device groups in one pool (a retry remembers failed groups as bits of a `u64`).
pub const MAX_GROUPS: usize = 64;

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

/// The groups to offer a request to, best first.
pub(crate) fn candidates<I, O>(
    groups: &[Group<I, O>],
    has_ties: bool,
    only: Option<usize>,
    failed: u64,
    same_group_fallback: bool,
) -> Route {
    let mut r = Route {
        idx: [0; MAX_GROUPS],
        len: 0,
    };
    if let Some(g) = only {
        if same_group_fallback || failed & (1u64 << g) == 0 {
            r.idx[0] = g as u8;
            r.len = 1;
        }
        return r;
    }
    let all = if groups.len() >= MAX_GROUPS {
        u64::MAX
    } else {
        (1u64 << groups.len()) - 1
    };
    // Skip groups that failed this request; if every group has, any may
    // try again when the retry policy allows it.
    let exclude = if failed & all == all && same_group_fallback {
        0
    } else {
        failed
    };
    for gi in 0..groups.len() {
        if exclude & (1u64 << gi) == 0 {
            r.idx[r.len] = gi as u8;
            r.len += 1;
        }
    }
    if has_ties {
        // Stable sort keeps priority order; equal priorities by least load.
        r.idx[..r.len].sort_by_cached_key(|&gi| {
            let g = &groups[gi as usize];
            (std::cmp::Reverse(g.config.priority), g.in_flight())
        });
    }
    r
}
