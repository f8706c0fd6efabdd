//! Configuration types: what a pool, its device groups, retries and the
//! dead-letter queue are set up with. Every type reads from YAML (serde) with
//! defaults for everything optional, and [`PoolConfig::validate`] names the
//! field path and the allowed range of anything out of bounds.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod affinity;
mod batching;
mod breaker;
mod memory;
#[cfg(feature = "openvino")]
pub(crate) mod openvino;
pub mod ranges;
#[cfg(feature = "remote")]
pub(crate) mod remote;
mod routing;
mod runtime;
mod tenants;
mod yaml_guard;

pub use crate::core::LevelCapacity;
pub use affinity::{AffinityConfig, MAX_AFFINITY_KEYS};
pub use batching::{BatchingConfig, MAX_BATCH_SIZE};
pub use breaker::{
    AllOpenPolicy, BreakerConfig, BreakerMode, MAX_BREAKER_WINDOW, MAX_HALF_OPEN_CALLS,
    TIME_WINDOW_BUCKETS,
};
pub use memory::MemoryConfig;
pub use routing::{DeadlineAdmission, RoutingConfig, RoutingStrategy, MAX_WEIGHT};
pub(crate) use runtime::check_model_name;
pub use runtime::{RuntimeConfig, MAX_MODELS};
pub use tenants::TenantsConfig;

use crate::core::{Priority, MAX_GROUPS};
use ranges::{check_count, check_duration};

/// A configuration value out of range, with the path of the field.
///
/// ```
/// use accelpool::{GroupConfig, PoolConfig};
/// let mut cfg = PoolConfig::default();
/// cfg.groups.push(GroupConfig::new("cpu").priority(12));
/// let err = cfg.validate().unwrap_err();
/// assert_eq!(err.to_string(), "groups[0].priority: 12 is outside 1..=10");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Path of the offending field, for example `groups[1].priority`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The most workers one group may have.
pub const MAX_WORKERS: usize = 1024;
/// The largest queue capacity of one priority level (queues are allocated
/// whole when a group starts).
pub const MAX_CAPACITY: usize = 1 << 20;
/// The largest dead-letter queue.
pub const MAX_DEAD_LETTERS: usize = 1 << 20;
/// The most warmup calls per session.
pub const MAX_WARMUP: u32 = 1000;
/// The most attempts per request.
pub const MAX_ATTEMPTS: u32 = 100;
/// The largest configuration file [`PoolConfig::from_yaml_file`] reads, and
/// the longest text [`PoolConfig::from_yaml`] parses.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// The deepest nesting of YAML collections a configuration may have (a real
/// one needs five).
pub const MAX_CONFIG_DEPTH: usize = 32;
/// The highest core id a configuration may name.
pub const MAX_CORE_ID: usize = 4095;

/// Checks a list of core ids: not empty, each at most [`MAX_CORE_ID`], none
/// twice.
pub(crate) fn check_cores(field: &str, cores: &[usize]) -> Result<(), ConfigError> {
    if cores.is_empty() {
        return Err(ConfigError::new(
            field,
            "lists no core; leave it out to use every core the process may use",
        ));
    }
    let mut seen = HashSet::new();
    for (i, &c) in cores.iter().enumerate() {
        check_count(|| format!("{field}[{i}]"), c, 0, MAX_CORE_ID)?;
        if !seen.insert(c) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("core {c} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// One device group: a named set of workers on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Unique name (`npu`, `gpu`, `cpu`, ...).
    pub name: String,
    /// Routing priority, 1 to 10: higher is tried first.
    #[serde(default = "defaults::priority")]
    pub priority: u8,
    /// Share of traffic among groups of equal priority under the
    /// `weighted` routing strategy, 1 to [`MAX_WEIGHT`] (other strategies
    /// ignore it).
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Worker threads: the most the group runs, 1 to [`MAX_WORKERS`]. All
    /// start; load scaling and memory pressure may park some, down to
    /// `min_workers`. The count is honoured even above the cores the
    /// process has (a worker that drives an NPU or a remote device mostly
    /// waits): workers then share cores, which the startup log and
    /// [`WorkerStats::shares_core`](crate::WorkerStats) say.
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// The fewest workers kept running: 1 to `workers` (at least 1, so the
    /// group's queues are always drained).
    #[serde(default = "defaults::workers")]
    pub min_workers: usize,
    /// Load scaling between `min_workers` and `workers`.
    #[serde(default)]
    pub scaling: ScalingConfig,
    /// Dynamic batching (off by default).
    #[serde(default)]
    pub batching: BatchingConfig,
    /// Queue capacity per priority level.
    #[serde(default)]
    pub capacity: LevelCapacity,
    /// How long an idle worker spins before it parks. Zero parks at once.
    #[serde(default = "defaults::spin", with = "humantime_serde")]
    pub spin_before_park: Duration,
    /// Warmup calls a new session runs before taking requests.
    #[serde(default)]
    pub warmup: u32,
    /// Pin each worker to its own core.
    #[serde(default = "defaults::pin")]
    pub pin: bool,
    /// A call running longer than this is stuck: its request fails over and
    /// its worker is replaced.
    #[serde(default = "defaults::call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
    /// The group's circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Where the group's sessions come from when the pool is built from
    /// configuration alone (otherwise the builder is given a factory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendConfig>,
}

/// Load scaling of one group: wake a parked worker when requests wait too
/// long, park an idle one after a while, always between `min_workers` and
/// `workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    /// Scale at all.
    pub enabled: bool,
    /// Scale up while queued requests wait longer than this (a moving
    /// average of the workers' queue waits).
    #[serde(with = "humantime_serde")]
    pub queue_wait_target: Duration,
    /// Scale down a worker idle this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            queue_wait_target: Duration::from_millis(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// A group's backend, as written in YAML:
///
/// ```yaml
/// backend:
///   openvino:
///     model: models/tiny/tiny.onnx
///     device: CPU
/// ```
///
/// Exactly one backend is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Run the group's model through OpenVINO.
    #[cfg(feature = "openvino")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openvino: Option<openvino::OpenVinoConfig>,
    /// Without the feature, `openvino:` is still recognised, so that the
    /// error says how to turn the backend on instead of "unknown field".
    #[cfg(not(feature = "openvino"))]
    #[serde(default, skip_serializing, deserialize_with = "openvino_feature_off")]
    openvino: Option<()>,
    /// Send the group's requests to inference servers that speak the Open
    /// Inference Protocol.
    #[cfg(feature = "remote")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<remote::RemoteConfig>,
    /// Without the feature, `remote:` is still recognised, so that the
    /// error says how to turn the backend on.
    #[cfg(not(feature = "remote"))]
    #[serde(default, skip_serializing, deserialize_with = "remote_feature_off")]
    remote: Option<()>,
}

#[cfg(not(feature = "remote"))]
fn remote_feature_off<'de, D: serde::Deserializer<'de>>(_: D) -> Result<Option<()>, D::Error> {
    Err(serde::de::Error::custom(
        "this build of accelpool has no remote backend: its `remote` feature is off. \
         Turn it on: `features = [\"remote\"]` on the accelpool dependency",
    ))
}

#[cfg(not(feature = "openvino"))]
fn openvino_feature_off<'de, D: serde::Deserializer<'de>>(_: D) -> Result<Option<()>, D::Error> {
    Err(serde::de::Error::custom(
        "this build of accelpool has no OpenVINO backend: its `openvino` feature is off. \
         Turn it on (it is a default feature: remove `default-features = false` from the \
         accelpool dependency, or add `features = [\"openvino\"]`)",
    ))
}

impl BackendConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        #[cfg(feature = "openvino")]
        let openvino = self.openvino.is_some();
        #[cfg(not(feature = "openvino"))]
        let openvino = false;
        #[cfg(feature = "remote")]
        let remote = self.remote.is_some();
        #[cfg(not(feature = "remote"))]
        let remote = false;
        match (openvino, remote) {
            (true, true) => Err(ConfigError::new(
                path,
                "names two backends; keep one of `openvino:` and `remote:`",
            )),
            (false, false) => Err(ConfigError::new(
                path,
                format!("names no backend; set one of {}", Self::built_in()),
            )),
            #[cfg(feature = "remote")]
            (false, true) => match &self.remote {
                Some(r) => r.validate(&format!("{path}.remote")),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The backends this build has, as YAML names them.
    fn built_in() -> &'static str {
        match (cfg!(feature = "openvino"), cfg!(feature = "remote")) {
            (true, true) => "`openvino:` or `remote:`",
            (true, false) => "`openvino:` (the only backend this build has)",
            (false, true) => "`remote:` (the only backend this build has)",
            (false, false) => "none: this build has no backend feature (`openvino`, `remote`)",
        }
    }

    /// Whether the group's workers wait on the network rather than compute.
    pub(crate) fn is_remote(&self) -> bool {
        #[cfg(feature = "remote")]
        return self.remote.is_some();
        #[cfg(not(feature = "remote"))]
        false
    }
}

impl GroupConfig {
    /// A group with default settings.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            priority: defaults::priority(),
            weight: defaults::weight(),
            workers: defaults::workers(),
            min_workers: defaults::workers(),
            scaling: ScalingConfig::default(),
            batching: BatchingConfig::default(),
            capacity: LevelCapacity::default(),
            spin_before_park: defaults::spin(),
            warmup: 0,
            pin: defaults::pin(),
            call_timeout: defaults::call_timeout(),
            breaker: BreakerConfig::default(),
            backend: None,
        }
    }

    /// Sets the stuck-call timeout.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// Sets the circuit breaker.
    pub fn breaker(mut self, b: BreakerConfig) -> Self {
        self.breaker = b;
        self
    }

    /// Sets the routing priority (1-10).
    pub fn priority(mut self, p: u8) -> Self {
        self.priority = p;
        self
    }

    /// Sets the routing weight (1 to [`MAX_WEIGHT`]).
    pub fn weight(mut self, w: u32) -> Self {
        self.weight = w;
        self
    }

    /// Sets the worker count.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Sets the fewest workers kept running.
    pub fn min_workers(mut self, n: usize) -> Self {
        self.min_workers = n;
        self
    }

    /// Sets load scaling.
    pub fn scaling(mut self, s: ScalingConfig) -> Self {
        self.scaling = s;
        self
    }

    /// Sets dynamic batching.
    pub fn batching(mut self, b: BatchingConfig) -> Self {
        self.batching = b;
        self
    }

    /// Sets the same queue capacity for every level.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = LevelCapacity::uniform(n);
        self
    }

    /// Sets the queue capacity per level.
    pub fn level_capacity(mut self, c: LevelCapacity) -> Self {
        self.capacity = c;
        self
    }

    /// Sets the spin-before-park window.
    pub fn spin_before_park(mut self, d: Duration) -> Self {
        self.spin_before_park = d;
        self
    }

    /// Sets the warmup calls per new session.
    pub fn warmup(mut self, n: u32) -> Self {
        self.warmup = n;
        self
    }

    /// Turns pinning on or off.
    pub fn pin(mut self, on: bool) -> Self {
        self.pin = on;
        self
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        if !(1..=10).contains(&self.priority) {
            return Err(ConfigError::new(
                format!("{path}.priority"),
                format!("{} is outside 1..=10", self.priority),
            ));
        }
        check_count(|| format!("{path}.weight"), self.weight, 1, MAX_WEIGHT)?;
        check_count(|| format!("{path}.workers"), self.workers, 1, MAX_WORKERS)?;
        if !(1..=self.workers).contains(&self.min_workers) {
            return Err(ConfigError::new(
                format!("{path}.min_workers"),
                format!(
                    "{} is outside 1..={} (at least one worker runs, and no more than `workers`)",
                    self.min_workers, self.workers
                ),
            ));
        }
        check_count(|| format!("{path}.warmup"), self.warmup, 0, MAX_WARMUP)?;
        check_duration(
            || format!("{path}.spin_before_park"),
            self.spin_before_park,
            ranges::SPIN_BEFORE_PARK,
        )?;
        check_duration(
            || format!("{path}.call_timeout"),
            self.call_timeout,
            ranges::CALL_TIMEOUT,
        )?;
        check_duration(
            || format!("{path}.scaling.queue_wait_target"),
            self.scaling.queue_wait_target,
            ranges::QUEUE_WAIT_TARGET,
        )?;
        check_duration(
            || format!("{path}.scaling.idle_timeout"),
            self.scaling.idle_timeout,
            ranges::IDLE_TIMEOUT,
        )?;
        self.breaker.validate(&format!("{path}.breaker"))?;
        self.batching.validate(&format!("{path}.batching"))?;
        if let Some(b) = &self.backend {
            b.validate(&format!("{path}.backend"))?;
            if b.is_remote() && self.pin {
                return Err(ConfigError::new(
                    format!("{path}.pin"),
                    "a remote group's workers are calls in flight that wait on the network, \
                     not cores: set `pin: false`",
                ));
            }
        }
        for p in Priority::ALL {
            check_count(
                || format!("{path}.capacity.{}", p.name()),
                self.capacity.of(p),
                1,
                MAX_CAPACITY,
            )?;
        }
        Ok(())
    }
}

/// How failed attempts are retried: exponential backoff up to `max_attempts`.
///
/// ```
/// use accelpool::RetryPolicy;
/// use std::time::Duration;
/// let r = RetryPolicy::default();
/// assert_eq!(r.backoff(1), r.initial_backoff);
/// assert_eq!(r.backoff(2), r.initial_backoff * 2);
/// assert!(r.backoff(30) <= r.max_backoff);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Wait before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Growth of the wait per retry (at least 1).
    pub multiplier: f64,
    /// Longest wait.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// When every group has failed a request, let it try a failed group
    /// again after the backoff (otherwise it is dead-lettered at once).
    pub same_group_fallback: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(100),
            same_group_fallback: true,
        }
    }
}

impl RetryPolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            || "retry.max_attempts".into(),
            self.max_attempts,
            1,
            MAX_ATTEMPTS,
        )?;
        check_duration(
            || "retry.initial_backoff".into(),
            self.initial_backoff,
            ranges::RETRY_BACKOFF,
        )?;
        check_duration(
            || "retry.max_backoff".into(),
            self.max_backoff,
            ranges::RETRY_BACKOFF,
        )?;
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(ConfigError::new(
                "retry.multiplier",
                format!("{} is outside 1.0.. (finite)", self.multiplier),
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(ConfigError::new(
                "retry.max_backoff",
                "must be at least retry.initial_backoff",
            ));
        }
        Ok(())
    }
}

/// What the dead-letter queue does when it is full. Either way the letter
/// pushed out is counted in [`DeadLetterStats::overflowed`](crate::DeadLetterStats)
/// and handed to the overflow callback if one is set: never a silent drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Push out the oldest letter to make room for the new one.
    #[default]
    DropOldest,
    /// Keep the letters held and push out the new one.
    DropNewest,
}

/// The dead-letter queue's bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// Most letters held.
    pub capacity: usize,
    /// What happens when full.
    pub overflow: OverflowPolicy,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            capacity: 1024,
            overflow: OverflowPolicy::DropOldest,
        }
    }
}

/// The whole runtime's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Retry and backoff.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Dead-letter queue bounds.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// How often the supervisor checks worker health, stuck calls and load.
    #[serde(default = "defaults::health_interval", with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// How long a caller in [`TaskHandle::wait`](crate::TaskHandle::wait)
    /// spins for its result before it parks (default 5µs, at most 1s).
    /// Spinning takes a result that arrives within the window without a
    /// kernel round trip on either side; it costs the caller's core that
    /// long for each request that takes longer. The same trade as a
    /// group's `spin_before_park`: raise it for sub-millisecond models
    /// with callers on cores of their own, set it to 0 where callers
    /// share cores with busy workers.
    #[serde(default = "defaults::wait_spin", with = "humantime_serde")]
    pub wait_spin: Duration,
    /// Memory-pressure control.
    #[serde(default)]
    pub memory: MemoryConfig,
    /// What the router does when every group a request may go to has its
    /// breaker open.
    #[serde(default)]
    pub when_all_open: AllOpenPolicy,
    /// How requests spread over groups of equal priority.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Refusing at submit what cannot meet its deadline (off by default).
    #[serde(default)]
    pub deadline_admission: DeadlineAdmission,
    /// Tenants sharing each priority level by weight (off by default).
    #[serde(default)]
    pub tenants: TenantsConfig,
    /// Requests with one key prefer the worker that last ran it (off by
    /// default).
    #[serde(default)]
    pub affinity: AffinityConfig,
    /// The cores pinned workers go on, as the operating system numbers
    /// them (each one the process may run on). Default: every core the
    /// process may use. A [`Runtime`](crate::Runtime) sets it for each of
    /// its models from its core budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// Device groups: 1 to [`MAX_GROUPS`](crate::MAX_GROUPS). A file with
    /// more is refused as it is read, not after.
    #[serde(default, deserialize_with = "bounded_groups")]
    pub groups: Vec<GroupConfig>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            dead_letter: DeadLetterConfig::default(),
            health_check_interval: defaults::health_interval(),
            wait_spin: defaults::wait_spin(),
            memory: MemoryConfig::default(),
            when_all_open: AllOpenPolicy::default(),
            routing: RoutingConfig::default(),
            deadline_admission: DeadlineAdmission::default(),
            tenants: TenantsConfig::default(),
            affinity: AffinityConfig::default(),
            cores: None,
            groups: Vec::new(),
        }
    }
}

impl PoolConfig {
    /// Reads and validates a YAML configuration. Unknown fields are refused;
    /// the error names the field path (`groups[1].priority`).
    ///
    /// ```
    /// use accelpool::PoolConfig;
    /// let cfg = PoolConfig::from_yaml("groups:\n  - name: cpu\n    workers: 2\n").unwrap();
    /// assert_eq!(cfg.groups[0].workers, 2);
    /// let err = PoolConfig::from_yaml("groups:\n  - name: cpu\n    priority: 12\n").unwrap_err();
    /// assert_eq!(err.to_string(), "groups[0].priority: 12 is outside 1..=10");
    /// let err = PoolConfig::from_yaml("groups:\n  - name: cpu\n    wokers: 2\n").unwrap_err();
    /// assert_eq!(err.field, "groups[0].wokers");
    /// assert!(err.message.contains("unknown field `wokers`"));
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let cfg: PoolConfig = parse_yaml(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a YAML file.
    pub fn from_yaml_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        read_yaml_file(path.as_ref(), Self::from_yaml)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.retry.validate()?;
        check_count(
            || "dead_letter.capacity".into(),
            self.dead_letter.capacity,
            1,
            MAX_DEAD_LETTERS,
        )?;
        self.memory.validate()?;
        self.deadline_admission.validate()?;
        self.tenants.validate()?;
        self.affinity.validate()?;
        if let Some(cores) = &self.cores {
            check_cores("cores", cores)?;
        }
        check_duration(
            || "health_check_interval".into(),
            self.health_check_interval,
            ranges::HEALTH_CHECK_INTERVAL,
        )?;
        check_duration(|| "wait_spin".into(), self.wait_spin, ranges::WAIT_SPIN)?;
        if self.groups.is_empty() {
            return Err(ConfigError::new(
                "groups",
                "at least one device group is required",
            ));
        }
        if self.groups.len() > MAX_GROUPS {
            return Err(ConfigError::new(
                "groups",
                format!("{} groups is outside 1..={}", self.groups.len(), MAX_GROUPS),
            ));
        }
        let mut names = HashSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            g.validate(&format!("groups[{i}]"))?;
            if !names.insert(g.name.as_str()) {
                return Err(ConfigError::new(
                    format!("groups[{i}].name"),
                    format!(
                        "`{}` is used by an earlier group; names must be unique",
                        g.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Parses bounded YAML text (`yaml_guard`) into `T`; the error names the
/// field path.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    yaml_guard::check(text)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(top level)".to_owned()
        } else {
            path
        };
        // The parser starts its message with its own path: say it once.
        let message = e.into_inner().to_string();
        let message = match message.split_once(": ") {
            Some((head, rest)) if !head.contains(' ') => rest.to_owned(),
            _ => message,
        };
        ConfigError::new(field, message)
    })
}

/// Reads at most [`MAX_CONFIG_BYTES`] (and one byte more, to see the limit
/// passed) of `path` and hands the text to `parse`; errors say the file.
pub(crate) fn read_yaml_file<T>(
    path: &std::path::Path,
    parse: impl FnOnce(&str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(MAX_CONFIG_BYTES as u64 + 1)
                .read_to_string(&mut text)
        })
        .map_err(unreadable)?;
    parse(&text)
        .map_err(|e| ConfigError::new(e.field, format!("{} (in {})", e.message, path.display())))
}

/// Reads the group list, refusing it as soon as it passes `MAX_GROUPS`.
fn bounded_groups<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<GroupConfig>, D::Error> {
    struct Groups;
    impl<'de> serde::de::Visitor<'de> for Groups {
        type Value = Vec<GroupConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of device groups")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut groups = Vec::new();
            while let Some(g) = seq.next_element()? {
                if groups.len() == MAX_GROUPS {
                    return Err(serde::de::Error::custom(format_args!(
                        "more than {} groups; a pool has at most {0}",
                        MAX_GROUPS
                    )));
                }
                groups.push(g);
            }
            Ok(groups)
        }
    }
    d.deserialize_seq(Groups)
}

mod defaults {
    use std::time::Duration;

    pub fn priority() -> u8 {
        5
    }
    pub fn weight() -> u32 {
        1
    }
    pub fn workers() -> usize {
        1
    }
    pub fn spin() -> Duration {
        Duration::from_micros(50)
    }
    pub fn wait_spin() -> Duration {
        Duration::from_micros(5)
    }
    pub fn pin() -> bool {
        true
    }
    pub fn call_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn health_interval() -> Duration {
        Duration::from_millis(50)
    }
}
