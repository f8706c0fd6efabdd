//! Pure state machines and decisions, with no threads and no channels, each
//! testable alone: the circuit breaker, the router, the retry policy, the
//! dead-letter queue, memory-pressure hysteresis, load scaling and the
//! deadline estimate, the core budget's allotment, the tenants' deficit
//! round robin and the affinity keys' memory.

pub(crate) mod affinity;
pub(crate) mod breaker;
pub(crate) mod cores;
pub(crate) mod deadline;
pub(crate) mod dlq;
pub(crate) mod drr;
pub(crate) mod pressure;
pub(crate) mod retry;
pub(crate) mod router;
pub(crate) mod scaling;
pub(crate) mod window;

pub use breaker::{Admission, CircuitBreaker};
pub use dlq::DeadLetterQueue;
