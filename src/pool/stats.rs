//! [`Pool::stats`]: one snapshot assembled from every layer's own.

#![forbid(unsafe_code)]

use super::Pool;
use crate::core::{HealthSummary, Latencies, PoolStats};

impl<I: Send + Sync + 'static, O: Send + 'static> Pool<I, O> {
    /// A snapshot of every counter, queue depth, latency, breaker and
    /// health state.
    pub fn stats(&self) -> PoolStats {
        // The history lock first: a reload swaps generations under it.
        let history = self.persistent.history();
        let s = &*self.current.load_full();
        let now = s.time().nanos();
        let groups: Vec<_> = s.groups().groups().iter().map(|g| g.stats(now)).collect();
        let mut counts = s.ledger().snapshot();
        counts += history.attempts();
        drop(history);
        for g in &groups {
            counts += g.counts.attempts();
        }
        let workers: Vec<_> = s
            .groups()
            .groups()
            .iter()
            .flat_map(|g| g.all_workers())
            .collect();
        // From the same per-worker readings as the group stats, so the
        // snapshot agrees with itself.
        let parked_workers = groups
            .iter()
            .flat_map(|g| &g.workers)
            .filter(|w| w.parked)
            .count();
        PoolStats {
            memory: s.pressure().stats(parked_workers),
            counts,
            refusals: self.persistent.ledger().refusals(),
            in_flight: s.ledger().in_flight(),
            late_results_discarded: s.ledger().late_results(),
            waits_parked: s.ledger().waits_parked(),
            supervisor_panics: self.persistent.supervisor_panics().get(),
            supervisor_checks: s.checks(),
            dead_letter: self.persistent.dlq().stats(),
            latency: Latencies::snapshot(workers.iter().map(|w| w.latency())),
            health: HealthSummary::of(&groups),
            routing: s.groups().strategy(),
            groups,
        }
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> Pool<I, O> {
    /// How long a request of priority `p` submitted now would take to its
    /// result, as deadline-aware admission estimates it: the shortest over
    /// the healthy groups (see [`DeadlineAdmission`](crate::DeadlineAdmission)
    /// for the formula), whether or not admission is on. `None` until a
    /// group has finished a call.
    pub fn estimate(&self, p: crate::core::Priority) -> Option<std::time::Duration> {
        self.current.load().groups().estimate(p)
    }
}

#[cfg(feature = "metrics")]
impl<I: Send + Sync + 'static, O: Send + 'static> Pool<I, O> {
    /// The stats in the Prometheus text format (feature `metrics`); see
    /// [`metrics::render`](crate::metrics::render).
    pub fn prometheus(&self) -> String {
        crate::metrics::render(&self.stats())
    }
}

/// A shared pool is a stats source for the metrics endpoint.
#[cfg(feature = "metrics")]
impl<I: Send + Sync + 'static, O: Send + 'static> crate::metrics::server::StatsSource
    for std::sync::Arc<Pool<I, O>>
{
    fn stats(&self) -> PoolStats {
        Pool::stats(self)
    }
}
