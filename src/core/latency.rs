//! Latency histograms: one set per worker, merged into percentiles by a
//! stats snapshot, and bucket counts per priority level (the Prometheus
//! histograms) kept beside them under the same lock.

#![forbid(unsafe_code)]

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::priority::Priority;

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
    buckets: LatencyHistograms,
}

/// Upper bounds, in seconds, of the latency buckets: 10 µs to 10 s, three
/// per decade (an inference takes microseconds on a no-op session and
/// seconds on a large model). A last bucket, `+Inf`, takes the rest.
pub const LATENCY_BUCKETS: [f64; 19] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Samples counted by bucket: `counts[i]` holds those at most
/// `LATENCY_BUCKETS[i]` and above the bound before; the last entry those
/// above every bound. Not cumulative; [`Buckets::cumulative`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Buckets {
    /// Samples per bucket.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of every sample, in seconds.
    pub sum_seconds: f64,
}

impl Buckets {
    #[inline]
    fn record(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS.partition_point(|&b| b < s);
        self.counts[i] += 1;
        self.sum_seconds += s;
    }

    fn add(&mut self, other: &Buckets) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
    }

    /// Samples in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, samples at most that bound)` for each bound, then
    /// `(f64::INFINITY, count)`: Prometheus' `le` buckets.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().scan(0, |sum, c| {
            *sum += c;
            Some(*sum)
        }))
    }
}

/// Bucket counts of the three latencies, per priority level (indexed by
/// [`Priority::index`]: urgent, high, normal, low).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencyHistograms {
    /// From entering a queue to a worker taking it (per attempt).
    pub queue_wait: [Buckets; 4],
    /// Time inside the session (per attempt).
    pub service: [Buckets; 4],
    /// From submit to the completed result.
    pub end_to_end: [Buckets; 4],
}

impl LatencyHistograms {
    fn add(&mut self, other: &LatencyHistograms) {
        let pairs = [
            (&mut self.queue_wait, &other.queue_wait),
            (&mut self.service, &other.service),
            (&mut self.end_to_end, &other.end_to_end),
        ];
        for (mine, theirs) in pairs {
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.add(b);
            }
        }
    }
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
            buckets: LatencyHistograms::default(),
        }))
    }
}

impl Latencies {
    /// Records one attempt; `end_to_end` only for a completed request.
    #[inline]
    pub(crate) fn record(
        &self,
        priority: Priority,
        queue_wait: Duration,
        service: Duration,
        end_to_end: Option<Duration>,
    ) {
        let p = priority.index();
        let mut h = self.0.lock();
        record(&mut h.queue_wait, queue_wait);
        record(&mut h.service, service);
        h.buckets.queue_wait[p].record(queue_wait);
        h.buckets.service[p].record(service);
        if let Some(e) = end_to_end {
            record(&mut h.end_to_end, e);
            h.buckets.end_to_end[p].record(e);
        }
    }

    /// The bucket counts of `all`, summed.
    pub(crate) fn histograms<'a>(
        all: impl IntoIterator<Item = &'a Latencies>,
    ) -> LatencyHistograms {
        let mut sum = LatencyHistograms::default();
        for l in all {
            sum.add(&l.0.lock().buckets);
        }
        sum
    }

    /// Merges several workers' histograms into percentiles.
    pub(crate) fn snapshot<'a>(all: impl IntoIterator<Item = &'a Latencies>) -> LatencySnapshot {
        let mut sum = Hists {
            queue_wait: histogram(),
            service: histogram(),
            end_to_end: histogram(),
            buckets: LatencyHistograms::default(),
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
