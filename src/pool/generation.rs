//! A generation: one configuration's groups, workers and supervisor, and
//! the handles that wire them (the admission gate, the retry path, the
//! pressure state). A reload starts a new generation and stops the old one.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use parking_lot::Mutex;

use super::error::BuildError;
use super::persistent::{NamedFactory, Persistent};
use crate::config::{ConfigError, PoolConfig};
use crate::core::{Counter, CountsSnapshot, Job, Ledger, SlotCache, Timebase, MAX_GROUPS};
use crate::exec::admission::Gate;
use crate::exec::dispatch::Dispatch;
use crate::exec::drain::{self, Drain, Parts, Stopped};
use crate::exec::group::{spawn_worker, Group};
use crate::exec::pinning::{self, CorePlan};
use crate::exec::pressure::{Controller, PressureState};
use crate::exec::retries::Retries;
use crate::exec::supervisor::{self, Supervised, SupervisorThread};
use crate::exec::worker::WorkerCtx;

/// One running configuration.
pub(crate) struct Generation<I, O> {
    groups: Arc<Dispatch<I, O>>,
    gate: Gate,
    retries: Arc<Retries<I, O>>,
    pressure: Arc<PressureState>,
    time: Timebase,
    ledger: Arc<Ledger>,
    slots: Arc<SlotCache<O>>,
    /// How long a waiting caller spins (the configuration's `wait_spin`).
    wait_spin: Duration,
    next_id: Arc<AtomicU64>,
    /// Health and scaling checks the supervisor finished.
    checks: Arc<Counter>,
    /// Taken by the one call that stops this generation.
    supervisor: Mutex<Option<SupervisorThread<I, O>>>,
}

impl<I, O> Generation<I, O> {
    pub(crate) fn groups(&self) -> &Dispatch<I, O> {
        &self.groups
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    pub(crate) fn pressure(&self) -> &PressureState {
        &self.pressure
    }

    pub(crate) fn time(&self) -> &Timebase {
        &self.time
    }

    pub(crate) fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The pool's result slots for reuse.
    pub(crate) fn slots(&self) -> &Arc<SlotCache<O>> {
        &self.slots
    }

    /// How long a waiting caller spins before it parks.
    #[inline]
    pub(crate) fn wait_spin(&self) -> Duration {
        self.wait_spin
    }

    pub(crate) fn checks(&self) -> u64 {
        self.checks.get()
    }

    /// A new request id, unique within the pool.
    #[inline]
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn retries(&self) -> &Retries<I, O> {
        &self.retries
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> Generation<I, O> {
    /// Starts one generation: its groups, supervisor and workers, sharing
    /// the pool's ledger and dead-letter queue. On failure nothing is left
    /// running.
    pub(crate) fn start(
        mut config: PoolConfig,
        mut factories: Vec<NamedFactory<I, O>>,
        pool: &Persistent<I, O>,
    ) -> Result<Arc<Self>, BuildError> {
        // `config` was validated by the caller: at most MAX_GROUPS groups,
        // so a group index fits the routing bitmasks.
        debug_assert!(config.groups.len() <= MAX_GROUPS);
        // Stable: equal priorities keep their configured order.
        config.groups.sort_by_key(|g| std::cmp::Reverse(g.priority));
        let mut groups = Vec::with_capacity(config.groups.len());
        let mut kept = Vec::new();
        for (index, g) in config.groups.iter().enumerate() {
            let Some(pos) = factories.iter().position(|(n, _)| *n == g.name) else {
                return Err(BuildError::Group {
                    group: g.name.clone(),
                    message: "no session factory; add one with PoolBuilder::factory (or Pool::reload_with)"
                        .into(),
                });
            };
            let (name, factory) = factories.swap_remove(pos);
            kept.push((name, Arc::clone(&factory)));
            groups.push(Arc::new(Group::new(
                index,
                g.clone(),
                &config.tenants,
                &config.affinity,
                factory,
                Arc::clone(pool.clock()),
            )));
        }
        if let Some((name, _)) = factories.first() {
            return Err(BuildError::Group {
                group: name.clone(),
                message: "a factory was given for a group the configuration does not have".into(),
            });
        }
        let names = groups.iter().map(|g| Arc::clone(g.name())).collect();
        let (seed, turns) = pool.routing();
        let groups = Arc::new(Dispatch::new(
            groups,
            config.when_all_open,
            config.deadline_admission,
            config.routing,
            seed,
            Arc::clone(turns),
        ));
        let (supervisor_tx, supervisor_rx) = unbounded();
        let retries = Arc::new(Retries::new(
            config.retry.clone(),
            supervisor_tx,
            Arc::clone(pool.dlq()),
            Arc::clone(pool.ledger()),
            Arc::clone(pool.inputs()),
            names,
        ));
        let pressure = Arc::new(PressureState::default());
        let time = Timebase::new(Arc::clone(pool.clock()));
        let checks = Arc::new(Counter::default());
        let supervised = Supervised::new(
            Arc::clone(&groups),
            Arc::clone(&retries),
            time.clone(),
            config.health_check_interval,
            Controller::new(
                config.memory.clone(),
                Arc::clone(pool.probe()),
                pool.on_pressure().cloned(),
                Arc::clone(&pressure),
            ),
            Arc::clone(pool.supervisor_panics()),
            Arc::clone(&checks),
        );
        let supervisor = std::thread::Builder::new()
            .name("accelpool-supervisor".into())
            .spawn(move || supervisor::run(supervised, supervisor_rx))?;
        let generation = Arc::new(Self {
            groups,
            gate: Gate::new(),
            retries,
            pressure,
            time,
            ledger: Arc::clone(pool.ledger()),
            slots: Arc::clone(pool.slots()),
            wait_spin: config.wait_spin,
            next_id: Arc::clone(pool.next_id()),
            checks,
            supervisor: Mutex::new(Some(supervisor)),
        });
        if let Err(e) = generation.start_workers(config.cores.as_deref()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            generation.stop(deadline, Drain::No, &mut |_| false);
            return Err(e);
        }
        pool.set_factories(kept);
        Ok(generation)
    }

    /// Spawns every group's workers and waits for their first sessions.
    ///
    /// The configured worker count is honoured whatever the cores: a worker
    /// that drives an NPU, a GPU or a remote device mostly waits, so more
    /// workers than cores can be right. When there are more pinned workers
    /// than cores, cores are shared round-robin; the startup log says so
    /// and each such worker's stats show `shares_core`.
    fn start_workers(&self, cores: Option<&[usize]>) -> Result<(), BuildError> {
        let plan = CorePlan::new(cores).map_err(|message| ConfigError::new("cores", message))?;
        let mut placed = Vec::new();
        let mut seq = 0;
        for g in self.groups.groups() {
            for wi in 0..g.config().workers {
                let core = if g.config().pin {
                    seq += 1;
                    plan.core_for(seq - 1)
                } else {
                    None
                };
                placed.push((g, wi, core));
            }
        }
        let mut per_core = HashMap::new();
        for core in placed.iter().filter_map(|p| p.2) {
            *per_core.entry(core.id).or_insert(0usize) += 1;
        }
        let total = placed.len();
        let cores = cores.map_or_else(pinning::available_cores, <[usize]>::len);
        if total > cores {
            tracing::info!(
                "{total} workers over {cores} available core(s): workers share cores \
                 (each group keeps its configured count; see WorkerStats::shares_core)"
            );
        }
        let (ready_tx, ready_rx) = unbounded();
        let mut spawned = 0;
        for &(g, wi, core) in &placed {
            let shares = core.is_some_and(|c| per_core[&c.id] > 1);
            let ctx = WorkerCtx::new(Arc::clone(g), Arc::clone(&self.retries), self.time.clone());
            let worker = spawn_worker(&ctx, wi, core, shares, Some(ready_tx.clone()))?;
            spawned += 1;
            g.add_worker(worker);
        }
        drop(ready_tx);
        for _ in 0..spawned {
            match ready_rx.recv() {
                Ok((_, _, Ok(()))) => {}
                Ok((gi, wi, Err(error))) => {
                    return Err(BuildError::Session {
                        group: self.groups.groups()[gi].name().to_string(),
                        worker: wi,
                        error,
                    })
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Stops this generation (`exec::drain`). Called once: the pool keeps
    /// the report of a shutdown, and a reload stops the old generation it
    /// swapped out.
    pub(crate) fn stop(
        &self,
        deadline: Instant,
        drain: Drain<'_>,
        leftover: &mut dyn FnMut(Job<I, O>) -> bool,
    ) -> Stopped {
        let supervisor = self.supervisor.lock().take();
        drain::stop(
            Parts::new(&self.gate, &self.groups, &self.retries, supervisor),
            deadline,
            drain,
            leftover,
        )
    }

    /// What this generation's workers counted.
    pub(crate) fn attempt_counts(&self) -> CountsSnapshot {
        let mut all = CountsSnapshot::default();
        for g in self.groups.groups() {
            all += g.worker_counts().attempts();
        }
        all
    }
}
