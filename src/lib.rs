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
//! [`Pool::reload`] and [`Pool::shutdown`] change or end it. The internals
//! (modules, protocols, invariants) are described in the repository's
//! `docs/ARCHITECTURE.md`.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
// `unsafe` only where allowed item by item (the OpenVINO backend's library
// check and byte view of tensors: listed in docs/ARCHITECTURE.md); every
// other module forbids it.
#![deny(unsafe_code)]

mod breaker;
mod clock;
mod config;
mod dlq;
mod error;
mod group;
mod handle;
mod memory;
#[cfg(feature = "openvino")]
pub mod openvino;
mod pinning;
mod pool;
mod pressure;
mod priority;
mod queue;
mod request;
mod retry;
mod router;
mod scaling;
mod session;
mod shutdown;
mod stats;
mod supervisor;
mod worker;
mod yaml_guard;

pub use breaker::{
    Admission, BreakerConfig, BreakerState, BreakerStats, CircuitBreaker, FailureRecord, Transition,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    ranges, BackendConfig, ConfigError, DeadLetterConfig, GroupConfig, LevelCapacity,
    OverflowPolicy, PoolConfig, RetryPolicy, ScalingConfig, MAX_ATTEMPTS, MAX_CAPACITY,
    MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_DEAD_LETTERS, MAX_WARMUP, MAX_WORKERS,
};
pub use dlq::{DeadLetter, DeadLetterQueue};
pub use error::{BuildError, InputError, ReplayError, SubmitError};
pub use group::GroupStats;
pub use handle::{AttemptError, CancelReason, Status, TaskError, TaskHandle};
pub use memory::{
    ManualProbe, MemoryConfig, MemoryProbe, MemorySample, PressureAction, PressureEvent,
    PressureLevel, SysinfoProbe,
};
pub use pool::{NamedFactory, Pool, PoolBuilder};
pub use pressure::MemoryStats;
pub use priority::Priority;
pub use request::Request;
pub use router::MAX_GROUPS;
pub use session::{ErrorKind, RunContext, Session, SessionError, SessionFactory, WorkerInfo};
pub use shutdown::{ReloadReport, ShutdownReport};
pub use stats::{
    CountsSnapshot, DeadLetterStats, Health, HealthSummary, LatencySnapshot, Percentiles,
    PoolStats, QueueDepth, WorkerStats,
};
