//! One server of a remote group: its connection, the calls it has in
//! flight, and its own breaker (failures in a row set it aside for a
//! cooldown; one call then tries it again).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tonic::transport::Channel;

use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;

/// One server.
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) client: GrpcInferenceServiceClient<Channel>,
    in_flight: AtomicUsize,
    /// Failures in a row.
    failures: AtomicU32,
    /// Nanoseconds since the group's epoch until which it is set aside; 0
    /// while in service.
    aside_until: AtomicU64,
}

/// A call in flight on an endpoint: counted until dropped.
pub(crate) struct InFlight<'a>(&'a Endpoint);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub(crate) fn new(url: String, client: GrpcInferenceServiceClient<Channel>) -> Self {
        Self {
            url,
            client,
            in_flight: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            aside_until: AtomicU64::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether it takes calls at `now` (nanoseconds since the epoch): in
    /// service, or its cooldown is over (the next call is its trial).
    pub(crate) fn available(&self, now: u64) -> bool {
        self.aside_until() <= now
    }

    /// Nanoseconds since the epoch until which it is set aside (0 in
    /// service).
    pub(crate) fn aside_until(&self) -> u64 {
        self.aside_until.load(Ordering::Relaxed)
    }

    /// Counts a call starting.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// It answered: back in service.
    pub(crate) fn answered(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.aside_until.store(0, Ordering::Relaxed);
    }

    /// It failed at `now`; after `limit` failures in a row it is set aside
    /// until `now + cooldown` (a failed trial after a cooldown sets it
    /// aside again at once). True when this failure set it aside.
    pub(crate) fn failed(&self, now: u64, limit: u32, cooldown: u64) -> bool {
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= limit {
            self.aside_until
                .store(now.saturating_add(cooldown).max(1), Ordering::Relaxed);
            return n == limit;
        }
        false
    }
}

/// Nanoseconds since `epoch`.
pub(crate) fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
