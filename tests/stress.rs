//! Stress: many submitters, sessions that error, panic and run slow,
//! cancels and deadlines mixed in, and a shutdown in the middle of it all.
//! After shutdown every handle must hold exactly one outcome, and the counts
//! seen through the handles must equal the pool's counters one for one, so a
//! dropped outcome (a handle left unresolved) or a doubled one (counted
//! twice) fails the test.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use accelpool::{
    AffinityConfig, BatchingConfig, BreakerConfig, CountsSnapshot, DeadlineAdmission, GroupConfig,
    Pool, PoolBuilder, Priority, Refusal, Request, RetryPolicy, RoutingConfig, RoutingStrategy,
    RunContext, Runtime, RuntimeConfig, Session, SessionError, TaskError, TaskHandle,
    TenantsConfig, WorkerInfo,
};
use common::{assert_accounting, quiet_injected_panics};

/// A tiny deterministic generator (xorshift), so a failing round can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a session does with an input: decided by the input and the attempt,
/// so each attempt of a request can behave differently.
struct Chaos;

impl Session<u64, u64> for Chaos {
    fn run(&mut self, input: &u64, ctx: &RunContext<'_>) -> Result<u64, SessionError> {
        let mut r = Rng(input.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(ctx.attempt()) | 1);
        match r.below(100) {
            0..=14 => Err(SessionError::transient("injected transient error")),
            15..=19 => panic!("injected panic on request {input}"),
            20..=22 => Err(SessionError::permanent("injected permanent error")),
            23..=35 => {
                // Slow, and honours a cancel while it works.
                let until = Instant::now() + Duration::from_micros(r.below(300));
                while Instant::now() < until {
                    if ctx.is_cancelled() {
                        return Err(SessionError::cancelled());
                    }
                    std::hint::spin_loop();
                }
                Ok(input * 3)
            }
            _ => Ok(input * 3),
        }
    }
}

/// Breakers that open on a small window's failure rate and recover within
/// a round, so rounds pass through every breaker state.
fn quick_breaker() -> BreakerConfig {
    BreakerConfig {
        window: 10,
        minimum_calls: 5,
        half_open_max_calls: 2,
        recovery_timeout: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        ..Default::default()
    }
}

#[derive(Default, Debug)]
struct Tally {
    /// What the handles saw (`rejected`: submissions handed back).
    seen: CountsSnapshot,
    swept: u64,
    breaker_transitions: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, t: Tally) {
        self.seen += t.seen;
        self.swept += t.swept;
        self.breaker_transitions += t.breaker_transitions;
    }
}

/// Two groups that fail, panic and run slow (`Chaos`): `fast` batches in odd
/// seeds; `slow` has a breaker that opens and recovers within a round. With
/// `tie` they share a priority (and the routing strategy chooses). Half the
/// seeds turn on tenant fairness and affinity (waiting for a busy worker
/// or not), with two `fast` workers for keys to choose between.
fn chaos_pool(seed: u64, tie: bool) -> PoolBuilder<u64, u64> {
    let keyed = seed % 4 >= 2;
    Pool::<u64, u64>::builder()
        .tenants(TenantsConfig {
            enabled: keyed,
            max_queued_per_tenant: Some(3),
            ..Default::default()
        })
        .affinity(AffinityConfig {
            enabled: keyed,
            max_wait: Duration::from_micros(if seed % 8 >= 4 { 200 } else { 0 }),
            ..Default::default()
        })
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_micros(50),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(1),
            ..Default::default()
        })
        .group(
            GroupConfig::new("fast")
                .priority(8)
                .workers(if keyed { 2 } else { 1 })
                .capacity(8)
                .pin(false)
                // Every other round batches: the same faults, the same
                // accounting, with several requests per call.
                .batching(BatchingConfig {
                    max_batch_size: if seed % 2 == 1 { 4 } else { 1 },
                    max_queue_delay: Duration::from_micros(50),
                    preferred_batch_sizes: vec![],
                }),
            |_: &WorkerInfo| Ok(Chaos),
        )
        .group(
            GroupConfig::new("slow")
                .priority(if tie { 8 } else { 3 })
                .workers(1)
                .capacity(4)
                .spin_before_park(Duration::ZERO)
                .breaker(quick_breaker()),
            |_: &WorkerInfo| Ok(Chaos),
        )
}

fn round(seed: u64, shutdown_after: Duration, drain: Duration) -> Tally {
    const SUBMITTERS: usize = 4;
    const PER_SUBMITTER: u64 = 150;
    let pool = Arc::new(chaos_pool(seed, false).build().unwrap());
    let start = Arc::new(Barrier::new(SUBMITTERS + 1));
    let submitters: Vec<_> = (0..SUBMITTERS as u64)
        .map(|t| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (t + 1).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
                let mut handles: Vec<(u64, TaskHandle<u64>)> = Vec::new();
                let mut refused = 0u64;
                start.wait();
                for i in 0..PER_SUBMITTER {
                    let input = t * 1_000_000 + i;
                    let priority = Priority::ALL[rng.below(4) as usize];
                    let mut req = Request::new(input)
                        .priority(priority)
                        .tenant(["a", "b", "c"][rng.below(3) as usize])
                        .affinity(rng.below(6));
                    if rng.below(10) == 0 {
                        req = req.timeout(Duration::from_micros(rng.below(500)));
                    }
                    if rng.below(20) == 0 {
                        req = req.group(if rng.below(2) == 0 { "fast" } else { "slow" });
                    }
                    let result = match rng.below(3) {
                        0 => pool.try_submit(req),
                        1 => pool.submit(req),
                        _ => pool.submit_timeout(req, Duration::from_micros(200)),
                    };
                    match result {
                        Ok(h) => {
                            if rng.below(8) == 0 {
                                h.cancel();
                            }
                            handles.push((input, h));
                        }
                        Err(e) => {
                            // Refused requests come back intact.
                            let back = match e.refusal() {
                                Refusal::Full { .. }
                                | Refusal::Timeout { .. }
                                | Refusal::Closed
                                | Refusal::Unavailable => e.into_request(),
                                other => panic!("unexpected refusal: {other}"),
                            };
                            assert_eq!(back.into_input(), input);
                            refused += 1;
                        }
                    }
                }
                (handles, refused)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(shutdown_after);
    let report = pool.shutdown(drain);

    let mut tally = Tally::default();
    let mut dead = HashMap::new();
    for s in submitters {
        let (handles, refused) = s.join().unwrap();
        tally.seen.rejected += refused;
        for (input, mut h) in handles {
            // Resolved before shutdown returned: no waiting here.
            match h
                .try_get()
                .expect("every accepted request is resolved after shutdown")
            {
                Ok(out) => {
                    assert_eq!(out, input * 3, "result belongs to its own request");
                    tally.seen.completed += 1;
                }
                Err(TaskError::DeadLettered { attempts }) => {
                    assert!(!attempts.is_empty() && attempts.len() <= 3);
                    dead.insert(h.id(), input);
                    tally.seen.dead_lettered += 1;
                }
                Err(TaskError::Cancelled { .. }) => tally.seen.cancelled += 1,
                Err(TaskError::Expired) => tally.seen.expired += 1,
                Err(TaskError::AlreadyTaken) => panic!("result taken twice"),
            }
            assert!(matches!(h.try_get(), Some(Err(TaskError::AlreadyTaken))));
        }
    }

    let stats = pool.stats();
    let c = stats.counts;
    assert_accounting(&stats);
    for a in stats.groups.iter().filter_map(|g| g.affinity) {
        // Nothing is left in a mailbox, and no request handed over was
        // taken twice (the sweep takes the rest uncounted).
        assert_eq!(a.waiting, 0, "seed {seed}: {a:?}");
        assert!(a.taken + a.stolen <= a.handed_over, "seed {seed}: {a:?}");
    }
    assert_eq!(
        c.completed, tally.seen.completed,
        "seed {seed}: {c:?} vs {tally:?}"
    );
    assert_eq!(c.dead_lettered, tally.seen.dead_lettered, "seed {seed}");
    assert_eq!(c.cancelled, tally.seen.cancelled, "seed {seed}");
    assert_eq!(c.expired, tally.seen.expired, "seed {seed}");
    assert_eq!(c.rejected, tally.seen.rejected, "seed {seed}");
    assert_eq!(
        c.accepted + c.rejected,
        SUBMITTERS as u64 * PER_SUBMITTER,
        "every submission is accepted or handed back"
    );
    // Admissions and outcomes are final once shutdown returns. Refusals
    // still grow (submitters go on and are refused as closed), and attempt
    // counters may grow if a worker was detached mid-call and ended later.
    let r = report.stats.counts;
    assert_eq!(
        (
            r.accepted,
            r.completed,
            r.dead_lettered,
            r.cancelled,
            r.expired
        ),
        (
            c.accepted,
            c.completed,
            c.dead_lettered,
            c.cancelled,
            c.expired
        ),
        "the report holds the final outcome counts"
    );
    if report.workers_detached == 0 {
        assert_eq!(
            (r.started, r.failed_attempts),
            (c.started, c.failed_attempts)
        );
    }
    // Every dead-lettered request is in the dead-letter queue, input intact.
    let mut letters = HashMap::new();
    pool.dead_letters().inspect(|l| {
        assert!(!l.errors.is_empty());
        letters.insert(l.id, *l.input);
    });
    assert_eq!(
        letters, dead,
        "seed {seed}: the letters are the dead-lettered requests, inputs intact"
    );
    // Submitting after shutdown hands the request back.
    let err = pool.try_submit(Request::new(7)).unwrap_err();
    assert!(matches!(err.refusal(), Refusal::Closed));
    tally.swept = report.cancelled_queued;
    tally.breaker_transitions = stats
        .groups
        .iter()
        .map(|g| g.breaker.transitions.len() as u64)
        .sum();
    tally
}

#[test]
fn every_request_resolves_exactly_once_under_faults_and_shutdown() {
    quiet_injected_panics();
    let rounds: u64 = std::env::var("ACCELPOOL_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut total = Tally::default();
    for r in 0..rounds {
        let seed = 0xA5A5_0000 + r;
        // Shut down at different moments: at once, mid-flight, near the end.
        let after = Duration::from_micros([0, 200, 1_000, 5_000, 20_000][(r % 5) as usize]);
        // And give the drain no time, a little, or plenty.
        let drain = Duration::from_millis([0, 2, 50][(r % 3) as usize]);
        let t = round(seed, after, drain);
        total += t;
    }
    // The rounds must have exercised every outcome, or they prove little.
    assert!(
        total.swept > 0,
        "some rounds cancel queued work at the deadline: {total:?}"
    );
    eprintln!("stress totals over {rounds} rounds: {total:?}");
    assert!(
        total.seen.completed > 0
            && total.seen.dead_lettered > 0
            && total.seen.cancelled > 0
            && total.seen.expired > 0
            && total.seen.rejected > 0,
        "every outcome kind occurs: {total:?}"
    );
}

/// One round of two models in a runtime: submitters spread requests over
/// `a`, `b` and a model that does not exist; `a` is removed while loaded;
/// then the runtime shuts down. Every handle resolves exactly once, and
/// each model's outcomes seen through the handles equal its final counts.
fn runtime_round(seed: u64) {
    const SUBMITTERS: usize = 3;
    const PER_SUBMITTER: u64 = 120;
    // Both models pin their `slow` worker: on a small machine they share.
    let budget = RuntimeConfig {
        share_cores: true,
        ..Default::default()
    };
    let rt = Arc::new(Runtime::<u64, u64>::with_config(&budget).unwrap());
    // `a`: its two groups tie and take turns; `b`: weighted random between
    // them, with deadline-aware admission.
    rt.add_model(
        "a",
        chaos_pool(seed, true).routing(RoutingConfig {
            strategy: RoutingStrategy::RoundRobin,
            seed: None,
        }),
    )
    .unwrap();
    rt.add_model(
        "b",
        chaos_pool(seed + 1, true)
            .routing(RoutingConfig {
                strategy: RoutingStrategy::Weighted,
                seed: Some(seed),
            })
            .deadline_admission(DeadlineAdmission {
                enabled: true,
                safety_factor: 1.0,
            }),
    )
    .unwrap();
    let start = Arc::new(Barrier::new(SUBMITTERS + 1));
    let submitters: Vec<_> = (0..SUBMITTERS as u64)
        .map(|t| {
            let (rt, start) = (rt.clone(), start.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (t + 7).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
                let mut handles = Vec::new();
                let mut unknown = 0u64;
                start.wait();
                for i in 0..PER_SUBMITTER {
                    let input = t * 1_000_000 + i;
                    let model = ["a", "b", "b", "c"][rng.below(4) as usize];
                    let mut req =
                        Request::new(input).priority(Priority::ALL[rng.below(4) as usize]);
                    if rng.below(6) == 0 {
                        req = req.timeout(Duration::from_micros(rng.below(2_000)));
                    }
                    match rt.submit_timeout(model, req, Duration::from_micros(300)) {
                        Ok(h) => handles.push((model, input, h)),
                        Err(e) => {
                            match e.refusal() {
                                Refusal::UnknownModel { .. } => unknown += 1,
                                Refusal::Timeout { .. }
                                | Refusal::Closed
                                | Refusal::Unavailable
                                | Refusal::DeadlineUnmeetable { .. } => {}
                                other => panic!("unexpected refusal: {other}"),
                            }
                            assert_eq!(e.into_request().into_input(), input);
                        }
                    }
                }
                (handles, unknown)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_micros(500 + seed % 5 * 1_000));
    let removed = rt
        .remove_model("a", Duration::from_millis(seed % 3 * 5))
        .unwrap();
    let mut seen: HashMap<&str, CountsSnapshot> = HashMap::new();
    let mut unknown = 0;
    let mut joined = Vec::new();
    for s in submitters {
        let (handles, u) = s.join().unwrap();
        unknown += u;
        joined.extend(handles);
    }
    let reports = rt.shutdown(Duration::from_millis(50));
    for (model, input, h) in joined {
        let tally = seen.entry(model).or_default();
        tally.accepted += 1;
        match h.wait() {
            Ok(out) => {
                assert_eq!(out, input * 3);
                tally.completed += 1;
            }
            Err(TaskError::DeadLettered { .. }) => tally.dead_lettered += 1,
            Err(TaskError::Cancelled { .. }) => tally.cancelled += 1,
            Err(TaskError::Expired) => tally.expired += 1,
            Err(TaskError::AlreadyTaken) => panic!("result taken twice"),
        }
    }
    for (model, report) in [("a", &removed), ("b", &reports["b"])] {
        let c = report.stats.counts;
        assert_accounting(&report.stats);
        let s = seen.get(model).copied().unwrap_or_default();
        assert_eq!(
            (
                c.accepted,
                c.completed,
                c.dead_lettered,
                c.cancelled,
                c.expired
            ),
            (
                s.accepted,
                s.completed,
                s.dead_lettered,
                s.cancelled,
                s.expired
            ),
            "seed {seed}, model {model}"
        );
    }
    let stats = rt.stats();
    assert!(stats.models.is_empty());
    assert_eq!(stats.unknown_model, unknown, "seed {seed}");
    let c = stats.counts;
    assert_eq!(
        c.accepted,
        c.completed + c.dead_lettered + c.cancelled + c.expired,
        "seed {seed}: the identity over both models"
    );
    assert_eq!(c.accepted, seen.values().map(|s| s.accepted).sum::<u64>());
}

#[test]
fn two_models_in_a_runtime_resolve_exactly_once_across_a_removal() {
    quiet_injected_panics();
    let rounds: u64 = std::env::var("ACCELPOOL_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(40, |r: u64| r.div_ceil(4));
    for r in 0..rounds {
        runtime_round(0x5EED_0000 + r);
    }
}
