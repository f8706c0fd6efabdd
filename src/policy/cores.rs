//! The core budget: which cores a new model's pinned workers get, given
//! the cores the models already running hold.

#![forbid(unsafe_code)]

/// A model's cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allotment {
    /// The cores, in the order its pinned workers take them (round robin).
    pub(crate) cores: Vec<usize>,
    /// Whether any of its workers shares a core with another worker (of
    /// this model or another).
    pub(crate) shared: bool,
}

/// Not enough free cores, and sharing is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shortfall {
    /// Pinned workers the model has.
    pub(crate) need: usize,
    /// Cores of the budget no model holds.
    pub(crate) free: usize,
    /// Cores in the budget.
    pub(crate) budget: usize,
}

/// Cores for a model with `need` pinned workers. `held[i]` is how many
/// workers of running models hold `budget[i]`. Free cores are given first,
/// in budget order, one per worker. When too few are free: with `share`,
/// the least held cores are given (the workers then share); without, the
/// model does not fit.
pub(crate) fn allot(
    budget: &[usize],
    held: &[usize],
    need: usize,
    share: bool,
) -> Result<Allotment, Shortfall> {
    debug_assert_eq!(budget.len(), held.len());
    let free: Vec<usize> = (0..budget.len()).filter(|&i| held[i] == 0).collect();
    if need <= free.len() {
        return Ok(Allotment {
            cores: free[..need].iter().map(|&i| budget[i]).collect(),
            shared: false,
        });
    }
    if !share || budget.is_empty() {
        return Err(Shortfall {
            need,
            free: free.len(),
            budget: budget.len(),
        });
    }
    // Least held first (stable: budget order among equals).
    let mut order: Vec<usize> = (0..budget.len()).collect();
    order.sort_by_key(|&i| held[i]);
    let take = need.min(budget.len());
    let cores: Vec<usize> = order[..take].iter().map(|&i| budget[i]).collect();
    let shared = need > take || order[..take].iter().any(|&i| held[i] > 0);
    Ok(Allotment { cores, shared })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn free_cores_first_then_sharing_only_when_allowed() {
        let budget = [4, 5, 6];
        let a = allot(&budget, &[0, 0, 0], 2, false).unwrap();
        assert_eq!(
            a,
            Allotment {
                cores: vec![4, 5],
                shared: false
            }
        );
        let b = allot(&budget, &[1, 1, 0], 1, false).unwrap();
        assert_eq!(
            b,
            Allotment {
                cores: vec![6],
                shared: false
            }
        );
        let short = allot(&budget, &[1, 1, 1], 1, false).unwrap_err();
        assert_eq!(
            short,
            Shortfall {
                need: 1,
                free: 0,
                budget: 3
            }
        );
        let shared = allot(&budget, &[2, 1, 1], 2, true).unwrap();
        assert_eq!(
            shared,
            Allotment {
                cores: vec![5, 6],
                shared: true
            }
        );
        // More workers than the budget: every core, shared.
        let all = allot(&budget, &[0, 0, 0], 5, true).unwrap();
        assert_eq!(
            all,
            Allotment {
                cores: vec![4, 5, 6],
                shared: true
            }
        );
        // No pinned worker: no core.
        assert_eq!(
            allot(&budget, &[1, 1, 1], 0, false).unwrap().cores,
            Vec::<usize>::new()
        );
    }

    proptest! {
        /// Without sharing, a model never gets a core another holds, nor one
        /// twice; it fits exactly when enough cores are free.
        #[test]
        fn without_sharing_no_core_is_pinned_twice(
            held in proptest::collection::vec(0usize..3, 1..16),
            need in 0usize..20,
        ) {
            let budget: Vec<usize> = (0..held.len()).map(|i| i * 2).collect();
            let free = held.iter().filter(|&&h| h == 0).count();
            match allot(&budget, &held, need, false) {
                Ok(a) => {
                    prop_assert!(need <= free);
                    prop_assert_eq!(a.cores.len(), need);
                    prop_assert!(!a.shared);
                    let mut seen = a.cores.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    prop_assert_eq!(seen.len(), need);
                    for c in &a.cores {
                        prop_assert_eq!(held[c / 2], 0);
                    }
                }
                Err(s) => prop_assert!(need > free && s.free == free),
            }
            // With sharing it always fits (the budget is not empty), and says
            // so exactly when a core is held or used twice.
            let a = allot(&budget, &held, need, true).unwrap();
            prop_assert_eq!(a.cores.len(), need.min(budget.len()));
            let doubled = need > budget.len() || a.cores.iter().any(|c| held[c / 2] > 0);
            prop_assert_eq!(a.shared, doubled);
        }
    }
}
