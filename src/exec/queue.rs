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
//! The worker checks its stop flag and its park reasons before each take.
//! Stopping a worker is "raise the flag, then drop its control sender";
//! parking or waking it is "change its park reasons, then put a note on its
//! control channel" (capacity 1, so a note already there is enough). Either
//! wakes a parked select.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Select, Sender, TrySendError};

use super::park::ParkReasons;
use crate::core::{saturating_add, LevelCapacity, Priority};

/// Lanes of one group, taken in this order: the breaker's probes, then
/// the four priority levels.
const LANES: usize = Priority::COUNT + 1;
/// The probes' lane.
const FRONT: usize = 0;

/// The bounded channels of one group: a front lane for the breaker's
/// half-open probes, which a worker takes before anything else (a probe
/// must not wait behind the work queued while the group was closed), and
/// one lane per priority level.
pub(crate) struct Levels<T> {
    tx: [Sender<T>; LANES],
    rx: [Receiver<T>; LANES],
}

impl<T> Levels<T> {
    /// `probes`: the most probes the group's breaker admits at once.
    pub(crate) fn new(cap: &LevelCapacity, probes: usize) -> Self {
        let chans: [_; LANES] = std::array::from_fn(|lane| match lane {
            FRONT => bounded(probes),
            _ => bounded(cap.of(Priority::ALL[lane - 1])),
        });
        let tx = std::array::from_fn(|i| chans[i].0.clone());
        let rx = std::array::from_fn(|i| chans[i].1.clone());
        Self { tx, rx }
    }

    #[inline]
    pub(crate) fn try_send(&self, p: Priority, t: T) -> Result<(), TrySendError<T>> {
        self.tx[p.index() + 1].try_send(t)
    }

    /// Queues a probe in the front lane.
    pub(crate) fn try_send_front(&self, t: T) -> Result<(), TrySendError<T>> {
        self.tx[FRONT].try_send(t)
    }

    pub(crate) fn sender(&self, p: Priority) -> &Sender<T> {
        &self.tx[p.index() + 1]
    }

    pub(crate) fn receivers(&self) -> &[Receiver<T>; LANES] {
        &self.rx
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
        try_take(&self.rx)
    }

    /// Takes the highest-priority request waiting at level `p` or above
    /// (probes first), without blocking: how a batch fills.
    #[inline]
    pub(crate) fn try_take_at_least(&self, p: Priority) -> Option<T> {
        try_take(&self.rx[..=p.index() + 1])
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

#[inline]
fn try_take<T>(rx: &[Receiver<T>]) -> Option<T> {
    rx.iter().find_map(|r| r.try_recv().ok())
}

/// A worker's receiving end: its group's levels plus its control channel.
pub(crate) struct Receiving<'a, T> {
    rx: &'a [Receiver<T>; LANES],
    control: &'a Receiver<()>,
    sel: Select<'a>,
    spin: Duration,
}

impl<'a, T> Receiving<'a, T> {
    pub(crate) fn new(
        rx: &'a [Receiver<T>; LANES],
        control: &'a Receiver<()>,
        spin: Duration,
    ) -> Self {
        let mut sel = Select::new();
        for r in rx {
            sel.recv(r);
        }
        sel.recv(control);
        Self {
            rx,
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
            if let Some(t) = try_take(self.rx) {
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
            if let Some(t) = try_take(self.rx) {
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

    #[test]
    fn try_take_is_strictly_by_priority() {
        let q = Levels::new(&LevelCapacity::uniform(4), 1);
        q.try_send(Priority::Low, "low").unwrap();
        q.try_send(Priority::Normal, "normal").unwrap();
        q.try_send(Priority::Urgent, "urgent").unwrap();
        q.try_send(Priority::High, "high").unwrap();
        let order: Vec<_> = std::iter::from_fn(|| q.try_take()).collect();
        assert_eq!(order, ["urgent", "high", "normal", "low"]);
    }

    #[test]
    fn a_probe_in_the_front_lane_is_taken_before_any_level() {
        let q = Levels::new(&LevelCapacity::uniform(4), 1);
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
        let q = Levels::new(&LevelCapacity::uniform(1), 1);
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
            let q = Arc::new(Levels::<u32>::new(&LevelCapacity::uniform(4), 1));
            let (ctl_tx, ctl_rx) = bounded::<()>(0);
            let stop = Arc::new(AtomicBool::new(false));
            let (got_tx, got_rx) = bounded(4);
            let worker = {
                let (q, stop) = (q.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut r = Receiving::new(q.receivers(), &ctl_rx, spin);
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
