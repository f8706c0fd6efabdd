//! The fair part of a group's queues: with tenant fairness on, each
//! priority level keeps each tenant's requests in the tenant's own queue,
//! served in a deficit round robin (`policy::drr`), and the level's
//! channel carries only tokens, one per request, so workers still wait on
//! the channels (spin, then park) exactly as without fairness.
//!
//! # The token protocol
//!
//! Submitters and workers share no lock. A submitter finds its tenant's
//! queue (a read lock on the level's tenant table, shared with the other
//! submitters; the default tenant's queue is held directly), reserves room
//! in the level and in its tenant's share with two counters (each a
//! compare-and-swap that never passes its bound), pushes the request onto
//! the tenant's lock-free queue, marks the tenant active (if it was not,
//! it announces the tenant on the level's activation channel), and sends
//! the token. A worker that receives a token takes the workers' lock on
//! the ring, moves the announced tenants into it, and pops from the ring's
//! pick; tokens are interchangeable. Two counts keep this sound: tokens
//! never exceed requests pushed and not yet popped (a request is pushed
//! before its token is sent, and popped after a token is received), so a
//! worker holding a token always finds a request in some tenant of the
//! ring, or announced, or about to be (a submitter that finds its tenant
//! already active sends its token without announcing, and the submitter
//! that made it active may not have announced it yet: a worker that finds
//! nothing hands its token back to the level's channel and looks again
//! later, never waiting with the lock held); and requests never
//! exceed the capacity, which is the channel's, so a token send never
//! finds the channel full. Every take, the drain's included, goes through a
//! token.
//!
//! An idle level (nothing reserved: no tenant has anything queued and the
//! channel is empty) has no order to keep, so a request that finds it so
//! goes straight onto the channel as a request, not a token, and skips the
//! tenant's queue and the ring: a lightly loaded pool pays one
//! compare-and-swap for fairness. It is still counted in the level's
//! `queued`, and the worker that takes it gives its room back, so the
//! channel never holds more than its capacity. Only the submitter that
//! moves the count from zero goes straight, so a backlog always goes
//! through the round robin.
//!
//! A tenant whose count falls to zero leaves the ring and is marked
//! inactive; the worker then looks at the count once more, so a request
//! pushed meanwhile (whose submitter saw the tenant still active) puts the
//! tenant back in the ring rather than being stranded.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::config::TenantsConfig;
use crate::core::{Job, LevelCapacity, Priority, TenantStats};
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

/// One tenant's queue in one level. What submitters write, what workers
/// write, and what both do sit on separate cache lines.
struct Tenant<T> {
    name: Arc<str>,
    weight: u32,
    tx: Sender<T>,
    rx: Receiver<T>,
    /// Requests reserved or waiting (at most the tenant's share), and
    /// whether the tenant is in the ring or announced to it.
    state: CachePadded<TenantState>,
    /// Requests served (workers).
    served: CachePadded<AtomicU64>,
    /// What submitters count: requests refused, and requests queued
    /// straight onto an idle level's channel. Accepted ones are
    /// `served + len + straight`.
    counts: CachePadded<SubmitterCounts>,
}

struct TenantState {
    len: AtomicUsize,
    active: AtomicBool,
}

struct SubmitterCounts {
    refused: AtomicU64,
    straight: AtomicU64,
}

impl<T> Tenant<T> {
    fn new(name: Arc<str>, weight: u32) -> Self {
        let (tx, rx) = unbounded();
        Self {
            name,
            weight,
            tx,
            rx,
            state: CachePadded::new(TenantState {
                len: AtomicUsize::new(0),
                active: AtomicBool::new(false),
            }),
            served: CachePadded::new(AtomicU64::new(0)),
            counts: CachePadded::new(SubmitterCounts {
                refused: AtomicU64::new(0),
                straight: AtomicU64::new(0),
            }),
        }
    }

    fn len(&self) -> &AtomicUsize {
        &self.state.len
    }

    fn active(&self) -> &AtomicBool {
        &self.state.active
    }

    fn refused(&self) -> &AtomicU64 {
        &self.counts.refused
    }

    /// Its counts: every request reserved was accepted, and is served or
    /// still counted in `len`; one queued straight onto an idle level
    /// counts as served at once.
    fn counts(&self) -> Counts {
        let served =
            self.served.load(Ordering::Relaxed) + self.counts.straight.load(Ordering::Relaxed);
        Counts {
            accepted: served + self.len().load(Ordering::Relaxed) as u64,
            served,
            refused: self.refused().load(Ordering::Relaxed),
        }
    }
}

/// Reserves one of `bound` in `n`; false when it is full.
fn reserve(n: &AtomicUsize, bound: usize) -> bool {
    // SeqCst: a tenant's count is read by the worker's deactivation check
    // in one total order with the `active` flag (module docs).
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        (v < bound).then_some(v + 1)
    })
    .is_ok()
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
    capacity: usize,
    max_per_tenant: usize,
    /// Requests reserved or waiting, all tenants: at most `capacity`.
    queued: AtomicUsize,
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
                    capacity,
                    // By default a tenant may fill half a level: one
                    // tenant's backlog never fills it for the others.
                    max_per_tenant: cfg.max_queued_per_tenant.unwrap_or(capacity.div_ceil(2)),
                    queued: AtomicUsize::new(0),
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
    /// token on the channel.
    pub(crate) fn push(
        &self,
        lane: usize,
        item: T,
        tx: &Sender<Option<T>>,
    ) -> Result<(), Refused<T>> {
        let level = &self.levels[lane];
        let Some(name) = item.tenant().filter(|n| &***n != DEFAULT_TENANT) else {
            return Self::push_to(level, &level.default, item, tx);
        };
        {
            let table = level.table.read();
            if let Some(t) = table.by_name.get(&**name) {
                // The read lock is held while pushing, so a worker cannot
                // forget this tenant meanwhile.
                return Self::push_to(level, t, item, tx);
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
            t.served.fetch_add(c.served, Ordering::Relaxed);
            t.refused().fetch_add(c.refused, Ordering::Relaxed);
        }
        let table = parking_lot::RwLockWriteGuard::downgrade(table);
        let pushed = Self::push_to(level, &t, item, tx);
        drop(table);
        pushed
    }

    fn push_to(
        level: &Level<T>,
        t: &Arc<Tenant<T>>,
        item: T,
        tx: &Sender<Option<T>>,
    ) -> Result<(), Refused<T>> {
        // An idle level (nothing reserved: no tenant's queue holds anything
        // and the channel is empty) has no order to keep: whatever arrives
        // now is what the round robin would serve next, so the request goes
        // straight onto the channel, still counted in `queued` (the worker
        // that takes it gives it back, `took_straight`), so the channel
        // never holds more than the capacity and a token always finds room.
        // One compare-and-swap decides it: only the submitter that moves
        // the count from zero goes straight, and none follows until that
        // request is taken, so a backlog goes through the round robin.
        // SeqCst: the same order as `reserve`.
        if level
            .queued
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            match tx.try_send(Some(item)) {
                Ok(()) => {
                    t.counts.straight.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                // Not reachable while `queued` bounds what the channel
                // holds; if it were, the request is refused, not lost.
                Err(e) => {
                    // SeqCst: the same order as `reserve`.
                    level.queued.fetch_sub(1, Ordering::SeqCst);
                    t.refused().fetch_add(1, Ordering::Relaxed);
                    return Err(Refused::Full(e.into_inner().expect("sent a request")));
                }
            }
        }
        if !reserve(&level.queued, level.capacity) {
            t.refused().fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Full(item));
        }
        if !reserve(t.len(), level.max_per_tenant) {
            // SeqCst: the same order as `reserve`.
            level.queued.fetch_sub(1, Ordering::SeqCst);
            t.refused().fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Full(item));
        }
        // The tenant holds its queue's receiver: the send cannot fail.
        let _ = t.tx.send(item);
        // SeqCst: a total order with the worker's deactivation (store
        // `false`, then load `len`), so one of the two puts it back.
        if !t.active().swap(true, Ordering::SeqCst) {
            let _ = level.announce_tx.send(Arc::clone(t));
        }
        // Never full: what the channel holds (tokens, and requests that
        // went straight) is counted in `queued`, at most its capacity.
        let sent = tx.try_send(None);
        debug_assert!(sent.is_ok(), "a fair level's token found no room");
        Ok(())
    }

    /// A worker took a request that went straight onto level `lane`'s
    /// channel: its room is free again.
    pub(crate) fn took_straight(&self, lane: usize) {
        // SeqCst: the same order as `reserve`.
        self.levels[lane].queued.fetch_sub(1, Ordering::SeqCst);
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
            let t = ring.front()?;
            let Ok(item) = t.rx.try_recv() else {
                ring.skip();
                if left == 0 {
                    return None;
                }
                left -= 1;
                absorb(&mut ring);
                continue;
            };
            t.served.fetch_add(1, Ordering::Relaxed);
            // SeqCst: see `push_to`.
            level.queued.fetch_sub(1, Ordering::SeqCst);
            let emptied = t.len().fetch_sub(1, Ordering::SeqCst) == 1;
            if let Some(t) = ring.served(emptied) {
                // SeqCst: see `push_to`; a request pushed after the count
                // fell to zero by a submitter that saw `active` still true
                // is seen here, and the tenant goes back in the ring.
                t.active().store(false, Ordering::SeqCst);
                if t.len().load(Ordering::SeqCst) > 0 && !t.active().swap(true, Ordering::SeqCst) {
                    let w = t.weight;
                    ring.activate(t, w);
                } else {
                    self.forget_idle(level, &t, ring.len());
                }
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
        let idle = t.len().load(Ordering::SeqCst) == 0 && !t.active().load(Ordering::SeqCst);
        let known = table
            .by_name
            .get(&t.name)
            .is_some_and(|k| Arc::ptr_eq(k, t));
        if idle && known && table.by_name.len() > active + IDLE_KEPT {
            table.by_name.remove(&t.name);
            table.keep_counts(&t.name, t.counts());
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
                e.0.add(&t.counts());
                e.1 += t.len().load(Ordering::Relaxed);
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
                            if fair.push(0, For(n), &tx).is_ok() {
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
