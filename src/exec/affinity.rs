//! Affinity: a keyed request prefers the worker that last ran its key.
//!
//! # The hand-over protocol
//!
//! Keyed requests are queued like any other, so admission, queue bounds,
//! tenant fairness, priorities and the shutdown's sweep are unchanged. The
//! choice is made when a worker takes one from its level's queue:
//!
//! 1. No worker is remembered for the key, or the taker is that worker:
//!    it runs the request (and is now the key's worker).
//! 2. Otherwise the taker offers it to the key's worker `P`, under `P`'s
//!    mailbox lock. The offer is taken when the mailbox is empty and `P`
//!    is idle (in its take, not in a call), or busy while `max_wait` is
//!    above zero; the request then waits in the mailbox until a release
//!    time (`max_wait` from now, at least [`HANDOVER_GRACE`] for an idle
//!    `P` to wake), `P`'s bell is rung, and the taker looks for other work.
//!    An offer not taken (a full mailbox, `P` away or busy): the taker
//!    runs it, and is now the key's worker.
//! 3. Every worker, at each level in strict priority order, looks first at
//!    its own mailbox, then at the other mailboxes for a request past its
//!    release time, then at the level's queue. A level's mailboxes are
//!    looked at only while its count of waiting requests is above zero.
//!
//! `P`'s presence (idle, busy, away) changes under its mailbox lock, so an
//! offer and `P` leaving its take are ordered: an offer made while `P` was
//! idle is in the mailbox when `P` leaves; `P` then releases it at once
//! (unless `max_wait` lets it wait for `P`) and rings an idle worker. A
//! worker going busy while requests wait in mailboxes rings an idle worker
//! too, and a worker that parks while any wait sleeps only until the first
//! release time. So a request waits for its worker at most its release
//! time while another worker is idle, and otherwise no longer than until
//! the first worker frees: never lost, never starved. The shutdown's sweep
//! takes from mailboxes too.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;

use crate::config::AffinityConfig;
use crate::core::{saturating_add, AffinityStats, Job, Priority};
use crate::policy::affinity::KeyMemory;

/// How long a request handed to an idle worker is kept for it before any
/// idle worker may take it: time for a parked thread to wake, with room
/// for a loaded machine.
pub(crate) const HANDOVER_GRACE: Duration = Duration::from_millis(2);

/// What a queued item says about its affinity.
pub(crate) trait Keyed {
    /// Its affinity key, if it has one.
    fn affinity_key(&self) -> Option<u64> {
        None
    }
}

impl<I, O> Keyed for Job<I, O> {
    fn affinity_key(&self) -> Option<u64> {
        Job::affinity(self)
    }
}

/// Where a worker is, as offers see it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Presence {
    /// Stopped, parked or not started: offers are refused.
    Away = 0,
    /// In its take: an offer is taken at once.
    Idle = 1,
    /// In a call.
    Busy = 2,
}

/// A request waiting for one worker.
struct Held<T> {
    item: T,
    level: usize,
    /// After it, any worker may take it.
    release: Instant,
}

/// One worker's mailbox.
struct Mailbox<T> {
    held: Mutex<Option<Held<T>>>,
    /// Changed under `held`'s lock; read without it to find an idle worker.
    presence: AtomicU8,
    bell: (Sender<()>, Receiver<()>),
}

/// What a worker does with a keyed request it took.
pub(crate) enum Route<T> {
    /// Run it.
    Here(T),
    /// It went to its key's worker.
    Handed,
}

#[derive(Default)]
struct Counts {
    new_keys: AtomicU64,
    on_worker: AtomicU64,
    handed_over: AtomicU64,
    taken: AtomicU64,
    stolen: AtomicU64,
    elsewhere: AtomicU64,
}

/// The affinity state of one group: the keys' memory and a mailbox per
/// worker.
pub(crate) struct Affinity<T> {
    boxes: Box<[Mailbox<T>]>,
    /// Requests in mailboxes, per level.
    waiting: [AtomicUsize; Priority::COUNT],
    keys: Mutex<KeyMemory>,
    max_wait: Duration,
    counts: Counts,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl<T: Keyed> Affinity<T> {
    /// For a group of `workers` workers.
    pub(crate) fn new(cfg: &AffinityConfig, workers: usize) -> Self {
        Self {
            boxes: (0..workers)
                .map(|_| Mailbox {
                    held: Mutex::new(None),
                    presence: AtomicU8::new(Presence::Away as u8),
                    bell: bounded(1),
                })
                .collect(),
            waiting: Default::default(),
            keys: Mutex::new(KeyMemory::new(cfg.max_keys)),
            max_wait: cfg.max_wait,
            counts: Counts::default(),
        }
    }

    /// Worker `me`'s bell: rung when a request is handed to it or released
    /// for others to take.
    pub(crate) fn bell(&self, me: usize) -> Option<&Receiver<()>> {
        self.boxes.get(me).map(|b| &b.bell.1)
    }

    /// Worker `me` enters its take.
    pub(crate) fn arrive(&self, me: usize) {
        if let Some(b) = self.boxes.get(me) {
            let _held = b.held.lock();
            b.presence.store(Presence::Idle as u8, Ordering::Relaxed);
        }
    }

    /// Worker `me` leaves its take: `busy` with a request to run, or away
    /// (stopping or parking). A request waiting for it is released to the
    /// others (at once, unless it may wait for a busy worker), and an idle
    /// worker is rung to watch the mailboxes while any request waits.
    pub(crate) fn leave(&self, me: usize, busy: bool, now: impl FnOnce() -> Instant) {
        let Some(b) = self.boxes.get(me) else { return };
        {
            let mut held = b.held.lock();
            let presence = if busy { Presence::Busy } else { Presence::Away };
            b.presence.store(presence as u8, Ordering::Relaxed);
            if let Some(h) = held.as_mut() {
                if !busy || self.max_wait.is_zero() {
                    h.release = h.release.min(now());
                }
            }
        }
        if self.waiting_total() > 0 {
            self.ring_idle(me);
        }
    }

    /// Rings one idle worker other than `me`.
    fn ring_idle(&self, me: usize) {
        let idle =
            self.boxes.iter().enumerate().find(|(i, b)| {
                *i != me && b.presence.load(Ordering::Relaxed) == Presence::Idle as u8
            });
        if let Some((_, b)) = idle {
            let _ = b.bell.0.try_send(());
        }
    }

    /// Decides where a keyed request that worker `me` took at `level` runs.
    pub(crate) fn route(
        &self,
        me: usize,
        item: T,
        level: usize,
        now: impl FnOnce() -> Instant,
    ) -> Route<T> {
        let Some(key) = item.affinity_key() else {
            return Route::Here(item);
        };
        let preferred = self.keys.lock().get(key);
        let target = match preferred {
            Some(p) if p == me => {
                inc(&self.counts.on_worker);
                return Route::Here(item);
            }
            Some(p) => self.boxes.get(p),
            None => None,
        };
        let Some(b) = target else {
            inc(&self.counts.new_keys);
            self.keys.lock().set(key, me);
            return Route::Here(item);
        };
        let item = {
            let mut held = b.held.lock();
            let presence = b.presence.load(Ordering::Relaxed);
            let wait = if presence == Presence::Idle as u8 {
                Some(self.max_wait.max(HANDOVER_GRACE))
            } else if presence == Presence::Busy as u8 && !self.max_wait.is_zero() {
                Some(self.max_wait)
            } else {
                None
            };
            match wait {
                Some(wait) if held.is_none() => {
                    *held = Some(Held {
                        item,
                        level,
                        release: saturating_add(now(), wait),
                    });
                    self.waiting[level].fetch_add(1, Ordering::Release);
                    None
                }
                _ => Some(item),
            }
        };
        match item {
            None => {
                inc(&self.counts.handed_over);
                let _ = b.bell.0.try_send(());
                Route::Handed
            }
            Some(item) => {
                inc(&self.counts.elsewhere);
                self.keys.lock().set(key, me);
                Route::Here(item)
            }
        }
    }

    /// A request waiting at `level`: worker `me`'s own, else another's past
    /// its release time. With `me` `None` (the shutdown's sweep), any.
    pub(crate) fn take(
        &self,
        level: usize,
        me: Option<usize>,
        now: impl FnOnce() -> Instant,
    ) -> Option<T> {
        if self.waiting[level].load(Ordering::Acquire) == 0 {
            return None;
        }
        if let Some(b) = me.and_then(|m| self.boxes.get(m)) {
            if let Some(item) = self.take_from(b, level, None) {
                inc(&self.counts.taken);
                return Some(item);
            }
        }
        let before = me.map(|_| now());
        for (i, b) in self.boxes.iter().enumerate() {
            if Some(i) == me {
                continue;
            }
            if let Some(item) = self.take_from(b, level, before) {
                if let Some(m) = me {
                    inc(&self.counts.stolen);
                    if let Some(key) = item.affinity_key() {
                        self.keys.lock().set(key, m);
                    }
                }
                return Some(item);
            }
        }
        None
    }

    /// The request in `b` if it is at `level` (and, with `released_by`,
    /// past its release time then).
    fn take_from(&self, b: &Mailbox<T>, level: usize, released_by: Option<Instant>) -> Option<T> {
        // Others' mailboxes are only tried: a busy lock is its owner at
        // work, and the next look comes soon.
        let mut held = match released_by {
            None => b.held.lock(),
            Some(_) => b.held.try_lock()?,
        };
        let ready = held
            .as_ref()
            .is_some_and(|h| h.level == level && released_by.is_none_or(|now| h.release <= now));
        if !ready {
            return None;
        }
        let h = held.take()?;
        self.waiting[level].fetch_sub(1, Ordering::Release);
        Some(h.item)
    }

    /// The first release time of a request waiting for another worker than
    /// `me`, if any waits: a parked worker wakes then.
    pub(crate) fn next_release(&self, me: usize) -> Option<Instant> {
        if self.waiting_total() == 0 {
            return None;
        }
        self.boxes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .filter_map(|(_, b)| b.held.lock().as_ref().map(|h| h.release))
            .min()
    }

    /// Requests waiting in mailboxes, per level.
    pub(crate) fn waiting(&self) -> [usize; Priority::COUNT] {
        std::array::from_fn(|i| self.waiting[i].load(Ordering::Acquire))
    }

    fn waiting_total(&self) -> usize {
        self.waiting.iter().map(|w| w.load(Ordering::Acquire)).sum()
    }

    pub(crate) fn stats(&self) -> AffinityStats {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AffinityStats {
            keys: self.keys.lock().len(),
            new_keys: get(&c.new_keys),
            on_worker: get(&c.on_worker),
            handed_over: get(&c.handed_over),
            taken: get(&c.taken),
            stolen: get(&c.stolen),
            elsewhere: get(&c.elsewhere),
            waiting: self.waiting_total(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request with a key.
    #[derive(Debug, PartialEq)]
    struct K(u64, u32);

    impl Keyed for K {
        fn affinity_key(&self) -> Option<u64> {
            Some(self.0)
        }
    }

    fn affinity(max_wait: Duration) -> Affinity<K> {
        let cfg = AffinityConfig {
            enabled: true,
            max_wait,
            max_keys: 16,
        };
        Affinity::new(&cfg, 3)
    }

    fn here(r: Route<K>) -> K {
        match r {
            Route::Here(k) => k,
            Route::Handed => panic!("handed over"),
        }
    }

    #[test]
    fn a_key_goes_to_its_idle_worker_and_waits_for_it_alone_until_released() {
        let a = affinity(Duration::ZERO);
        let t0 = Instant::now();
        for w in 0..3 {
            a.arrive(w);
        }
        // Worker 0 runs key 7 first: 7 is now worker 0's.
        here(a.route(0, K(7, 1), 2, || t0));
        a.leave(0, true, || t0);
        a.arrive(0);
        // Worker 1 takes the next request of key 7: worker 0 is idle, so it
        // is handed over.
        assert!(matches!(a.route(1, K(7, 2), 2, || t0), Route::Handed));
        assert_eq!(a.waiting(), [0, 0, 1, 0]);
        assert!(a.bell(0).unwrap().try_recv().is_ok(), "worker 0 was rung");
        // Nobody else may take it before its release time; worker 0 may.
        assert_eq!(a.take(2, Some(2), || t0), None);
        assert_eq!(a.take(1, Some(0), || t0), None, "another level");
        assert_eq!(a.take(2, Some(0), || t0), Some(K(7, 2)));
        let s = a.stats();
        assert_eq!(
            (s.new_keys, s.handed_over, s.taken, s.waiting, s.keys),
            (1, 1, 1, 0, 1)
        );
        assert_eq!(s.hit_rate(), 1.0);
    }

    #[test]
    fn a_busy_worker_keys_run_elsewhere_without_max_wait() {
        let a = affinity(Duration::ZERO);
        let t0 = Instant::now();
        a.arrive(0);
        a.arrive(1);
        here(a.route(0, K(7, 1), 2, || t0));
        a.leave(0, true, || t0);
        // Worker 0 is busy: worker 1 runs key 7 and becomes its worker.
        assert_eq!(here(a.route(1, K(7, 2), 2, || t0)), K(7, 2));
        a.leave(1, true, || t0);
        a.arrive(1);
        assert!(matches!(a.route(0, K(7, 3), 2, || t0), Route::Handed));
        assert_eq!(a.stats().elsewhere, 1);
    }

    #[test]
    fn with_max_wait_a_busy_worker_is_waited_for_then_another_takes_over() {
        let wait = Duration::from_millis(50);
        let a = affinity(wait);
        let t0 = Instant::now();
        a.arrive(0);
        a.arrive(1);
        here(a.route(0, K(7, 1), 1, || t0));
        a.leave(0, true, || t0);
        assert!(matches!(a.route(1, K(7, 2), 1, || t0), Route::Handed));
        assert_eq!(a.next_release(1), Some(t0 + wait));
        assert_eq!(a.take(1, Some(1), || t0 + wait / 2), None, "still waiting");
        assert_eq!(a.take(1, Some(1), || t0 + wait), Some(K(7, 2)));
        // The thief is now key 7's worker.
        a.leave(1, true, || t0);
        a.arrive(1);
        assert_eq!(here(a.route(1, K(7, 3), 1, || t0)), K(7, 3));
        let s = a.stats();
        assert_eq!((s.stolen, s.on_worker), (1, 1));
    }

    #[test]
    fn a_worker_that_leaves_releases_its_request_and_rings_an_idle_one() {
        let a = affinity(Duration::from_secs(10));
        let t0 = Instant::now();
        for w in 0..3 {
            a.arrive(w);
        }
        here(a.route(0, K(7, 1), 0, || t0));
        a.leave(0, true, || t0);
        a.arrive(0);
        assert!(matches!(a.route(1, K(7, 2), 0, || t0), Route::Handed));
        let _ = a.bell(0).unwrap().try_recv();
        // Worker 0 parks before taking it: it is released at once.
        a.leave(0, false, || t0);
        assert!(
            a.bell(1).unwrap().try_recv().is_ok() || a.bell(2).unwrap().try_recv().is_ok(),
            "an idle worker was rung"
        );
        assert_eq!(a.next_release(1), Some(t0));
        assert_eq!(a.take(0, Some(2), || t0), Some(K(7, 2)));
        // An away worker is not offered anything.
        a.leave(2, true, || t0);
        a.arrive(2);
        assert!(matches!(a.route(2, K(8, 1), 0, || t0), Route::Here(_)));
        a.leave(2, false, || t0);
        assert_eq!(here(a.route(1, K(8, 2), 0, || t0)), K(8, 2));
    }

    #[test]
    fn one_request_waits_per_worker_and_the_sweep_takes_any() {
        let a = affinity(Duration::from_secs(10));
        let t0 = Instant::now();
        a.arrive(0);
        a.arrive(1);
        here(a.route(0, K(7, 1), 3, || t0));
        a.leave(0, true, || t0);
        assert!(matches!(a.route(1, K(7, 2), 3, || t0), Route::Handed));
        // Worker 0's mailbox is full: the next one runs where it is taken.
        assert_eq!(here(a.route(1, K(7, 3), 3, || t0)), K(7, 3));
        assert_eq!(a.take(3, None, || t0), Some(K(7, 2)));
        assert_eq!(a.waiting(), [0; 4]);
    }
}
