//! Dispatch: putting a job into a group's queue. The route comes from the
//! router (`policy::router`); on the way each group's model checks the
//! input and its breaker admits or turns the job away. A full queue passes
//! the job on to the next group.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select, TrySendError};

use super::group::Group;
use super::retries::Retries;
use crate::config::{AllOpenPolicy, DeadlineAdmission, RoutingConfig, RoutingStrategy};
use crate::core::{BreakerState, Event, Job, Refusal, SessionError};
use crate::policy::deadline;
use crate::policy::router::{self, Eligibility, Pick};
use crate::policy::Admission;

/// A generation's groups in routing order (priority, highest first).
pub(crate) struct Dispatch<I, O> {
    groups: Vec<Arc<Group<I, O>>>,
    has_ties: bool,
    when_all_open: AllOpenPolicy,
    deadline: DeadlineAdmission,
    strategy: RoutingStrategy,
    seed: u64,
    /// Requests routed between tied groups so far (shared by a pool's
    /// generations): the turn of `round_robin`, the position in the random
    /// sequence otherwise.
    turns: Arc<AtomicU64>,
}

/// Pauses of a submitter waiting for its tenant's share of a level to
/// free: 50 µs doubling to 2 ms.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> std::time::Duration {
        let pause = std::time::Duration::from_micros(50u64 << self.0.min(5));
        self.0 += 1;
        pause
    }
}

/// SplitMix64's output function: the `n`th draw of the sequence `seed`
/// starts, a bijection of `seed + n * golden ratio`. Stateless, so one
/// atomic counter makes a lock-free, reproducible generator.
fn splitmix64(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<I, O> router::Groups for Dispatch<I, O> {
    fn count(&self) -> usize {
        self.groups.len()
    }

    fn has_ties(&self) -> bool {
        self.has_ties
    }

    #[inline]
    fn healthy(&self, g: usize) -> bool {
        self.groups[g].is_healthy()
    }

    fn priority(&self, g: usize) -> u8 {
        self.groups[g].config().priority
    }

    fn load(&self, g: usize) -> usize {
        self.groups[g].in_flight()
    }

    fn weight(&self, g: usize) -> u32 {
        self.groups[g].config().weight
    }
}

impl<I, O> Dispatch<I, O> {
    /// `groups` sorted by priority, highest first, each knowing its index.
    /// `seed` is used when the routing config gives none; `turns` is the
    /// pool's turn counter.
    pub(crate) fn new(
        groups: Vec<Arc<Group<I, O>>>,
        when_all_open: AllOpenPolicy,
        deadline: DeadlineAdmission,
        routing: RoutingConfig,
        seed: u64,
        turns: Arc<AtomicU64>,
    ) -> Self {
        debug_assert!(groups.iter().enumerate().all(|(i, g)| g.index() == i));
        let has_ties = groups
            .windows(2)
            .any(|w| w[0].config().priority == w[1].config().priority);
        Self {
            groups,
            has_ties,
            when_all_open,
            deadline,
            strategy: routing.strategy,
            seed: routing.seed.unwrap_or(seed),
            turns,
        }
    }

    /// The next request's pick between tied groups. Draws a turn only when
    /// groups tie and the strategy needs one: one relaxed increment, no
    /// lock (the order of concurrent submitters is theirs to race; a
    /// single submitter sees an exact sequence).
    #[inline]
    fn pick(&self) -> Pick {
        let ticket = match self.strategy {
            RoutingStrategy::LeastLoaded => 0,
            _ if !self.has_ties => 0,
            RoutingStrategy::RoundRobin => self.turns.fetch_add(1, Ordering::Relaxed),
            RoutingStrategy::Random | RoutingStrategy::Weighted => {
                splitmix64(self.seed, self.turns.fetch_add(1, Ordering::Relaxed))
            }
        };
        Pick {
            strategy: self.strategy,
            ticket,
        }
    }

    /// The routing strategy.
    pub(crate) fn strategy(&self) -> RoutingStrategy {
        self.strategy
    }

    /// The shortest estimated time to a result for a request of priority
    /// `p` submitted now, over the healthy groups that have measured a
    /// call (see `policy::deadline`); `None` when none has.
    pub(crate) fn estimate(&self, p: crate::core::Priority) -> Option<std::time::Duration> {
        self.groups
            .iter()
            .filter(|g| g.is_healthy())
            .filter_map(|g| deadline::estimate(g.backlog(p), self.deadline.safety_factor))
            .min()
    }

    pub(crate) fn groups(&self) -> &[Arc<Group<I, O>>] {
        &self.groups
    }

    pub(crate) fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| &**g.name() == name)
    }
}

// Refusals hand the job back by value: boxing it would allocate on the
// submit path for every full queue.
#[allow(clippy::result_large_err)]
impl<I: Send + Sync + 'static, O: Send + 'static> Dispatch<I, O> {
    /// Offers a job to the eligible groups in routing order: a group is
    /// skipped while its breaker turns requests away. A probe goes to its
    /// group's front lane, ahead of the queued work. When every group that
    /// takes the input turned it away with an open breaker, the
    /// `when_all_open` policy decides: the least bad of them takes it, or
    /// it is refused. With `at_submit` and deadline-aware admission on, a
    /// group whose estimate passes the request's deadline is skipped too.
    /// The refusal is `Full`, `DeadlineUnmeetable`, `Unavailable` or
    /// `Invalid`. `waiting`: a refusal is not final (a blocking submit or
    /// a retry tries again), so a full tenant share does not count it.
    pub(crate) fn offer(
        &self,
        mut job: Job<I, O>,
        who: Eligibility,
        at_submit: bool,
        waiting: bool,
    ) -> Result<usize, (Job<I, O>, Refusal)> {
        let route = router::candidates(self, who, self.pick());
        let mut invalid = None;
        let mut full = false;
        // Groups that take the input but whose breaker turned it away.
        let mut open = 0u64;
        // The shortest estimate of the groups that could not make the
        // deadline, and the time that was left.
        let mut late: Option<(std::time::Duration, std::time::Duration)> = None;
        let deadline = job
            .deadline()
            .filter(|_| at_submit && self.deadline.enabled)
            .map(|d| d.saturating_duration_since(Instant::now()));
        for &gi in route.as_slice() {
            let g = &self.groups[gi as usize];
            if let Err(error) = g.factory().validate(job.input()) {
                invalid.get_or_insert_with(|| (g.name().to_string(), error));
                continue;
            }
            invalid = None;
            if let Some(left) = deadline {
                let backlog = g.backlog(job.priority());
                match deadline::estimate(backlog, self.deadline.safety_factor) {
                    Some(e) if e > left => {
                        late = Some(late.map_or((e, left), |(best, _)| (best.min(e), left)));
                        continue;
                    }
                    _ => {}
                }
            }
            let admission = g.breaker().admit();
            if admission == Admission::No {
                open |= 1 << gi;
                continue;
            }
            match self.enqueue(g, job, admission == Admission::Probe, waiting) {
                Ok(()) => return Ok(gi as usize),
                Err(j) => {
                    full = true;
                    job = j;
                }
            }
        }
        if invalid.is_none() && !full && open != 0 && self.when_all_open == AllOpenPolicy::LeastBad
        {
            // Every group that could take it is open: the least bad one
            // takes it anyway (Envoy's panic mode), not as a probe.
            let least_bad = route
                .as_slice()
                .iter()
                .filter(|&&gi| open & (1 << gi) != 0)
                .min_by(|&&a, &&b| {
                    let bad = |g: u8| self.groups[g as usize].breaker().badness();
                    bad(a).total_cmp(&bad(b))
                })
                .copied();
            if let Some(gi) = least_bad {
                let g = &self.groups[gi as usize];
                match self.enqueue(g, job, false, waiting) {
                    Ok(()) => {
                        g.breaker().note_override();
                        return Ok(gi as usize);
                    }
                    Err(j) => {
                        full = true;
                        job = j;
                    }
                }
            }
        }
        let refusal = match (invalid, late) {
            (Some((group, error)), _) => Refusal::Invalid { group, error },
            (None, _) if full => Refusal::Full {
                priority: job.priority(),
            },
            (None, Some((estimate, left))) => Refusal::DeadlineUnmeetable {
                priority: job.priority(),
                estimate,
                left,
            },
            (None, None) => Refusal::Unavailable,
        };
        Err((job, refusal))
    }

    /// Puts a job in `g`'s queue at its level, or in the front lane if it
    /// is a probe (at its level if the lane is full); hands it back if the
    /// queue is full.
    #[inline]
    fn enqueue(
        &self,
        g: &Group<I, O>,
        mut job: Job<I, O>,
        probe: bool,
        waiting: bool,
    ) -> Result<(), Job<I, O>> {
        let send = |job: Job<I, O>| {
            if waiting {
                g.levels().try_send_waiting(job.priority(), job)
            } else {
                g.levels().try_send(job.priority(), job)
            }
        };
        job.set_probe(probe);
        let sent = if probe {
            g.levels().try_send_front(job).or_else(|e| {
                let job = e.into_inner();
                send(job)
            })
        } else {
            send(job)
        };
        match sent {
            Ok(()) => {
                g.count(Event::Accepted);
                Ok(())
            }
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                g.breaker().release_probe(j.is_probe());
                Err(j)
            }
        }
    }

    /// Blocks until one of the eligible queues has room, `until` passes, or
    /// `closing` disconnects. The refusal is `Timeout`, `Closed` or
    /// `Unavailable`.
    pub(crate) fn wait_for_room(
        &self,
        mut job: Job<I, O>,
        until: Option<Instant>,
        closing: &Receiver<()>,
    ) -> Result<usize, (Job<I, O>, Refusal)> {
        let mut backoff = Backoff::default();
        loop {
            // Waiting for room, a request may go to any healthy group that
            // takes its input and whose breaker is not open (or, when all
            // are open and the policy is `least_bad`, to any of them).
            let who = Eligibility {
                only: job.only_group(),
                failed: 0,
                same_group_fallback: true,
            };
            let takes_it: Vec<u8> = router::candidates(self, who, self.pick())
                .as_slice()
                .iter()
                .copied()
                .filter(|&gi| {
                    self.groups[gi as usize]
                        .factory()
                        .validate(job.input())
                        .is_ok()
                })
                .collect();
            let not_open =
                |&gi: &u8| self.groups[gi as usize].breaker().state() != BreakerState::Open;
            let route: Vec<u8> = if takes_it.iter().any(not_open) {
                takes_it.into_iter().filter(not_open).collect()
            } else if self.when_all_open == AllOpenPolicy::LeastBad {
                // All open: wait for room in any of them (see `offer`).
                takes_it
            } else {
                Vec::new()
            };
            if route.is_empty() {
                return Err((job, Refusal::Unavailable));
            }
            let mut sel = Select::new();
            for &gi in &route {
                sel.send(self.groups[gi as usize].levels().sender(job.priority()));
            }
            let closing_op = sel.recv(closing);
            let ready = match until {
                Some(d) => match sel.ready_deadline(d) {
                    Ok(i) => i,
                    Err(_) => {
                        let priority = job.priority();
                        return Err((job, Refusal::Timeout { priority }));
                    }
                },
                None => sel.ready(),
            };
            if ready == closing_op {
                return Err((job, Refusal::Closed));
            }
            let gi = route[ready] as usize;
            let g = &self.groups[gi];
            job.entering_queue(Instant::now(), false);
            match g.levels().try_send_waiting(job.priority(), job) {
                Ok(()) => {
                    g.count(Event::Accepted);
                    if g.breaker().state() == BreakerState::Open {
                        g.breaker().note_override();
                    }
                    return Ok(gi);
                }
                Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                    job = j;
                    // The level has room but (tenant fairness) this
                    // tenant's share of it is full: wait for a request of
                    // the tenant to leave. Otherwise another submitter took
                    // the room: the channel stays ready, so wait a little
                    // before looking again instead of spinning on it.
                    if !g.levels().sender(job.priority()).is_full() {
                        // A channel with room is always ready, so the
                        // select above never times out on its own here.
                        if until.is_some_and(|d| Instant::now() >= d) {
                            let priority = job.priority();
                            g.levels().count_refused(priority, &job);
                            return Err((job, Refusal::Timeout { priority }));
                        }
                        let pause = backoff.next();
                        let pause = match until {
                            Some(d) => pause.min(d.saturating_duration_since(Instant::now())),
                            None => pause,
                        };
                        if !g.levels().wait_for_share(job.priority(), &job, pause) {
                            std::thread::sleep(pause);
                        }
                    }
                }
            }
        }
    }

    /// Re-routes a retry (the supervisor, once its backoff passed); hands
    /// it back if every eligible queue is full or no group can take it now.
    pub(crate) fn reroute(
        &self,
        mut job: Job<I, O>,
        retries: &Retries<I, O>,
    ) -> Result<(), Job<I, O>> {
        job.entering_queue(Instant::now(), false);
        let who = Eligibility {
            only: job.only_group(),
            failed: job.failed_groups(),
            same_group_fallback: retries.policy().same_group_fallback,
        };
        match self.offer(job, who, false, true) {
            Ok(_) => Ok(()),
            Err((mut job, Refusal::Invalid { group, error })) => {
                // Valid at submit, so only a reload could get here; fail it visibly.
                let error = SessionError::permanent(format!("group `{group}`: {error}"));
                job.note_error(Arc::from("router"), error);
                retries.dead_letter(job, || ());
                Ok(())
            }
            Err((job, _)) => Err(job),
        }
    }

    /// True when no group holds a request: queues empty, no call running.
    pub(crate) fn is_idle(&self) -> bool {
        self.groups.iter().all(|g| g.is_idle())
    }
}
