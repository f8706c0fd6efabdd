//! The fair part of a group's queues: with tenant fairness on, each
//! priority level keeps each tenant's requests in the tenant's own queue,
//! served in a deficit round robin (`policy::drr`), and the level's
//! channel carries only tokens, one per request, so workers still wait on
//! the channels (spin, then park) exactly as without fairness.
//!
//! # The token protocol
//!
//! A submitter finds its tenant (a read lock on the level's tenant table,
//! shared with the other submitters; the default tenant is held directly)
//! and, under the tenant's own lock, checks the tenant's share, pushes the
//! request onto the tenant's queue, sends the token (a token with no room
//! takes its request back out: the level is full), and marks the tenant
//! active; if it was not, the submitter announces the tenant on the
//! level's activation channel. A worker that receives a token takes the
//! workers' lock on the ring, moves the announced tenants into it, and
//! pops, under that tenant's lock, from the ring's pick; tokens are
//! interchangeable. A tenant's lock is held for one push or one pop, so a
//! submitter meets at most the one worker popping that tenant, never the
//! other tenants' submitters or the ring.
//!
//! Two counts keep this sound. Tokens never exceed requests queued and not
//! yet popped (a request is pushed before its token is sent, and popped
//! after a token is received), so a worker holding a token always finds a
//! request in some tenant of the ring, or announced, or about to be (a
//! submitter that finds its tenant already active sends its token without
//! announcing, and the submitter that made it active may not have
//! announced it yet: a worker that finds nothing hands its token back to
//! the level's channel and looks again later, never waiting with the lock
//! held). And every request waiting at a level has its token (or itself)
//! in the level's channel, or is being popped by a worker that holds one,
//! so the channel's capacity bounds the level: a submitter that waits for
//! room on the channel waits for exactly the room the level has.
//!
//! An idle level (its channel empty: no token waits, so no tenant's queue
//! holds anything but what workers holding tokens are taking) has no order
//! to keep, so a request that finds it so goes straight onto the channel as
//! a request, not a token, and skips the tenant's queue and the ring: a
//! lightly loaded pool pays one look at the channel for fairness.
//!
//! A pop that empties a tenant marks it inactive in the same critical
//! section, and the tenant leaves the ring; its next push finds it
//! inactive and announces it again. A blocking submit whose tenant's share
//! is full while the level has room waits on the tenant's condition
//! variable, rung by the pop that makes room.

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::config::TenantsConfig;
use crate::core::{saturating_add, Job, LevelCapacity, Priority, TenantStats};
use crate::policy::drr::{Drr, DEFAULT_TENANT};

/// Tenants with nothing waiting kept (with their queue) for when they
/// come back; past this an emptied tenant is forgotten, so keys never pile
/// up.
const IDLE_KEPT: usize = 64;

/// Forgotten tenants whose counts are kept by name; the rest count
/// together.
const TRACKED_TENANTS: usize = 256;

/// Tenants named in the stats (the most accepted), before `other`.
pub(crate) const REPORTED_TENANTS: usize = 16;

/// What a queued item says about whom it is for.
pub(crate) trait Tenanted {
    /// Its tenant; `None` is the default one.
    fn tenant(&self) -> Option<&Arc<str>>;
}

impl<I, O> Tenanted for Job<I, O> {
    fn tenant(&self) -> Option<&Arc<str>> {
        Job::tenant(self)
    }
}

/// One tenant's counts in one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    accepted: u64,
    served: u64,
    refused: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.accepted += o.accepted;
        self.served += o.served;
        self.refused += o.refused;
    }
}

/// One tenant's queue in one level.
struct Tenant<T> {
    name: Arc<str>,
    weight: u32,
    /// Its requests and its place in the ring, under one lock that a
    /// submitter holds for a push and a worker for a pop.
    queue: CachePadded<Mutex<TenantQueue<T>>>,
    /// Rung when a request leaves a queue that submitters wait on for room
    /// in the tenant's share.
    room: Condvar,
    /// What submitters count alone, on a line of its own.
    counts: CachePadded<SubmitterCounts>,
}

struct TenantQueue<T> {
    /// Its requests, oldest first: at most the tenant's share.
    items: VecDeque<T>,
    /// In the ring, announced to it, or about to be (module docs).
    active: bool,
    /// Requests taken from `items`.
    served: u64,
    /// Submitters waiting for room in the share.
    waiting: u32,
}

struct SubmitterCounts {
    refused: AtomicU64,
    straight: AtomicU64,
}

impl<T> Tenant<T> {
    fn new(name: Arc<str>, weight: u32) -> Self {
        Self {
            name,
            weight,
            queue: CachePadded::new(Mutex::new(TenantQueue {
                items: VecDeque::new(),
                active: false,
                served: 0,
                waiting: 0,
            })),
            room: Condvar::new(),
            counts: CachePadded::new(SubmitterCounts {
                refused: AtomicU64::new(0),
                straight: AtomicU64::new(0),
            }),
        }
    }

    fn refused(&self) -> &AtomicU64 {
        &self.counts.refused
    }

    /// Its counts and its requests waiting: every request accepted is
    /// served or still waiting; one queued straight onto an idle level
    /// counts as served at once.
    fn counts(&self) -> (Counts, usize) {
        let (served, waiting) = {
            let q = self.queue.lock();
            (q.served, q.items.len())
        };
        let served = served + self.counts.straight.load(Ordering::Relaxed);
        let c = Counts {
            accepted: served + waiting as u64,
            served,
            refused: self.refused().load(Ordering::Relaxed),
        };
        (c, waiting)
    }
}

/// The tenants a level knows by name, and the counts of forgotten ones.
struct Table<T> {
    by_name: HashMap<Arc<str>, Arc<Tenant<T>>>,
    book: HashMap<Arc<str>, Counts>,
    other: Counts,
}

impl<T> Table<T> {
    /// Keeps the counts of a forgotten tenant (by name while there is room).
    fn keep_counts(&mut self, name: &Arc<str>, c: Counts) {
        if self.book.contains_key(name) || self.book.len() < TRACKED_TENANTS {
            self.book.entry(Arc::clone(name)).or_default().add(&c);
        } else {
            self.other.add(&c);
        }
    }
}

/// One priority level.
struct Level<T> {
    max_per_tenant: usize,
    default: Arc<Tenant<T>>,
    table: RwLock<Table<T>>,
    /// Tenants that became active, for the ring.
    announce_tx: Sender<Arc<Tenant<T>>>,
    announce_rx: Receiver<Arc<Tenant<T>>>,
    /// The workers' ring.
    ring: Mutex<Drr<Arc<Tenant<T>>>>,
}

/// Per-level tenant queues and round robins of one group.
pub(crate) struct Fair<T> {
    levels: [Level<T>; Priority::COUNT],
    weights: HashMap<Arc<str>, u32>,
    default_weight: u32,
}

/// Why a fair level did not take an item.
pub(crate) enum Refused<T> {
    /// The level (its channel) or the tenant's share of it is full.
    Full(T),
}

impl<T: Tenanted> Fair<T> {
    pub(crate) fn new(cfg: &TenantsConfig, cap: &LevelCapacity) -> Self {
        let weights: HashMap<Arc<str>, u32> = cfg
            .weights
            .iter()
            .map(|(k, &w)| (Arc::from(k.as_str()), w))
            .collect();
        let default_weight = cfg.default_weight.max(1);
        let default: Arc<str> = Arc::from(DEFAULT_TENANT);
        let dw = weights.get(&default).copied().unwrap_or(default_weight);
        Self {
            levels: std::array::from_fn(|i| {
                let capacity = cap.of(Priority::ALL[i]);
                let (announce_tx, announce_rx) = unbounded();
                let default = Arc::new(Tenant::new(Arc::clone(&default), dw));
                let mut by_name = HashMap::new();
                by_name.insert(Arc::clone(&default.name), Arc::clone(&default));
                Level {
                    // By default a tenant may fill half a level: one
                    // tenant's backlog never fills it for the others.
                    max_per_tenant: cfg.max_queued_per_tenant.unwrap_or(capacity.div_ceil(2)),
                    default,
                    table: RwLock::new(Table {
                        by_name,
                        book: HashMap::new(),
                        other: Counts::default(),
                    }),
                    announce_tx,
                    announce_rx,
                    ring: Mutex::new(Drr::default()),
                }
            }),
            weights,
            default_weight,
        }
    }

    /// Queues `item` at level `lane` (0 = urgent), whose channel is `tx`,
    /// if the level and its tenant's share have room: straight onto the
    /// channel when the level is idle, else in its tenant's queue with a
    /// token on the channel. A refusal is counted against the tenant
    /// unless `waiting` (a blocking submit that will try again counts
    /// once, if it gives up: [`Fair::count_refused`]).
    pub(crate) fn push(
        &self,
        lane: usize,
        item: T,
        tx: &Sender<Option<T>>,
        waiting: bool,
    ) -> Result<(), Refused<T>> {
        let level = &self.levels[lane];
        let Some(name) = item.tenant().filter(|n| &***n != DEFAULT_TENANT) else {
            return Self::push_to(level, &level.default, item, tx, waiting);
        };
        {
            let table = level.table.read();
            if let Some(t) = table.by_name.get(&**name) {
                // The read lock is held while pushing, so a worker cannot
                // forget this tenant meanwhile.
                return Self::push_to(level, t, item, tx, waiting);
            }
        }
        let mut table = level.table.write();
        let weight = self
            .weights
            .get(&**name)
            .copied()
            .unwrap_or(self.default_weight);
        let t = Arc::clone(table.by_name.entry(Arc::clone(name)).or_insert_with(|| {
            let t = Tenant::new(Arc::clone(name), weight);
            Arc::new(t)
        }));
        // Counts of an earlier life go on from where they were (a
        // forgotten tenant had nothing waiting: accepted were served).
        if let Some(c) = table.book.remove(&**name) {
            t.queue.lock().served += c.served;
            t.refused().fetch_add(c.refused, Ordering::Relaxed);
        }
        let table = parking_lot::RwLockWriteGuard::downgrade(table);
        let pushed = Self::push_to(level, &t, item, tx, waiting);
        drop(table);
        pushed
    }

    fn push_to(
        level: &Level<T>,
        t: &Arc<Tenant<T>>,
        item: T,
        tx: &Sender<Option<T>>,
        waiting: bool,
    ) -> Result<(), Refused<T>> {
        let refuse = |item| {
            if !waiting {
                t.refused().fetch_add(1, Ordering::Relaxed);
            }
            Err(Refused::Full(item))
        };
        // An idle level (its channel empty: no token, so no tenant's queue
        // holds anything but what workers holding tokens are about to take)
        // has no order to keep: whatever arrives now is what the round
        // robin would serve next, so the request goes straight onto the
        // channel, skipping its tenant's queue and the ring. Submitters
        // racing here may each go straight; a backlog (a channel that is
        // not empty) always goes through the round robin.
        let item = if tx.is_empty() {
            match tx.try_send(Some(item)) {
                Ok(()) => {
                    t.counts.straight.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                // Filled meanwhile: the token below finds no room either.
                Err(e) => e.into_inner().expect("sent a request"),
            }
        } else {
            item
        };
        let announce = {
            let mut q = t.queue.lock();
            if q.items.len() >= level.max_per_tenant {
                drop(q);
                return refuse(item);
            }
            // The request is queued before its token is sent, and both
            // under the tenant's lock, so a worker holding the token finds
            // it; a token with no room takes its request back out, from
            // the back where nobody else could have put anything since.
            q.items.push_back(item);
            if tx.try_send(None).is_err() {
                let item = q.items.pop_back().expect("pushed above");
                drop(q);
                return refuse(item);
            }
            !std::mem::replace(&mut q.active, true)
        };
        // The push that made the tenant active announces it.
        if announce {
            let _ = level.announce_tx.send(Arc::clone(t));
        }
        Ok(())
    }

    /// Waits up to `timeout` for room in the share of `item`'s tenant at
    /// level `lane`: how a blocking submit waits when the level has room
    /// but its tenant's share is full. False, at once, when that share is
    /// not full (the wait is for something else).
    pub(crate) fn wait_for_share(&self, lane: usize, item: &T, timeout: Duration) -> bool {
        let level = &self.levels[lane];
        let Some(t) = Self::known(level, item) else {
            return false;
        };
        let until = saturating_add(Instant::now(), timeout);
        let mut q = t.queue.lock();
        if q.items.len() < level.max_per_tenant {
            return false;
        }
        q.waiting += 1;
        while q.items.len() >= level.max_per_tenant {
            if t.room.wait_until(&mut q, until).timed_out() {
                break;
            }
        }
        q.waiting -= 1;
        true
    }

    /// Counts a refusal against `item`'s tenant at level `lane`: a
    /// blocking submit that waited for its share gave up.
    pub(crate) fn count_refused(&self, lane: usize, item: &T) {
        if let Some(t) = Self::known(&self.levels[lane], item) {
            t.refused().fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `item`'s tenant in `level`, if the level knows it.
    fn known(level: &Level<T>, item: &T) -> Option<Arc<Tenant<T>>> {
        match item.tenant().filter(|n| &***n != DEFAULT_TENANT) {
            None => Some(Arc::clone(&level.default)),
            Some(name) => level.table.read().by_name.get(&**name).cloned(),
        }
    }

    /// The next item of level `lane` by the round robin, after a token was
    /// received; `None` when its request is not announced yet (the caller
    /// then hands the token back).
    pub(crate) fn pop(&self, lane: usize) -> Option<T> {
        let level = &self.levels[lane];
        let mut ring = level.ring.lock();
        let absorb = |ring: &mut Drr<Arc<Tenant<T>>>| {
            while let Ok(t) = level.announce_rx.try_recv() {
                let w = t.weight;
                ring.activate(t, w);
            }
        };
        // The token's request is in some tenant of the ring or of the
        // announcements, or about to be announced: a submitter that found
        // its tenant active sent its token without announcing, and the one
        // that made the tenant active may still be between that and its
        // announcement. Look round the ring (announcements included) once;
        // if nothing is there yet, say so, and the caller hands the token
        // back to the level's channel rather than wait holding the lock.
        absorb(&mut ring);
        let mut left = ring.len();
        loop {
            let taken = {
                let t = ring.front()?;
                let mut q = t.queue.lock();
                q.items.pop_front().map(|item| {
                    q.served += 1;
                    // An emptied tenant is inactive from the same step on
                    // and leaves the ring; its next push announces it again.
                    let emptied = q.items.is_empty();
                    q.active = !emptied;
                    if q.waiting > 0 {
                        t.room.notify_one();
                    }
                    (item, emptied)
                })
            };
            let Some((item, emptied)) = taken else {
                ring.skip();
                if left == 0 {
                    return None;
                }
                left -= 1;
                absorb(&mut ring);
                continue;
            };
            if let Some(t) = ring.served(emptied) {
                self.forget_idle(level, &t, ring.len());
            }
            return Some(item);
        }
    }

    /// Forgets `t` (emptied and inactive) when more idle tenants than
    /// `IDLE_KEPT` are known, keeping its counts.
    fn forget_idle(&self, level: &Level<T>, t: &Arc<Tenant<T>>, active: usize) {
        if Arc::ptr_eq(t, &level.default) {
            return;
        }
        {
            let table = level.table.read();
            if table.by_name.len() <= active + IDLE_KEPT {
                return;
            }
        }
        let mut table = level.table.write();
        // Under the write lock no submitter holds it: if it is still empty
        // and inactive, nobody can push to it any more.
        let idle = {
            let q = t.queue.lock();
            q.items.is_empty() && !q.active
        };
        let known = table
            .by_name
            .get(&t.name)
            .is_some_and(|k| Arc::ptr_eq(k, t));
        if idle && known && table.by_name.len() > active + IDLE_KEPT {
            table.by_name.remove(&t.name);
            table.keep_counts(&t.name, t.counts().0);
        }
    }

    /// The most accepted tenants' counts, then `other` (tenants past the
    /// tracked or the reported ones) when it has any.
    pub(crate) fn stats(&self) -> Vec<TenantStats> {
        let mut merged: HashMap<Arc<str>, (Counts, usize)> = HashMap::new();
        let mut other = Counts::default();
        for level in &self.levels {
            let table = level.table.read();
            for (name, t) in &table.by_name {
                let e = merged.entry(Arc::clone(name)).or_default();
                let (c, waiting) = t.counts();
                e.0.add(&c);
                e.1 += waiting;
            }
            for (name, c) in &table.book {
                merged.entry(Arc::clone(name)).or_default().0.add(c);
            }
            other.add(&table.other);
        }
        merged.retain(|_, (c, q)| c.accepted + c.refused > 0 || *q > 0);
        let mut named: Vec<_> = merged.into_iter().collect();
        named.sort_by(|a, b| {
            b.1 .0
                .accepted
                .cmp(&a.1 .0.accepted)
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut other_queued = 0;
        for (_, (c, queued)) in named.iter().skip(REPORTED_TENANTS) {
            other.add(c);
            other_queued += queued;
        }
        let mut out: Vec<TenantStats> = named
            .iter()
            .take(REPORTED_TENANTS)
            .map(|(name, (c, queued))| TenantStats {
                tenant: name.to_string(),
                accepted: c.accepted,
                served: c.served,
                refused: c.refused,
                queued: *queued,
            })
            .collect();
        if other.accepted + other.refused > 0 {
            out.push(TenantStats {
                tenant: OTHER_TENANTS.to_owned(),
                accepted: other.accepted,
                served: other.served,
                refused: other.refused,
                queued: other_queued,
            });
        }
        out
    }
}

/// The name of the bucket that sums the tenants not reported by name.
pub(crate) const OTHER_TENANTS: &str = "(other)";

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::sync::atomic::AtomicUsize;

    struct For(Option<Arc<str>>);

    impl Tenanted for For {
        fn tenant(&self) -> Option<&Arc<str>> {
            self.0.as_ref()
        }
    }

    #[test]
    fn every_token_finds_a_request_under_concurrent_pushes() {
        let names: Vec<Option<Arc<str>>> = vec![
            None,
            Some(Arc::from("a")),
            Some(Arc::from("b")),
            Some(Arc::from("c")),
        ];
        for _ in 0..200 {
            let cfg = TenantsConfig {
                enabled: true,
                max_queued_per_tenant: Some(3),
                ..Default::default()
            };
            let fair = Arc::new(Fair::<For>::new(&cfg, &LevelCapacity::uniform(8)));
            let (tx, rx) = bounded::<Option<For>>(8);
            let per = 500;
            let submitters: Vec<_> = (0..3)
                .map(|s| {
                    let (fair, tx, names) = (fair.clone(), tx.clone(), names.clone());
                    std::thread::spawn(move || {
                        let mut pushed = 0;
                        let mut i = s;
                        while pushed < per {
                            i += 1;
                            let n = names[i % names.len()].clone();
                            if fair.push(0, For(n), &tx, false).is_ok() {
                                pushed += 1;
                            } else {
                                std::thread::yield_now();
                            }
                        }
                    })
                })
                .collect();
            let total = 3 * per;
            let popped = Arc::new(AtomicUsize::new(0));
            let poppers: Vec<_> = (0..2)
                .map(|_| {
                    let (fair, rx, tx, popped) =
                        (fair.clone(), rx.clone(), tx.clone(), popped.clone());
                    std::thread::spawn(move || {
                        while popped.load(Ordering::SeqCst) < total {
                            let got = match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                                // Queued straight onto the idle level.
                                Ok(Some(_)) => Some(For(None)),
                                Ok(None) => fair.pop(0),
                                Err(_) => continue,
                            };
                            match got {
                                Some(_) => {
                                    popped.fetch_add(1, Ordering::SeqCst);
                                }
                                // Not announced yet: the token goes back.
                                None => tx.try_send(None).expect("room for the token"),
                            }
                        }
                    })
                })
                .collect();
            for s in submitters {
                s.join().unwrap();
            }
            for p in poppers {
                p.join().unwrap();
            }
            let popped = popped.load(Ordering::SeqCst);
            assert_eq!(popped, 3 * per);
        }
    }
}
