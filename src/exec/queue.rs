//! A group's queues: one bounded crossbeam channel per priority level, and
//! the worker's strict-priority receive with spin-before-park.
//!
//! # The receive protocol
//!
//! 1. Look at the front lane (the breaker's half-open probes), then the
//!    levels from `Urgent` down to `Low`, with `try_recv`; take the first
//!    request found. This is the only place a request is taken, so
//!    priority is strict: a lower level is read only when every higher level
//!    was empty a moment before.
//! 2. If all are empty, spin re-reading the levels (a CPU spin hint between
//!    reads, a yield every 128 reads) until the spin window ends. A hot pool
//!    hands work over here without a kernel round trip (BENCHMARKS.md has
//!    the measurements behind this loop's shape).
//! 3. Then park on a [`Select`] built once per worker over the four levels
//!    and the worker's control channel. `Select::ready` only reports that
//!    some operation is ready; it takes nothing, so after waking the worker
//!    goes back to step 1 and still takes the highest level first. A parked
//!    worker uses no CPU: it sleeps in the channel's waker until a sender
//!    pushes to one of its levels or its control channel is dropped.
//!
//! With tenant fairness on, a level's channel carries tokens and its
//! requests wait in a deficit round robin (`exec::fair` has the protocol);
//! the receive protocol above is the same. With affinity on, each level is
//! preceded by the workers' mailboxes, a keyed request taken from a level
//! may be handed to its key's worker, and a parked worker also wakes on its
//! mailbox's bell (`exec::affinity` has the protocol).
//!
//! The worker checks its stop flag and its park reasons before each take.
//! Stopping a worker is "raise the flag, then drop its control sender";
//! parking or waking it is "change its park reasons, then put a note on its
//! control channel" (capacity 1, so a note already there is enough). Either
//! wakes a parked select.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Select, Sender, TrySendError};

use super::affinity::{Affinity, Keyed, Route};
use super::fair::{self, Fair, Tenanted};
use super::park::ParkReasons;
use crate::config::{AffinityConfig, TenantsConfig};
use crate::core::{saturating_add, AffinityStats, LevelCapacity, Priority, TenantStats};

/// Lanes of one group, taken in this order: the breaker's probes, then
/// the four priority levels.
const LANES: usize = Priority::COUNT + 1;
/// The probes' lane.
const FRONT: usize = 0;

/// What a lane's channel carries: a request, or (in a fair level) a token
/// for one waiting in the level's round robin.
type Item<T> = Option<T>;

/// The bounded channels of one group: a front lane for the breaker's
/// half-open probes, which a worker takes before anything else (a probe
/// must not wait behind the work queued while the group was closed), and
/// one lane per priority level; with tenant fairness, the levels' round
/// robins; with affinity, the workers' mailboxes.
pub(crate) struct Levels<T> {
    tx: [Sender<Item<T>>; LANES],
    rx: [Receiver<Item<T>>; LANES],
    fair: Option<Box<Fair<T>>>,
    affinity: Option<Box<Affinity<T>>>,
}

/// What a group's queues are built with, besides their capacity.
pub(crate) struct LevelsConfig<'a> {
    /// The most probes the group's breaker admits at once.
    pub(crate) probes: usize,
    /// Fairness between tenants within each level, when on.
    pub(crate) tenants: &'a TenantsConfig,
    /// Affinity between keys and workers, when on.
    pub(crate) affinity: &'a AffinityConfig,
    /// The group's most workers.
    pub(crate) workers: usize,
}

impl<T: Tenanted + Keyed> Levels<T> {
    pub(crate) fn new(cap: &LevelCapacity, cfg: &LevelsConfig<'_>) -> Self {
        let probes = cfg.probes;
        let chans: [_; LANES] = std::array::from_fn(|lane| match lane {
            FRONT => bounded(probes),
            _ => bounded(cap.of(Priority::ALL[lane - 1])),
        });
        let tx = std::array::from_fn(|i| chans[i].0.clone());
        let rx = std::array::from_fn(|i| chans[i].1.clone());
        let fair = cfg
            .tenants
            .enabled
            .then(|| Box::new(Fair::new(cfg.tenants, cap)));
        let affinity = cfg
            .affinity
            .enabled
            .then(|| Box::new(Affinity::new(cfg.affinity, cfg.workers)));
        Self {
            tx,
            rx,
            fair,
            affinity,
        }
    }

    /// Queues a request at its level; hands it back when the level (or,
    /// with fairness, its tenant's share of it) is full.
    #[inline]
    pub(crate) fn try_send(&self, p: Priority, t: T) -> Result<(), TrySendError<T>> {
        self.send_at(p, t, false)
    }

    /// [`Levels::try_send`] for a blocking submit that waits and tries
    /// again: its tenant is not counted a refusal until it gives up
    /// ([`Levels::count_refused`]).
    pub(crate) fn try_send_waiting(&self, p: Priority, t: T) -> Result<(), TrySendError<T>> {
        self.send_at(p, t, true)
    }

    #[inline]
    fn send_at(&self, p: Priority, t: T, waiting: bool) -> Result<(), TrySendError<T>> {
        let lane = p.index() + 1;
        match &self.fair {
            None => self.tx[lane].try_send(Some(t)).map_err(unwrap_err),
            Some(fair) => fair
                .push(p.index(), t, &self.tx[lane], waiting)
                .map_err(|fair::Refused::Full(t)| TrySendError::Full(t)),
        }
    }

    /// Counts a refusal against `t`'s tenant at level `p` (tenant
    /// fairness): a blocking submit gave up waiting for its share.
    pub(crate) fn count_refused(&self, p: Priority, t: &T) {
        if let Some(f) = &self.fair {
            f.count_refused(p.index(), t);
        }
    }

    /// Waits up to `timeout` for room in the share of `t`'s tenant at
    /// level `p` (tenant fairness); false, at once, when there is no share
    /// to wait for: fairness is off or the share is not full.
    pub(crate) fn wait_for_share(&self, p: Priority, t: &T, timeout: Duration) -> bool {
        self.fair
            .as_ref()
            .is_some_and(|f| f.wait_for_share(p.index(), t, timeout))
    }

    /// Queues a probe in the front lane.
    pub(crate) fn try_send_front(&self, t: T) -> Result<(), TrySendError<T>> {
        self.tx[FRONT].try_send(Some(t)).map_err(unwrap_err)
    }

    /// The sending end of level `p`, to wait for room on (the request is
    /// then queued with [`Levels::try_send`]).
    pub(crate) fn sender(&self, p: Priority) -> &Sender<Item<T>> {
        &self.tx[p.index() + 1]
    }

    /// The tenants' counts (empty without fairness).
    pub(crate) fn tenant_stats(&self) -> Vec<TenantStats> {
        self.fair.as_ref().map_or_else(Vec::new, |f| f.stats())
    }

    /// What affinity did (`None` with affinity off).
    pub(crate) fn affinity_stats(&self) -> Option<AffinityStats> {
        self.affinity.as_ref().map(|a| a.stats())
    }

    /// Requests waiting per level, in the queues and the mailboxes (probes
    /// not included).
    pub(crate) fn depth(&self) -> [usize; Priority::COUNT] {
        let held = self.affinity.as_ref().map(|a| a.waiting());
        std::array::from_fn(|i| self.rx[i + 1].len() + held.map_or(0, |h| h[i]))
    }

    /// Probes waiting in the front lane.
    pub(crate) fn probes_waiting(&self) -> usize {
        self.rx[FRONT].len()
    }

    /// Takes the highest-priority request waiting, without blocking, for
    /// no worker in particular (the shutdown's sweep).
    #[inline]
    pub(crate) fn try_take(&self) -> Option<T> {
        self.try_take_lanes(LANES, None)
    }

    /// Takes the highest-priority request waiting for worker `me` to run,
    /// without blocking.
    #[inline]
    pub(crate) fn try_take_for(&self, me: usize) -> Option<T> {
        self.try_take_lanes(LANES, Some(me))
    }

    /// Takes the highest-priority request waiting at level `p` or above
    /// (probes first) for worker `me` to run, without blocking: how a
    /// batch fills.
    #[inline]
    pub(crate) fn try_take_at_least(&self, p: Priority, me: usize) -> Option<T> {
        self.try_take_lanes(p.index() + 2, Some(me))
    }

    /// The first request of the first `lanes` lanes (a token fetches the
    /// round robin's pick of its level); with affinity, each level's
    /// mailboxes first, and a keyed request may be handed over instead.
    #[inline]
    fn try_take_lanes(&self, lanes: usize, me: Option<usize>) -> Option<T> {
        for (lane, r) in self.rx[..lanes].iter().enumerate() {
            // The probes' lane comes first; the levels follow it.
            let level = lane.checked_sub(1);
            let affinity = self.affinity.as_deref().zip(level);
            if let Some((a, l)) = affinity {
                if let Some(t) = a.take(l, me, Instant::now) {
                    return Some(t);
                }
            }
            loop {
                let t = match r.try_recv() {
                    // A request (in a fair level, one that went straight
                    // onto the channel).
                    Ok(Some(t)) => t,
                    // Tokens come only in level lanes (the probes' lane
                    // carries requests), so `level` is set.
                    Ok(None) => match self.fair.as_ref().zip(level) {
                        Some((f, l)) => f.take_for_token(l),
                        None => break,
                    },
                    Err(_) => break,
                };
                match (affinity, me) {
                    (Some((a, l)), Some(me)) => match a.route(me, t, l, Instant::now) {
                        Route::Here(t) => return Some(t),
                        // Handed to its key's worker: look again.
                        Route::Handed => {}
                    },
                    _ => return Some(t),
                }
            }
        }
        None
    }

    /// Blocks until a request at level `p` or above is waiting, or
    /// `deadline` passes; true if one is.
    pub(crate) fn wait_at_least(&self, p: Priority, deadline: Instant) -> bool {
        let mut sel = Select::new();
        for r in &self.rx[..=p.index() + 1] {
            sel.recv(r);
        }
        sel.ready_deadline(deadline).is_ok()
    }
}

/// A refused send's item, back as the caller's value.
fn unwrap_err<T>(e: TrySendError<Item<T>>) -> TrySendError<T> {
    match e {
        TrySendError::Full(t) => TrySendError::Full(t.expect("a request was sent")),
        TrySendError::Disconnected(t) => TrySendError::Disconnected(t.expect("a request was sent")),
    }
}

/// A worker's receiving end: its group's levels plus its control channel
/// (and, with affinity, its mailbox's bell).
pub(crate) struct Receiving<'a, T> {
    levels: &'a Levels<T>,
    control: &'a Receiver<()>,
    bell: Option<&'a Receiver<()>>,
    sel: Select<'a>,
    spin: Duration,
    /// The worker's index in its group.
    me: usize,
}

impl<'a, T: Tenanted + Keyed> Receiving<'a, T> {
    pub(crate) fn new(
        levels: &'a Levels<T>,
        control: &'a Receiver<()>,
        spin: Duration,
        me: usize,
    ) -> Self {
        let mut sel = Select::new();
        for r in &levels.rx {
            sel.recv(r);
        }
        sel.recv(control);
        let bell = levels.affinity.as_ref().and_then(|a| a.bell(me));
        if let Some(b) = bell {
            sel.recv(b);
        }
        Self {
            levels,
            control,
            bell,
            sel,
            spin,
            me,
        }
    }

    /// The next request by strict priority; `None` once `stop` is raised or
    /// the worker has a reason to park. With affinity, the worker is idle
    /// for offers while in here.
    pub(crate) fn take(&mut self, stop: &AtomicBool, park: &ParkReasons) -> Option<T> {
        let Some(a) = self.levels.affinity.as_deref() else {
            return self.take_any(stop, park);
        };
        a.arrive(self.me);
        let t = self.take_any(stop, park);
        a.leave(self.me, t.is_some(), Instant::now);
        t
    }

    fn take_any(&mut self, stop: &AtomicBool, park: &ParkReasons) -> Option<T> {
        loop {
            if stop.load(Ordering::Acquire) || !park.none() {
                return None;
            }
            if let Some(t) = self.levels.try_take_for(self.me) {
                return Some(t);
            }
            if !self.spin.is_zero() {
                if let Some(t) = self.spin_for_work(stop) {
                    return Some(t);
                }
                if stop.load(Ordering::Acquire) {
                    return None;
                }
            }
            // Park until any level (or the control channel) is ready, then
            // look again from the top. A wake-up note on the control channel
            // is consumed here, so it cannot keep the select ready.
            // With requests waiting in other workers' mailboxes, sleep only
            // until the first may be taken over.
            let release = self
                .levels
                .affinity
                .as_ref()
                .and_then(|a| a.next_release(self.me));
            match release {
                Some(at) => {
                    let _ = self.sel.ready_deadline(at);
                }
                None => {
                    self.sel.ready();
                }
            }
            while self.control.try_recv().is_ok() {}
            if let Some(b) = self.bell {
                while b.try_recv().is_ok() {}
            }
        }
    }

    fn spin_for_work(&self, stop: &AtomicBool) -> Option<T> {
        let until = saturating_add(Instant::now(), self.spin);
        let mut i: u32 = 0;
        loop {
            if let Some(t) = self.levels.try_take_for(self.me) {
                return Some(t);
            }
            i = i.wrapping_add(1);
            // Checking the clock and the stop flag every few rounds keeps the
            // loop tight; an occasional yield lets another thread on an
            // oversubscribed core run.
            if i.is_multiple_of(16) {
                if stop.load(Ordering::Relaxed) || Instant::now() >= until {
                    return None;
                }
                if i.is_multiple_of(128) {
                    std::thread::yield_now();
                }
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl Keyed for &str {}
    impl Keyed for u32 {}
    impl Keyed for For {}

    fn levels<T: Tenanted + Keyed>(cap: usize, tenants: &TenantsConfig) -> Levels<T> {
        let cfg = LevelsConfig {
            probes: 1,
            tenants,
            affinity: &AffinityConfig::default(),
            workers: 1,
        };
        Levels::new(&LevelCapacity::uniform(cap), &cfg)
    }

    impl Tenanted for &str {
        fn tenant(&self) -> Option<&Arc<str>> {
            None
        }
    }

    impl Tenanted for u32 {
        fn tenant(&self) -> Option<&Arc<str>> {
            None
        }
    }

    /// A request for a tenant.
    struct For(Arc<str>, u32);

    impl Tenanted for For {
        fn tenant(&self) -> Option<&Arc<str>> {
            Some(&self.0)
        }
    }

    fn off() -> TenantsConfig {
        TenantsConfig::default()
    }

    #[test]
    fn a_fair_level_serves_tenants_in_turn_and_bounds_each() {
        let cfg = TenantsConfig {
            enabled: true,
            max_queued_per_tenant: Some(3),
            ..Default::default()
        };
        let q = levels(8, &cfg);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        // The level is idle: the first request goes straight onto its
        // channel; the next three wait in `a`'s queue, its bound.
        for i in 0..4 {
            assert!(q.try_send(Priority::Normal, For(a.clone(), i)).is_ok());
        }
        // `a` is at its bound; `b` is not.
        assert!(matches!(
            q.try_send(Priority::Normal, For(a.clone(), 4)),
            Err(TrySendError::Full(For(_, 4)))
        ));
        q.try_send(Priority::Normal, For(b.clone(), 10)).unwrap();
        q.try_send(Priority::Urgent, For(b.clone(), 99)).unwrap();
        assert_eq!(q.depth(), [1, 0, 5, 0]);
        let order: Vec<u32> = std::iter::from_fn(|| q.try_take().map(|f| f.1)).collect();
        // Strict priority first; then the one that went straight; then a
        // and b take turns.
        assert_eq!(order, [99, 0, 1, 10, 2, 3]);
        let stats = q.tenant_stats();
        let a_stats = stats.iter().find(|t| t.tenant == "a").unwrap();
        assert_eq!(
            (a_stats.accepted, a_stats.served, a_stats.refused),
            (4, 4, 1)
        );
    }

    #[test]
    fn try_take_is_strictly_by_priority() {
        let q = levels(4, &off());
        q.try_send(Priority::Low, "low").unwrap();
        q.try_send(Priority::Normal, "normal").unwrap();
        q.try_send(Priority::Urgent, "urgent").unwrap();
        q.try_send(Priority::High, "high").unwrap();
        let order: Vec<_> = std::iter::from_fn(|| q.try_take()).collect();
        assert_eq!(order, ["urgent", "high", "normal", "low"]);
    }

    #[test]
    fn a_probe_in_the_front_lane_is_taken_before_any_level() {
        let q = levels(4, &off());
        q.try_send(Priority::Urgent, "urgent").unwrap();
        q.try_send_front("probe").unwrap();
        assert!(
            q.try_send_front("second probe").is_err(),
            "the lane holds one"
        );
        assert_eq!((q.depth(), q.probes_waiting()), ([1, 0, 0, 0], 1));
        let order: Vec<_> = std::iter::from_fn(|| q.try_take()).collect();
        assert_eq!(order, ["probe", "urgent"]);
    }

    #[test]
    fn full_level_hands_value_back_and_others_still_accept() {
        let q = levels(1, &off());
        q.try_send(Priority::Low, 1).unwrap();
        match q.try_send(Priority::Low, 2) {
            Err(TrySendError::Full(v)) => assert_eq!(v, 2),
            other => panic!("expected Full, got {other:?}"),
        }
        q.try_send(Priority::Urgent, 3).unwrap();
        assert_eq!(q.depth(), [1, 0, 0, 1]);
    }

    #[test]
    fn parked_worker_wakes_on_send_and_on_stop() {
        for spin in [Duration::ZERO, Duration::from_micros(20)] {
            let q = Arc::new(levels::<u32>(4, &off()));
            let (ctl_tx, ctl_rx) = bounded::<()>(0);
            let stop = Arc::new(AtomicBool::new(false));
            let (got_tx, got_rx) = bounded(4);
            let worker = {
                let (q, stop) = (q.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut r = Receiving::new(&q, &ctl_rx, spin, 0);
                    while let Some(v) = r.take(&stop, &ParkReasons::default()) {
                        got_tx.send(v).unwrap();
                    }
                })
            };
            q.try_send(Priority::Normal, 7).unwrap();
            assert_eq!(got_rx.recv_timeout(Duration::from_secs(10)), Ok(7));
            stop.store(true, Ordering::Release);
            drop(ctl_tx);
            worker.join().unwrap();
        }
    }
}
