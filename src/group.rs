//! A device group: a named set of workers on one device, with its own queues,
//! routing priority and session factory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::config::GroupConfig;
use crate::queue::Levels;
use crate::request::Job;
use crate::session::SessionFactory;
use crate::stats::{Counts, CountsSnapshot, GroupStats, Latencies, QueueDepth};
use crate::worker::WorkerShared;

/// One worker as the pool holds it.
pub(crate) struct WorkerSlot<O> {
    pub shared: Arc<WorkerShared<O>>,
    /// Dropping it wakes the worker so it sees its stop flag.
    pub control: Option<Sender<()>>,
    /// Disconnects when the thread has exited.
    pub exited: Receiver<()>,
    pub thread: Option<JoinHandle<()>>,
}

pub(crate) struct Group<I, O> {
    pub name: Arc<str>,
    pub config: GroupConfig,
    pub levels: Levels<Job<I, O>>,
    pub factory: Arc<dyn SessionFactory<I, O>>,
    /// Submit-side counts (accepted, rejected); workers count the rest.
    pub counts: Counts,
    pub workers: Mutex<Vec<WorkerSlot<O>>>,
}

impl<I, O> Group<I, O> {
    pub(crate) fn new(config: GroupConfig, factory: Arc<dyn SessionFactory<I, O>>) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            levels: Levels::new(&config.capacity),
            config,
            factory,
            counts: Counts::default(),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Work queued plus calls running: the tie-breaker between groups of
    /// equal priority.
    pub(crate) fn in_flight(&self) -> usize {
        let queued: usize = self.levels.depth().iter().sum();
        let running = self
            .workers
            .lock()
            .iter()
            .filter(|w| w.shared.busy_since.load(Ordering::Relaxed) != 0)
            .count();
        queued + running
    }

    pub(crate) fn stats(&self) -> GroupStats {
        let workers = self.workers.lock();
        let per_worker: Vec<_> = workers.iter().map(|w| w.shared.stats()).collect();
        let mut counts = self.counts.snapshot();
        for w in &per_worker {
            add_worker_counts(&mut counts, &w.counts);
        }
        GroupStats {
            name: self.name.to_string(),
            priority: self.config.priority,
            queue_depth: QueueDepth::from_levels(self.levels.depth()),
            counts,
            latency: Latencies::snapshot(workers.iter().map(|w| &w.shared.latency)),
            workers: per_worker,
        }
    }
}

/// Adds what workers count (everything but admissions) into a group's counts.
pub(crate) fn add_worker_counts(into: &mut CountsSnapshot, w: &CountsSnapshot) {
    into.started += w.started;
    into.completed += w.completed;
    into.failed_attempts += w.failed_attempts;
    into.retried += w.retried;
    into.dead_lettered += w.dead_lettered;
    into.cancelled += w.cancelled;
    into.expired += w.expired;
}
