//! Batch counts: how full the batches of one worker were and how long it
//! waited to fill them, merged per group by a stats snapshot.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::latency::{histogram, record, Percentiles};

/// One worker's batches: a count per size, and the fill waits.
pub(crate) struct Batches {
    /// `sizes[n]`: calls that took `n` requests (index 0 unused).
    sizes: Box<[AtomicU64]>,
    fill_wait: Mutex<Histogram<u64>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batches")
    }
}

impl Batches {
    /// For batches of up to `max` requests.
    pub(crate) fn new(max: u32) -> Self {
        Self {
            sizes: (0..=max).map(|_| AtomicU64::new(0)).collect(),
            fill_wait: Mutex::new(histogram()),
        }
    }

    /// One call of `size` requests, after `fill_wait` spent gathering them.
    pub(crate) fn record(&self, size: usize, fill_wait: Duration) {
        if let Some(c) = self.sizes.get(size) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        record(&mut self.fill_wait.lock(), fill_wait);
    }

    /// Merges several workers' batches; `max` is the group's
    /// `max_batch_size`.
    pub(crate) fn snapshot<'a>(max: u32, all: impl IntoIterator<Item = &'a Batches>) -> BatchStats {
        let mut sizes = BTreeMap::new();
        let mut waits = histogram();
        for b in all {
            for (n, c) in b.sizes.iter().enumerate().skip(1) {
                let c = c.load(Ordering::Relaxed);
                if c > 0 {
                    *sizes.entry(n).or_insert(0) += c;
                }
            }
            // Same bounds everywhere, so adding cannot fail.
            let _ = waits.add(&*b.fill_wait.lock());
        }
        let batches: u64 = sizes.values().sum();
        let requests: u64 = sizes.iter().map(|(n, c)| *n as u64 * c).sum();
        let mean_size = if batches == 0 {
            0.0
        } else {
            requests as f64 / batches as f64
        };
        BatchStats {
            max_batch_size: max,
            batches,
            requests,
            mean_size,
            mean_fill: mean_size / f64::from(max.max(1)),
            sizes,
            fill_wait: Percentiles::from_histogram(&waits),
        }
    }
}

/// A group's batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchStats {
    /// The group's `max_batch_size`.
    pub max_batch_size: u32,
    /// Calls made (each took one batch, of one request or more).
    pub batches: u64,
    /// Requests those calls took.
    pub requests: u64,
    /// Requests per call.
    pub mean_size: f64,
    /// `mean_size / max_batch_size`.
    pub mean_fill: f64,
    /// Calls per batch size (sizes with no call left out).
    pub sizes: BTreeMap<usize, u64>,
    /// Time a worker spent gathering each batch, from taking its first
    /// request to the call.
    pub fill_wait: Percentiles,
}
