//! # accelpool
//!
//! An in-process, synchronous thread-pool runtime for local accelerators.
//! An application describes its device groups (NPU, GPU, CPU through
//! OpenVINO, or any [`Session`] of its own) and submits requests from any
//! thread. The pool pins one worker per core, gives each worker a persistent
//! session built once on that worker's thread, routes every request to the
//! best group through bounded per-priority queues, and resolves every
//! accepted request exactly once: completed, dead-lettered, cancelled or
//! expired.
//!
//! ```
//! use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
//! use std::time::Duration;
//!
//! let pool = Pool::<u64, u64>::builder()
//!     .group(GroupConfig::new("cpu").workers(2), |_: &WorkerInfo| {
//!         Ok(|x: &u64| -> Result<u64, SessionError> { Ok(x * x) })
//!     })
//!     .build()?;
//! let handles: Vec<_> = (0..10).map(|i| pool.submit(Request::new(i)).unwrap()).collect();
//! let squares: Vec<u64> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
//! assert_eq!(squares[9], 81);
//!
//! let report = pool.shutdown(Duration::from_secs(5));
//! let c = report.stats.counts;
//! assert_eq!(c.accepted, c.completed + c.dead_lettered + c.cancelled + c.expired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Follow one request through the public API: a [`Request`] (input,
//! [`Priority`], deadline, optional group) goes to [`Pool::submit`] (or
//! [`Pool::try_submit`], [`Pool::submit_timeout`]); the pool routes it to a
//! device group ([`GroupConfig`], guarded by a [`CircuitBreaker`]), a worker
//! runs it through its [`Session`] (built by a [`SessionFactory`]), and the
//! [`TaskHandle`] resolves exactly once. A failed attempt is retried per the
//! [`RetryPolicy`], then kept in the [`DeadLetterQueue`]. [`PoolConfig`] reads
//! all of it from YAML; [`Pool::stats`] reports it ([`PoolStats`]);
//! [`Pool::reload`] and [`Pool::shutdown`] change or end it. A refused
//! request comes back inside a [`SubmitError`] with the [`Refusal`] that
//! says why.
//!
//! # Module tour
//!
//! The source is five layers, each using only those below it (the
//! repository's `docs/ARCHITECTURE.md` has the map, the data path and the
//! protocols; CI checks the direction):
//!
//! | layer | public items it holds |
//! | --- | --- |
//! | `core` | [`Priority`], [`LevelCapacity`], [`Clock`], [`Session`], [`SessionFactory`], [`Request`], [`TaskHandle`], [`CountsSnapshot`], [`Refusal`], [`SubmitError`], [`DeadLetter`], [`MemoryProbe`], and the stats snapshot types ([`PoolStats`], [`GroupStats`], ...) |
//! | `config` | [`PoolConfig`], [`GroupConfig`], [`RetryPolicy`], [`BreakerConfig`], [`MemoryConfig`], [`ranges`], `openvino::OpenVinoConfig` |
//! | `policy` | [`CircuitBreaker`], [`DeadLetterQueue`], and the router, retry, pressure and scaling decisions |
//! | `exec` | the runtime: queues, workers, groups, the supervisor (no public items) |
//! | `pool` | [`Pool`], [`PoolBuilder`], [`BuildError`] |
//!
//! `openvino` (a default feature) is the backend, built on the public [`Session`] seam and the
//! configuration only.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
// `unsafe` only where allowed item by item (the OpenVINO backend's library
// check and byte view of tensors: listed in docs/ARCHITECTURE.md); every
// other module forbids it.
#![deny(unsafe_code)]

// The layers, each using only those listed before it (docs/ARCHITECTURE.md
// has the map; `scripts/check-layers.sh` enforces it).
mod config;
mod core;
mod exec;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "openvino")]
pub mod openvino;
mod policy;
mod pool;
#[cfg(feature = "remote")]
pub mod remote;
mod runtime;
pub mod tensor;

pub use crate::config::{
    ranges, AffinityConfig, AllOpenPolicy, BackendConfig, BatchingConfig, BreakerConfig,
    BreakerMode, ConfigError, DeadLetterConfig, DeadlineAdmission, GroupConfig, LevelCapacity,
    MemoryConfig, OverflowPolicy, PoolConfig, RetryPolicy, RoutingConfig, RoutingStrategy,
    RuntimeConfig, ScalingConfig, TenantsConfig, MAX_AFFINITY_KEYS, MAX_ATTEMPTS, MAX_BATCH_SIZE,
    MAX_BREAKER_WINDOW, MAX_CAPACITY, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CORE_ID,
    MAX_DEAD_LETTERS, MAX_HALF_OPEN_CALLS, MAX_MODELS, MAX_WARMUP, MAX_WEIGHT, MAX_WORKERS,
    TIME_WINDOW_BUCKETS,
};
pub use crate::core::{
    AffinityStats, AttemptError, BackendHealth, BatchItem, BatchResult, BatchStats, BreakerState,
    BreakerStats, Buckets, CancelReason, Clock, CountsSnapshot, DeadLetter, DeadLetterStats,
    EndpointStats, ErrorKind, ErrorKindCounts, FailureRecord, GroupStats, Health, HealthSummary,
    InputError, LatencyHistograms, LatencySnapshot, ManualClock, ManualProbe, MemoryProbe,
    MemorySample, MemoryStats, Percentiles, PoolStats, PressureAction, PressureEvent,
    PressureLevel, Priority, QueueDepth, Refusal, RefusalCounts, ReloadReport, ReplayError,
    Request, RunContext, Session, SessionError, SessionFactory, SharedInput, ShutdownReport,
    Status, SubmitError, SysinfoProbe, SystemClock, TaskError, TaskHandle, TenantStats, Transition,
    WindowStats, WorkerInfo, WorkerStats, LATENCY_BUCKETS, MAX_GROUPS,
};
pub use crate::policy::{Admission, CircuitBreaker, DeadLetterQueue};
#[cfg(any(feature = "openvino", feature = "remote"))]
pub use crate::pool::BackendError;
pub use crate::pool::{BuildError, NamedFactory, Pool, PoolBuilder};
pub use crate::runtime::{ModelStats, Runtime, RuntimeError, RuntimeStats};

#[cfg(all(test, loom))]
mod loom_models;
