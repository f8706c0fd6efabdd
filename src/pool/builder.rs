//! [`PoolBuilder`]: describes a pool and starts it.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::error::BuildError;
use super::generation::Generation;
use super::persistent::Persistent;
use super::Pool;
use crate::config::{
    AffinityConfig, AllOpenPolicy, DeadLetterConfig, DeadlineAdmission, GroupConfig, MemoryConfig,
    PoolConfig, RetryPolicy, RoutingConfig, TenantsConfig,
};
use crate::core::{
    Clock, DeadLetter, MemoryProbe, PressureEvent, SessionFactory, SysinfoProbe, SystemClock,
};
use crate::exec::pressure::PressureHook;
use crate::policy::dlq::OverflowHook;
use crate::policy::DeadLetterQueue;

/// Describes a pool: its groups with their session factories, retries and
/// the dead-letter queue. [`PoolBuilder::build`] starts it.
pub struct PoolBuilder<I, O> {
    config: PoolConfig,
    factories: Vec<(String, Arc<dyn SessionFactory<I, O>>)>,
    on_overflow: Option<OverflowHook<I>>,
    drop_timeout: Duration,
    clock: Arc<dyn Clock>,
    probe: Arc<dyn MemoryProbe>,
    on_pressure: Option<PressureHook>,
}

impl<I, O> std::fmt::Debug for PoolBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> Default for PoolBuilder<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Send + Sync + 'static, O: Send + 'static> PoolBuilder<I, O> {
    /// An empty description with default retry and dead-letter settings.
    pub fn new() -> Self {
        Self {
            config: PoolConfig::default(),
            factories: Vec::new(),
            on_overflow: None,
            drop_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            probe: Arc::new(SysinfoProbe::new()),
            on_pressure: None,
        }
    }

    /// Sets memory-pressure control.
    pub fn memory(mut self, memory: MemoryConfig) -> Self {
        self.config.memory = memory;
        self
    }

    /// Sets what the router does when every eligible group's breaker is
    /// open (default [`AllOpenPolicy::LeastBad`]).
    pub fn when_all_open(mut self, policy: AllOpenPolicy) -> Self {
        self.config.when_all_open = policy;
        self
    }

    /// Sets how requests spread over groups of equal priority (default
    /// [`RoutingStrategy::LeastLoaded`](crate::RoutingStrategy)).
    ///
    /// ```
    /// use accelpool::{GroupConfig, Pool, RoutingConfig, RoutingStrategy, SessionError, WorkerInfo};
    /// let echo = |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) });
    /// let pool = Pool::<u32, u32>::builder()
    ///     .routing(RoutingConfig { strategy: RoutingStrategy::RoundRobin, seed: None })
    ///     .group(GroupConfig::new("a").pin(false), echo)
    ///     .group(GroupConfig::new("b").pin(false), echo)
    ///     .build()?;
    /// assert_eq!(pool.stats().routing, RoutingStrategy::RoundRobin);
    /// # Ok::<(), accelpool::BuildError>(())
    /// ```
    pub fn routing(mut self, routing: RoutingConfig) -> Self {
        self.config.routing = routing;
        self
    }

    /// Pins this pool's workers on these cores only (ids as the operating
    /// system numbers them); default every core the process may use. See
    /// [`Runtime`](crate::Runtime) for several pools over one budget.
    pub fn cores(mut self, cores: Vec<usize>) -> Self {
        self.config.cores = Some(cores);
        self
    }

    /// Sets tenant fairness within each priority level (off by default):
    /// see [`TenantsConfig`].
    pub fn tenants(mut self, tenants: TenantsConfig) -> Self {
        self.config.tenants = tenants;
        self
    }

    /// Sets affinity (off by default): requests with one key prefer the
    /// worker that last ran it; see [`AffinityConfig`] and
    /// [`Request::affinity`](crate::Request::affinity).
    pub fn affinity(mut self, affinity: AffinityConfig) -> Self {
        self.config.affinity = affinity;
        self
    }

    /// Sets deadline-aware admission (off by default): see
    /// [`DeadlineAdmission`].
    pub fn deadline_admission(mut self, admission: DeadlineAdmission) -> Self {
        self.config.deadline_admission = admission;
        self
    }

    /// Sets where memory readings come from (default: [`SysinfoProbe`]).
    pub fn memory_probe(mut self, probe: Arc<dyn MemoryProbe>) -> Self {
        self.probe = probe;
        self
    }

    /// Called on every memory-pressure transition.
    pub fn on_pressure(mut self, hook: impl Fn(&PressureEvent) + Send + Sync + 'static) -> Self {
        self.on_pressure = Some(Box::new(hook));
        self
    }

    /// Sets the clock breakers and stuck-call detection read (tests use a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts from a whole configuration (for example one read from YAML);
    /// give each group its factory with [`PoolBuilder::factory`].
    pub fn from_config(config: PoolConfig) -> Self {
        Self {
            config,
            ..Self::new()
        }
    }

    /// Adds a device group and the factory of its sessions.
    pub fn group(mut self, config: GroupConfig, factory: impl SessionFactory<I, O>) -> Self {
        self.factories
            .push((config.name.clone(), Arc::new(factory)));
        self.config.groups.push(config);
        self
    }

    /// Sets the session factory of a group named in the configuration.
    pub fn factory(mut self, group: impl Into<String>, factory: impl SessionFactory<I, O>) -> Self {
        self.factories.push((group.into(), Arc::new(factory)));
        self
    }

    /// Adds a device group whose factory the caller keeps a handle on (to
    /// read its counters, or to share it).
    pub fn group_shared(
        mut self,
        config: GroupConfig,
        factory: Arc<dyn SessionFactory<I, O>>,
    ) -> Self {
        self.factories.push((config.name.clone(), factory));
        self.config.groups.push(config);
        self
    }

    /// Sets retry and backoff.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Sets how long a caller waiting on a handle spins before it parks
    /// (see [`PoolConfig::wait_spin`]).
    ///
    /// ```
    /// use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
    /// use std::time::Duration;
    /// let pool = Pool::<u32, u32>::builder()
    ///     .wait_spin(Duration::from_micros(20))
    ///     .group(GroupConfig::new("cpu").workers(1).pin(false),
    ///            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) }))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(Request::new(7)).unwrap().wait().unwrap(), 7);
    /// ```
    pub fn wait_spin(mut self, spin: Duration) -> Self {
        self.config.wait_spin = spin;
        self
    }

    /// Sets how often the supervisor checks health and stuck calls.
    pub fn health_check_interval(mut self, every: Duration) -> Self {
        self.config.health_check_interval = every;
        self
    }

    /// Sets the dead-letter queue's bounds.
    pub fn dead_letter(mut self, config: DeadLetterConfig) -> Self {
        self.config.dead_letter = config;
        self
    }

    /// Called with each letter the dead-letter queue's overflow policy pushes out.
    pub fn on_dead_letter_overflow(
        mut self,
        hook: impl Fn(DeadLetter<I>) + Send + Sync + 'static,
    ) -> Self {
        self.on_overflow = Some(Box::new(hook));
        self
    }

    /// The configuration built so far.
    pub(crate) fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The configuration to change (a runtime sets `cores`).
    pub(crate) fn config_mut(&mut self) -> &mut PoolConfig {
        &mut self.config
    }

    /// How long dropping the pool waits for queued work (default 30 s).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Validates the configuration, spawns the supervisor and the workers,
    /// and waits until every worker has built its first session.
    pub fn build(self) -> Result<Pool<I, O>, BuildError> {
        let PoolBuilder {
            config,
            factories,
            on_overflow,
            drop_timeout,
            clock,
            probe,
            on_pressure,
        } = self;
        config.validate()?;
        // Sized once, from the first configuration: a reload that grows the
        // queues keeps the caches (they only save allocations).
        let queued = config.groups.iter().fold(0usize, |n, g| {
            n.saturating_add(g.capacity.total())
                .saturating_add(g.workers)
        });
        let persistent = Persistent::new(
            queued,
            DeadLetterQueue::new(config.dead_letter.clone(), on_overflow),
            clock,
            probe,
            on_pressure,
        );
        let generation = Generation::start(config, factories, &persistent)?;
        Ok(Pool::new(generation, persistent, drop_timeout))
    }
}
