//! Prometheus exposition (feature `metrics`): the pool's stats snapshot in
//! the Prometheus text format (version 0.0.4), rendered when scraped, so the
//! request path records nothing it did not record before. The `prometheus`
//! crate's text encoder writes the format; this module only maps the
//! snapshot onto metric families. [`server`] serves it over HTTP.
//!
//! Names follow Prometheus' conventions: the `accelpool_` prefix, `_total`
//! on counters, base units (`_seconds`, `_bytes`). Group-level series carry a
//! `group` label; latency histograms also a `priority` label.

#![forbid(unsafe_code)]

pub mod server;

use std::collections::BTreeMap;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::core::{
    BreakerState, Buckets, Health, PoolStats, PressureLevel, Priority, LATENCY_BUCKETS,
};

/// The content type of [`render`]'s text, for an HTTP response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the batch-size histogram buckets.
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// The families being built, by name, in the order first seen.
#[derive(Default)]
struct Families {
    order: Vec<String>,
    by_name: BTreeMap<String, MetricFamily>,
}

impl Families {
    fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: &[(&str, &str)],
        m: Metric,
    ) {
        let family = self.by_name.entry(name.to_owned()).or_insert_with(|| {
            self.order.push(name.to_owned());
            let mut f = MetricFamily::default();
            f.set_name(name.to_owned());
            f.set_help(help.to_owned());
            f.set_field_type(kind);
            f
        });
        let mut m = m;
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).to_owned());
                    l.set_value((*v).to_owned());
                    l
                })
                .collect(),
        );
        family.mut_metric().push(m);
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: u64) {
        let mut c = Counter::default();
        c.set_value(v as f64);
        let mut m = Metric::default();
        m.set_counter(c);
        self.push(name, help, MetricType::COUNTER, labels, m);
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = Metric::default();
        m.set_gauge(g);
        self.push(name, help, MetricType::GAUGE, labels, m);
    }

    /// A histogram from `(upper bound, samples in that bucket)` pairs (not
    /// cumulative; the last bound is `+Inf`), their sum, and their count.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: impl Iterator<Item = (f64, u64)>,
        sum: f64,
    ) {
        let mut h = Histogram::default();
        let mut cumulative = 0;
        let mut bs = Vec::new();
        for (bound, n) in buckets {
            cumulative += n;
            // The text encoder writes the `+Inf` bucket from the count.
            if bound.is_finite() {
                let mut b = Bucket::default();
                b.set_upper_bound(bound);
                b.set_cumulative_count(cumulative);
                bs.push(b);
            }
        }
        h.set_bucket(bs);
        h.set_sample_count(cumulative);
        h.set_sample_sum(sum);
        let mut m = Metric::default();
        m.set_histogram(h);
        self.push(name, help, MetricType::HISTOGRAM, labels, m);
    }

    fn latency(&mut self, name: &str, help: &str, group: &str, per_level: &[Buckets; 4]) {
        for p in Priority::ALL {
            let b = &per_level[p.index()];
            let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
            let level = p.to_string();
            let labels = [("group", group), ("priority", level.as_str())];
            self.histogram(name, help, &labels, bounds.zip(b.counts), b.sum_seconds);
        }
    }

    fn into_vec(mut self) -> Vec<MetricFamily> {
        self.order
            .iter()
            .filter_map(|n| self.by_name.remove(n))
            .collect()
    }
}

fn breaker_state(s: BreakerState) -> f64 {
    match s {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    }
}

/// The metric families of a stats snapshot.
pub fn families(stats: &PoolStats) -> Vec<MetricFamily> {
    let mut f = Families::default();
    let c = &stats.counts;
    for (outcome, v) in [
        ("accepted", c.accepted),
        ("completed", c.completed),
        ("dead_lettered", c.dead_lettered),
        ("cancelled", c.cancelled),
        ("expired", c.expired),
    ] {
        f.counter(
            "accelpool_requests_total",
            "Requests by outcome: accepted at submit, then exactly one of completed, dead_lettered, cancelled, expired.",
            &[("outcome", outcome)],
            v,
        );
    }
    for (reason, v) in stats.refusals.by_name() {
        f.counter(
            "accelpool_refused_total",
            "Submissions handed back to the caller, by reason.",
            &[("reason", reason)],
            v,
        );
    }
    f.counter(
        "accelpool_retries_total",
        "Failed attempts scheduled to run again.",
        &[],
        c.retried,
    );
    f.counter(
        "accelpool_late_results_total",
        "Results that arrived after their request was resolved (discarded).",
        &[],
        stats.late_results_discarded,
    );
    f.counter(
        "accelpool_waits_parked_total",
        "Waits on a handle that parked the caller (the result was not there within wait_spin).",
        &[],
        stats.waits_parked,
    );
    f.counter(
        "accelpool_supervisor_panics_total",
        "Panics caught in the supervisor thread.",
        &[],
        stats.supervisor_panics,
    );
    f.gauge(
        "accelpool_in_flight",
        "Accepted requests not yet resolved.",
        &[],
        stats.in_flight as f64,
    );
    let health = match stats.health.status {
        Health::Healthy => 2.0,
        Health::Degraded => 1.0,
        Health::Unhealthy => 0.0,
    };
    f.gauge(
        "accelpool_health",
        "Pool health: 2 healthy, 1 degraded, 0 unhealthy.",
        &[],
        health,
    );
    f.gauge(
        "accelpool_dead_letters",
        "Letters held in the dead-letter queue.",
        &[],
        stats.dead_letter.len as f64,
    );
    f.counter(
        "accelpool_dead_letters_overflowed_total",
        "Dead letters pushed out of the full queue.",
        &[],
        stats.dead_letter.overflowed,
    );
    let m = &stats.memory;
    let level = match m.level {
        PressureLevel::Normal => 0.0,
        PressureLevel::High => 1.0,
    };
    f.gauge(
        "accelpool_memory_pressure",
        "Memory pressure level: 0 normal, 1 high.",
        &[],
        level,
    );
    f.counter(
        "accelpool_memory_pressure_transitions_total",
        "Changes of the memory pressure level.",
        &[],
        m.transitions,
    );
    if let Some(s) = m.last_sample {
        f.gauge(
            "accelpool_memory_used_bytes",
            "Memory in use at the last sample.",
            &[],
            s.used as f64,
        );
        f.gauge(
            "accelpool_memory_limit_bytes",
            "Memory limit at the last sample.",
            &[],
            s.limit as f64,
        );
    }

    for g in &stats.groups {
        let name = g.name.as_str();
        let group = [("group", name)];
        let gc = &g.counts;
        for (outcome, v) in [
            ("routed", gc.accepted),
            ("completed", gc.completed),
            ("dead_lettered", gc.dead_lettered),
            ("cancelled", gc.cancelled),
            ("expired", gc.expired),
        ] {
            f.counter(
                "accelpool_group_requests_total",
                "Requests of a group by outcome (routed counts each routing, retries included).",
                &[("group", name), ("outcome", outcome)],
                v,
            );
        }
        f.counter(
            "accelpool_group_retries_total",
            "Failed attempts of a group scheduled again.",
            &group,
            gc.retried,
        );
        for (kind, v) in g.failures.by_name() {
            f.counter(
                "accelpool_failed_attempts_total",
                "Failed attempts by error kind.",
                &[("group", name), ("kind", kind)],
                v,
            );
        }
        let sum =
            |pick: fn(&crate::core::WorkerStats) -> u64| g.workers.iter().map(pick).sum::<u64>();
        f.counter(
            "accelpool_panics_total",
            "Session panics caught.",
            &group,
            sum(|w| w.panics),
        );
        f.counter(
            "accelpool_session_builds_total",
            "Sessions built.",
            &group,
            sum(|w| w.session_builds),
        );
        f.counter(
            "accelpool_session_build_failures_total",
            "Session builds that failed.",
            &group,
            sum(|w| w.session_build_failures),
        );
        f.counter(
            "accelpool_stuck_calls_total",
            "Calls taken over past the call timeout.",
            &group,
            g.stuck_calls,
        );
        f.counter(
            "accelpool_breaker_transitions_total",
            "Circuit breaker state changes.",
            &group,
            g.breaker.transitions_total,
        );
        f.gauge(
            "accelpool_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            &group,
            breaker_state(g.breaker.state),
        );
        let q = &g.queue_depth;
        for (p, depth) in [
            ("urgent", q.urgent),
            ("high", q.high),
            ("normal", q.normal),
            ("low", q.low),
        ] {
            f.gauge(
                "accelpool_queue_depth",
                "Requests waiting in a group's queue, by priority.",
                &[("group", name), ("priority", p)],
                depth as f64,
            );
        }
        f.gauge(
            "accelpool_group_in_flight",
            "Requests queued or running in a group.",
            &group,
            g.in_flight as f64,
        );
        let workers = g.workers.len() as f64;
        let parked = g.workers.iter().filter(|w| w.parked).count() as f64;
        let healthy = g.workers.iter().filter(|w| w.healthy).count() as f64;
        f.gauge(
            "accelpool_workers",
            "Worker threads of a group.",
            &group,
            workers,
        );
        f.gauge(
            "accelpool_workers_parked",
            "Workers parked (load scaling or memory pressure).",
            &group,
            parked,
        );
        f.gauge(
            "accelpool_workers_healthy",
            "Workers with a working session.",
            &group,
            healthy,
        );
        f.gauge(
            "accelpool_group_healthy",
            "1 when the group takes requests, else 0.",
            &group,
            f64::from(u8::from(g.healthy)),
        );
        for e in &g.endpoints {
            let at = [("group", name), ("endpoint", e.endpoint.as_str())];
            for (result, n) in [("answered", e.answered), ("failed", e.failed)] {
                f.counter(
                    "accelpool_endpoint_calls_total",
                    "Calls to a remote group's server, by whether it answered.",
                    &[at[0], at[1], ("result", result)],
                    n,
                );
            }
            f.counter(
                "accelpool_endpoint_set_aside_total",
                "Times a server's own breaker set it aside.",
                &at,
                e.set_aside,
            );
            f.gauge(
                "accelpool_endpoint_in_flight",
                "Calls in flight on a remote group's server.",
                &at,
                e.in_flight as f64,
            );
            f.gauge(
                "accelpool_endpoint_in_service",
                "1 when a remote group's server takes calls, else 0.",
                &at,
                f64::from(u8::from(e.in_service)),
            );
        }
        let h = &g.histograms;
        f.latency(
            "accelpool_queue_wait_seconds",
            "Time from entering a queue to a worker taking the request (per attempt).",
            name,
            &h.queue_wait,
        );
        f.latency(
            "accelpool_service_seconds",
            "Time inside the session (per attempt).",
            name,
            &h.service,
        );
        f.latency(
            "accelpool_end_to_end_seconds",
            "Time from submit to the completed result.",
            name,
            &h.end_to_end,
        );
        if let Some(a) = &g.affinity {
            for (outcome, n) in [
                ("new_key", a.new_keys),
                ("on_worker", a.on_worker),
                ("handed_over", a.handed_over),
                ("taken", a.taken),
                ("stolen", a.stolen),
                ("elsewhere", a.elsewhere),
            ] {
                f.counter(
                    "accelpool_affinity_requests_total",
                    "Keyed requests by what affinity did with them.",
                    &[("group", name), ("outcome", outcome)],
                    n,
                );
            }
            f.gauge(
                "accelpool_affinity_keys",
                "Affinity keys a group remembers.",
                &group,
                a.keys as f64,
            );
            f.gauge(
                "accelpool_affinity_waiting",
                "Requests waiting for their key's worker.",
                &group,
                a.waiting as f64,
            );
        }
        if let Some(b) = &g.batching {
            let mut per_bucket = [0u64; BATCH_BUCKETS.len() + 1];
            let mut sum = 0.0;
            for (&size, &n) in &b.sizes {
                let i = BATCH_BUCKETS.partition_point(|&bound| bound < size as f64);
                per_bucket[i] += n;
                sum += size as f64 * n as f64;
            }
            let bounds = BATCH_BUCKETS.iter().copied().chain([f64::INFINITY]);
            f.histogram(
                "accelpool_batch_size",
                "Requests per inference call of a batching group.",
                &group,
                bounds.zip(per_bucket),
                sum,
            );
        }
    }
    f.into_vec()
}

/// The snapshot in the Prometheus text format.
///
/// ```
/// use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
/// let pool = Pool::<u32, u32>::builder()
///     .group(GroupConfig::new("cpu").workers(1).pin(false),
///            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) }))
///     .build()?;
/// pool.submit(Request::new(1))?.wait()?;
/// let text = accelpool::metrics::render(&pool.stats());
/// assert!(text.contains("accelpool_requests_total{outcome=\"completed\"} 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render(stats: &PoolStats) -> String {
    let mut out = Vec::with_capacity(16 * 1024);
    // The encoder fails only on a malformed family (none is built here) or
    // a failing writer (a Vec never fails).
    if let Err(e) = TextEncoder::new().encode(&families(stats), &mut out) {
        tracing::error!("rendering the metrics failed: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}
