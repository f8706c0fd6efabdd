//! The pool's one background thread. Today it keeps the retry timer: failed
//! attempts wait here for their backoff, never on a worker, and are then
//! re-routed. It sleeps until the next retry is due or a message arrives, so
//! an idle pool's supervisor uses no CPU.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::handle::Outcome;
use crate::pool::Shared;
use crate::request::Job;

/// Messages to the supervisor.
pub(crate) enum Msg<I, O> {
    /// Re-route this job once `due` passes.
    Retry(Instant, Job<I, O>),
    /// Stop and hand back the retries still waiting.
    Stop,
}

/// How long a due retry waits before trying again when every eligible
/// queue is full.
const FULL_RECHECK: Duration = Duration::from_millis(1);

struct Pending<I, O> {
    due: Instant,
    seq: u64,
    job: Job<I, O>,
}

impl<I, O> PartialEq for Pending<I, O> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl<I, O> Eq for Pending<I, O> {}
impl<I, O> PartialOrd for Pending<I, O> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<I, O> Ord for Pending<I, O> {
    // Reversed: BinaryHeap is a max-heap and the earliest due must come first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// Runs until told to stop; returns the retries that were still waiting.
pub(crate) fn run<I: Send + 'static, O: Send + 'static>(
    shared: Arc<Shared<I, O>>,
    rx: Receiver<Msg<I, O>>,
) -> Vec<Job<I, O>> {
    let mut heap: BinaryHeap<Pending<I, O>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Pending<I, O>>, due, job| {
        seq += 1;
        heap.push(Pending { due, seq, job });
    };
    loop {
        let msg = match heap.peek() {
            Some(p) => rx.recv_deadline(p.due),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Msg::Retry(due, job)) => push(&mut heap, due, job),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        let mut still_full = Vec::new();
        while heap.peek().is_some_and(|p| p.due <= now) {
            let Some(Pending { job, .. }) = heap.pop() else {
                break;
            };
            if job.slot.status().is_terminal() {
                continue; // cancelled while waiting; the canceller counted it
            }
            if job.is_expired(now) {
                job.slot.resolve_queued(Outcome::Expired);
                continue;
            }
            if let Err(job) = shared.reroute(job) {
                still_full.push(job);
            }
        }
        for job in still_full {
            push(&mut heap, now + FULL_RECHECK, job);
        }
    }
    let mut left: Vec<Job<I, O>> = heap.into_iter().map(|p| p.job).collect();
    left.extend(rx.try_iter().filter_map(|m| match m {
        Msg::Retry(_, job) => Some(job),
        Msg::Stop => None,
    }));
    left
}
