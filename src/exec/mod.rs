//! The runtime: queues, workers, groups, dispatch, the supervisor, and
//! stopping a generation. Each part takes the narrow handle it needs (a
//! group, the retry path, the admission gate, the pressure state), never
//! the whole generation; the pool layer wires them together.

pub(crate) mod admission;
mod affinity;
pub(crate) mod dispatch;
pub(crate) mod drain;
pub(crate) mod fair;
pub(crate) mod group;
mod park;
pub(crate) mod pinning;
pub(crate) mod pressure;
mod queue;
pub(crate) mod retries;
mod scaling;
pub(crate) mod supervisor;
pub(crate) mod worker;
pub(crate) mod worker_state;
