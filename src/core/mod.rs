//! The vocabulary every layer shares, depending on nothing else in the
//! crate: priorities and queue capacities, the clock, the session seam,
//! requests and jobs, the result slot and its handle, counters and the
//! ledger, refusals, dead letters, memory readings, and the serializable
//! snapshot types the stats are made of.

mod batches;
mod clock;
mod counters;
mod ewma;
mod handle;
mod input;
mod latency;
mod letter;
mod memory;
mod priority;
mod recycler;
mod refusal;
mod request;
mod routing;
mod session;
mod slots;
mod snapshot;
pub(crate) mod sync;
pub(crate) mod trace;

pub use batches::BatchStats;
pub(crate) use batches::Batches;
pub(crate) use clock::{checked_deadline, saturating_add, Timebase};
pub use clock::{Clock, ManualClock, SystemClock};
pub use counters::CountsSnapshot;
pub(crate) use counters::{Counter, Counts, Event, Ledger};
pub(crate) use ewma::Ewma;
pub(crate) use handle::Outcome;
#[cfg(all(loom, test))]
pub(crate) use handle::Slot;
pub use handle::{AttemptError, CancelReason, Status, TaskError, TaskHandle};
pub(crate) use input::InputCache;
pub use input::SharedInput;
pub(crate) use latency::Latencies;
pub use latency::{Buckets, LatencyHistograms, LatencySnapshot, Percentiles, LATENCY_BUCKETS};
pub use letter::DeadLetter;
pub use memory::{
    ManualProbe, MemoryProbe, MemorySample, PressureAction, PressureEvent, PressureLevel,
    SysinfoProbe,
};
pub use priority::{LevelCapacity, Priority};
pub(crate) use recycler::kept_for;
pub use refusal::{InputError, Refusal, ReplayError, SubmitError};
pub(crate) use request::{Facts, Job, Keys};
pub use request::{Request, MAX_GROUPS};
pub use routing::RoutingStrategy;
pub use session::{
    BackendHealth, BatchItem, BatchResult, EndpointStats, ErrorKind, RunContext, Session,
    SessionError, SessionFactory, WorkerInfo,
};
pub(crate) use slots::SlotCache;
pub use snapshot::{
    AffinityStats, BreakerState, BreakerStats, DeadLetterStats, ErrorKindCounts, FailureRecord,
    GroupStats, Health, HealthSummary, MemoryStats, PoolStats, QueueDepth, RefusalCounts,
    ReloadReport, ShutdownReport, TenantStats, Transition, WindowStats, WorkerStats,
};
