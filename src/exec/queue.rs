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
//! the receive protocol above is the same.
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

use super::fair::{self, Fair, Tenanted};
use super::park::ParkReasons;
use crate::config::TenantsConfig;
use crate::core::{saturating_add, LevelCapacity, Priority, TenantStats};

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
/// robins.
pub(crate) struct Levels<T> {
    tx: [Sender<Item<T>>; LANES],
    rx: [Receiver<Item<T>>; LANES],
    fair: Option<Box<Fair<T>>>,
}

impl<T: Tenanted> Levels<T> {
    /// `probes`: the most probes the group's breaker admits at once;
    /// `tenants`: fairness between tenants within each level, when on.
    pub(crate) fn new(cap: &LevelCapacity, probes: usize, tenants: &TenantsConfig) -> Self {
        let chans: [_; LANES] = std::array::from_fn(|lane| match lane {
            FRONT => bounded(probes),
            _ => bounded(cap.of(Priority::ALL[lane - 1])),
        });
        let tx = std::array::from_fn(|i| chans[i].0.clone());
        let rx = std::array::from_fn(|i| chans[i].1.clone());
        let fair = tenants.enabled.then(|| Box::new(Fair::new(tenants, cap)));
        Self { tx, rx, fair }
    }

    /// Queues a request at its level; hands it back when the level (or,
    /// with fairness, its tenant's share of it) is full.
    #[inline]
    pub(crate) fn try_send(&self, p: Priority, t: T) -> Result<(), TrySendError<T>> {
        let lane = p.index() + 1;
        match &self.fair {
            None => self.tx[lane].try_send(Some(t)).map_err(unwrap_err),
            Some(fair) => fair
                .push(p.index(), t, || self.tx[lane].try_send(None).is_ok())
                .map_err(|fair::Refused::Full(t)| TrySendError::Full(t)),
        }
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

    /// Requests waiting per level (probes not included).
    pub(crate) fn depth(&self) -> [usize; Priority::COUNT] {
        std::array::from_fn(|i| self.rx[i + 1].len())
    }

    /// Probes waiting in the front lane.
    pub(crate) fn probes_waiting(&self) -> usize {
        self.rx[FRONT].len()
    }

    /// Takes the highest-priority request waiting, without blocking.
    #[inline]
    pub(crate) fn try_take(&self) -> Option<T> {
        self.try_take_lanes(LANES)
    }

    /// Takes the highest-priority request waiting at level `p` or above
    /// (probes first), without blocking: how a batch fills.
    #[inline]
    pub(crate) fn try_take_at_least(&self, p: Priority) -> Option<T> {
        self.try_take_lanes(p.index() + 2)
    }

    /// The first request of the first `lanes` lanes (a token fetches the
    /// round robin's pick of its level).
    #[inline]
    fn try_take_lanes(&self, lanes: usize) -> Option<T> {
        for (lane, r) in self.rx[..lanes].iter().enumerate() {
            match r.try_recv() {
                Ok(Some(t)) => return Some(t),
                Ok(None) => {
                    // Tokens come only in level lanes (the probes' lane
                    // carries requests), so `lane - 1` is the level.
                    let level = lane.checked_sub(1);
                    if let Some(t) = self.fair.as_ref().zip(level).and_then(|(f, l)| f.pop(l)) {
                        return Some(t);
                    }
                }
                Err(_) => {}
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

/// A worker's receiving end: its group's levels plus its control channel.
pub(crate) struct Receiving<'a, T> {
    levels: &'a Levels<T>,
    control: &'a Receiver<()>,
    sel: Select<'a>,
    spin: Duration,
}

impl<'a, T: Tenanted> Receiving<'a, T> {
    pub(crate) fn new(levels: &'a Levels<T>, control: &'a Receiver<()>, spin: Duration) -> Self {
        let mut sel = Select::new();
        for r in &levels.rx {
            sel.recv(r);
        }
        sel.recv(control);
        Self {
            levels,
            control,
            sel,
            spin,
        }
    }

    /// The next request by strict priority; `None` once `stop` is raised or
    /// the worker has a reason to park.
    pub(crate) fn take(&mut self, stop: &AtomicBool, park: &ParkReasons) -> Option<T> {
        loop {
            if stop.load(Ordering::Acquire) || !park.none() {
                return None;
            }
            if let Some(t) = self.levels.try_take() {
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
            self.sel.ready();
            while self.control.try_recv().is_ok() {}
        }
    }

    fn spin_for_work(&self, stop: &AtomicBool) -> Option<T> {
        let until = saturating_add(Instant::now(), self.spin);
        let mut i: u32 = 0;
        loop {
            if let Some(t) = self.levels.try_take() {
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
        let q = Levels::new(&LevelCapacity::uniform(8), 1, &cfg);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        for i in 0..3 {
            assert!(q.try_send(Priority::Normal, For(a.clone(), i)).is_ok());
        }
        // `a` is at its bound; `b` is not.
        assert!(matches!(
            q.try_send(Priority::Normal, For(a.clone(), 3)),
            Err(TrySendError::Full(For(_, 3)))
        ));
        q.try_send(Priority::Normal, For(b.clone(), 10)).unwrap();
        q.try_send(Priority::Urgent, For(b.clone(), 99)).unwrap();
        assert_eq!(q.depth(), [1, 0, 4, 0]);
        let order: Vec<u32> = std::iter::from_fn(|| q.try_take().map(|f| f.1)).collect();
        // Strict priority first; then a and b take turns.
        assert_eq!(order, [99, 0, 10, 1, 2]);
        let stats = q.tenant_stats();
        let a_stats = stats.iter().find(|t| t.tenant == "a").unwrap();
        assert_eq!(
            (a_stats.accepted, a_stats.served, a_stats.refused),
            (3, 3, 1)
        );
    }

    #[test]
    fn try_take_is_strictly_by_priority() {
        let q = Levels::new(&LevelCapacity::uniform(4), 1, &off());
        q.try_send(Priority::Low, "low").unwrap();
        q.try_send(Priority::Normal, "normal").unwrap();
        q.try_send(Priority::Urgent, "urgent").unwrap();
        q.try_send(Priority::High, "high").unwrap();
        let order: Vec<_> = std::iter::from_fn(|| q.try_take()).collect();
        assert_eq!(order, ["urgent", "high", "normal", "low"]);
    }

    #[test]
    fn a_probe_in_the_front_lane_is_taken_before_any_level() {
        let q = Levels::new(&LevelCapacity::uniform(4), 1, &off());
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
        let q = Levels::new(&LevelCapacity::uniform(1), 1, &off());
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
            let q = Arc::new(Levels::<u32>::new(&LevelCapacity::uniform(4), 1, &off()));
            let (ctl_tx, ctl_rx) = bounded::<()>(0);
            let stop = Arc::new(AtomicBool::new(false));
            let (got_tx, got_rx) = bounded(4);
            let worker = {
                let (q, stop) = (q.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut r = Receiving::new(&q, &ctl_rx, spin);
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
