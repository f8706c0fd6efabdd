//! Latency histograms: one set per worker, merged into percentiles by a
//! stats snapshot.

#![forbid(unsafe_code)]

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

pub(super) fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 2 significant digits: a few KiB per histogram.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("valid histogram bounds")
}

#[inline]
pub(super) fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(ns);
}

struct Hists {
    queue_wait: Histogram<u64>,
    service: Histogram<u64>,
    end_to_end: Histogram<u64>,
}

/// One worker's three latency histograms (nanoseconds), behind one lock
/// that only that worker writes and a snapshot reads.
pub(crate) struct Latencies(Mutex<Hists>);

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Latencies")
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self(Mutex::new(Hists {
            queue_wait: histogram(),
            service: histogram(),
            end_to_end: histogram(),
        }))
    }
}

impl Latencies {
    /// Records one attempt; `end_to_end` only for a completed request.
    #[inline]
    pub(crate) fn record(
        &self,
        queue_wait: Duration,
        service: Duration,
        end_to_end: Option<Duration>,
    ) {
        let mut h = self.0.lock();
        record(&mut h.queue_wait, queue_wait);
        record(&mut h.service, service);
        if let Some(e) = end_to_end {
            record(&mut h.end_to_end, e);
        }
    }

    /// Merges several workers' histograms into percentiles.
    pub(crate) fn snapshot<'a>(all: impl IntoIterator<Item = &'a Latencies>) -> LatencySnapshot {
        let mut sum = Hists {
            queue_wait: histogram(),
            service: histogram(),
            end_to_end: histogram(),
        };
        for l in all {
            let h = l.0.lock();
            // Same bounds everywhere, so adding cannot fail.
            let _ = sum.queue_wait.add(&h.queue_wait);
            let _ = sum.service.add(&h.service);
            let _ = sum.end_to_end.add(&h.end_to_end);
        }
        LatencySnapshot {
            queue_wait: Percentiles::from_histogram(&sum.queue_wait),
            service: Percentiles::from_histogram(&sum.service),
            end_to_end: Percentiles::from_histogram(&sum.end_to_end),
        }
    }
}

/// Percentiles of one latency, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Percentiles {
    /// Summarises a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            count: h.len(),
            mean_us: h.mean() / 1_000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p95_us: us(h.value_at_quantile(0.95)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Latency percentiles: time in queue, time in the session, and submit to result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySnapshot {
    /// From entering a queue to a worker taking it (per attempt).
    pub queue_wait: Percentiles,
    /// Time inside the session (per attempt).
    pub service: Percentiles,
    /// From submit to the completed result.
    pub end_to_end: Percentiles,
}
