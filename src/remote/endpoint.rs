//! One server of a remote group: its connection, the calls it has in
//! flight, its own breaker (failures in a row set it aside for a cooldown;
//! one call then tries it again), its last health poll and its counts.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tonic::transport::Channel;

use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::rest::Rest;
use crate::core::EndpointStats;

/// How a group talks to its servers: one protocol for all of them.
pub(crate) enum Client {
    /// A connection shared by the workers (HTTP/2 carries their calls side
    /// by side).
    Grpc(GrpcInferenceServiceClient<Channel>),
    /// A blocking HTTP/1.1 client with its own pool of connections.
    Rest(Rest),
}

/// Its health as the last poll found it.
const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const NOT_READY: u8 = 2;

/// One server.
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) client: Client,
    in_flight: AtomicUsize,
    /// Failures in a row.
    failures: AtomicU32,
    /// Nanoseconds since the group's epoch until which it is set aside; 0
    /// while in service.
    aside_until: AtomicU64,
    /// The last health poll's answer (`UNKNOWN` before the first).
    health: AtomicU8,
    answered: AtomicU64,
    failed: AtomicU64,
    set_aside: AtomicU64,
    /// The last call failure, or why the last poll found it not ready.
    last_error: Mutex<Option<String>>,
}

/// A call in flight on an endpoint: counted until dropped.
pub(crate) struct InFlight<'a>(&'a Endpoint);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub(crate) fn new(url: String, client: Client) -> Self {
        Self {
            url,
            client,
            in_flight: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            aside_until: AtomicU64::new(0),
            health: AtomicU8::new(UNKNOWN),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether it takes calls at `now` (nanoseconds since the epoch): its
    /// last health poll did not find it not ready, and it is in service or
    /// its cooldown is over (the next call is its trial).
    pub(crate) fn available(&self, now: u64) -> bool {
        self.aside_until() <= now && self.health.load(Ordering::Relaxed) != NOT_READY
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

    /// It answered a call (a result or its own error status).
    pub(crate) fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.back_in_service();
    }

    /// It answered (a call, the metadata read, a health poll): its breaker
    /// forgets the failures.
    pub(crate) fn back_in_service(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.aside_until.store(0, Ordering::Relaxed);
    }

    /// A call failed on it at `now` with `error`; after `limit` failures in
    /// a row it is set aside until `now + cooldown` (a failed trial after a
    /// cooldown sets it aside again at once). True when this failure set
    /// it aside.
    pub(crate) fn failed(&self, now: u64, limit: u32, cooldown: u64, error: String) -> bool {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error);
        self.fail(now, limit, cooldown) == limit
    }

    /// One more failure in a row: from the `limit`-th on it is set aside
    /// until `now + cooldown`. Returns how many in a row.
    fn fail(&self, now: u64, limit: u32, cooldown: u64) -> u32 {
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= limit {
            self.aside_until
                .store(now.saturating_add(cooldown).max(1), Ordering::Relaxed);
            if n == limit {
                self.set_aside.fetch_add(1, Ordering::Relaxed);
            }
        }
        n
    }

    /// A health poll's answer at `now`: `Ok` ready (back in service at
    /// once), `Err(why)` not, which counts like a failed call: the
    /// `limit`-th failure in a row sets it aside and marks it not ready
    /// (one slow or lost poll does not). True when its readiness changed.
    pub(crate) fn polled(
        &self,
        answer: Result<(), String>,
        now: u64,
        limit: u32,
        cooldown: u64,
    ) -> bool {
        let health = match answer {
            Ok(()) => {
                self.back_in_service();
                READY
            }
            Err(why) => {
                *self.last_error.lock() = Some(why);
                if self.fail(now, limit, cooldown) < limit {
                    return false;
                }
                NOT_READY
            }
        };
        self.health.swap(health, Ordering::Relaxed) != health
    }

    /// Whether the last poll found it ready (`None` before the first).
    pub(crate) fn ready(&self) -> Option<bool> {
        match self.health.load(Ordering::Relaxed) {
            UNKNOWN => None,
            h => Some(h == READY),
        }
    }

    /// The last failure or not-ready reason.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Its stats at `now` (nanoseconds since the epoch).
    pub(crate) fn stats(&self, now: u64) -> EndpointStats {
        EndpointStats {
            endpoint: self.url.clone(),
            in_flight: self.in_flight(),
            answered: self.answered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            set_aside: self.set_aside.load(Ordering::Relaxed),
            in_service: self.available(now),
            ready: self.ready(),
            last_error: self.last_error(),
        }
    }
}

/// Nanoseconds since `epoch`.
pub(crate) fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
