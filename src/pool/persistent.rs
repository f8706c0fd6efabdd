//! What persists across a pool's generations: the ledger, the dead-letter
//! queue, request ids, the clock and memory probe, the factories by group
//! name, and the counts of generations a reload retired.

#![forbid(unsafe_code)]

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::generation::Generation;
use crate::core::{
    kept_for, Clock, Counter, CountsSnapshot, InputCache, Ledger, MemoryProbe, SessionFactory,
    SlotCache,
};
use crate::exec::pressure::PressureHook;
use crate::policy::DeadLetterQueue;

/// A group name and its session factory.
pub type NamedFactory<I, O> = (String, Arc<dyn SessionFactory<I, O>>);

/// The parts of a pool that outlive its generations.
pub(crate) struct Persistent<I, O> {
    ledger: Arc<Ledger>,
    /// Result slots for reuse.
    slots: Arc<SlotCache<O>>,
    /// Input boxes for reuse.
    inputs: Arc<InputCache<I>>,
    dlq: Arc<DeadLetterQueue<I>>,
    next_id: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
    probe: Arc<dyn MemoryProbe>,
    on_pressure: Option<Arc<PressureHook>>,
    supervisor_panics: Arc<Counter>,
    /// Seed of random routing when the configuration gives none.
    route_seed: u64,
    /// Requests routed between tied groups, across generations.
    route_turns: Arc<AtomicU64>,
    /// Factories by group name, for reloads that keep a group.
    factories: Mutex<Vec<NamedFactory<I, O>>>,
    /// Generations a reload replaced; its lock orders a reload's swap
    /// against a stats snapshot.
    history: Mutex<History<I, O>>,
}

impl<I, O> Persistent<I, O> {
    /// `queued`: the requests the pool's queues and workers can hold, which
    /// sizes its caches of result slots and input boxes.
    pub(crate) fn new(
        queued: usize,
        dlq: DeadLetterQueue<I>,
        clock: Arc<dyn Clock>,
        probe: Arc<dyn MemoryProbe>,
        on_pressure: Option<PressureHook>,
    ) -> Self {
        let ledger: Arc<Ledger> = Arc::default();
        let kept = kept_for(queued);
        Self {
            slots: SlotCache::new(Arc::clone(&ledger), kept),
            ledger,
            inputs: Arc::new(InputCache::new(kept)),
            dlq: Arc::new(dlq),
            next_id: Arc::new(AtomicU64::new(1)),
            clock,
            probe,
            on_pressure: on_pressure.map(Arc::new),
            supervisor_panics: Arc::default(),
            route_seed: {
                use std::hash::{BuildHasher, Hasher};
                // std's hasher keys are random per process and per instance.
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            },
            route_turns: Arc::default(),
            factories: Mutex::new(Vec::new()),
            history: Mutex::new(History::default()),
        }
    }

    pub(crate) fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub(crate) fn slots(&self) -> &Arc<SlotCache<O>> {
        &self.slots
    }

    pub(crate) fn inputs(&self) -> &Arc<InputCache<I>> {
        &self.inputs
    }

    pub(crate) fn dlq(&self) -> &Arc<DeadLetterQueue<I>> {
        &self.dlq
    }

    pub(crate) fn next_id(&self) -> &Arc<AtomicU64> {
        &self.next_id
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn probe(&self) -> &Arc<dyn MemoryProbe> {
        &self.probe
    }

    pub(crate) fn on_pressure(&self) -> Option<&Arc<PressureHook>> {
        self.on_pressure.as_ref()
    }

    /// Routing's default seed and its turn counter.
    pub(crate) fn routing(&self) -> (u64, &Arc<AtomicU64>) {
        (self.route_seed, &self.route_turns)
    }

    pub(crate) fn supervisor_panics(&self) -> &Arc<Counter> {
        &self.supervisor_panics
    }

    /// The factories of the running generation's groups.
    pub(crate) fn factories(&self) -> Vec<NamedFactory<I, O>> {
        self.factories.lock().clone()
    }

    pub(crate) fn set_factories(&self, f: Vec<NamedFactory<I, O>>) {
        *self.factories.lock() = f;
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History<I, O>> {
        self.history.lock()
    }
}

/// The attempt counts of generations a reload replaced. Workers count their
/// attempts (started, failed, retried) themselves and go with their
/// generation, so the pool keeps what they counted: pool-wide counters stay
/// monotonic across reloads.
pub(crate) struct History<I, O> {
    /// What retired generations' workers counted.
    carried: CountsSnapshot,
    /// Generations swapped out and still draining.
    draining: Vec<Arc<Generation<I, O>>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self {
            carried: CountsSnapshot::default(),
            draining: Vec::new(),
        }
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> History<I, O> {
    /// A generation starts draining.
    pub(crate) fn draining(&mut self, old: Arc<Generation<I, O>>) {
        self.draining.push(old);
    }

    /// A generation is done draining: keep its counts, let it go.
    pub(crate) fn retire(&mut self, old: &Arc<Generation<I, O>>) {
        self.draining.retain(|s| !Arc::ptr_eq(s, old));
        self.carried += old.attempt_counts();
    }

    /// Attempts counted by every generation but the current one.
    pub(crate) fn attempts(&self) -> CountsSnapshot {
        let mut all = self.carried;
        for s in &self.draining {
            all += s.attempt_counts();
        }
        all
    }
}
