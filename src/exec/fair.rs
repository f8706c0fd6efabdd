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
//! takes the oldest request of the ring's pick; tokens are
//! interchangeable. Each tenant in the ring holds the requests handed to
//! it; when they run out, the worker takes the tenant's lock once and
//! hands over everything pushed since (two buffers swapped, nothing
//! copied or allocated), so under a backlog a worker takes a tenant's lock
//! once per batch, not once per request, and a submitter rarely meets a
//! worker there. The share (the tenant's requests waiting, handed over or
//! not) is counted by the submitters' pushes against the workers' takes,
//! each written by its own side.
//!
//! Two counts keep this sound. Tokens never exceed requests queued and not
//! yet popped (a request is pushed before its token is sent, and popped
//! after a token is received), so a worker holding a token always finds a
//! request in some tenant of the ring, or announced, or about to be (a
//! submitter that finds its tenant already active sends its token without
//! announcing, and the submitter that made it active may not have
//! announced it yet: a worker that finds nothing keeps its token and looks
//! again, spinning then yielding, never waiting with the ring's lock held;
//! it never hands the token back to the channel, whose room may be taken
//! meanwhile by a new request's token, which would lose it). And every request waiting at a level has its token (or itself)
//! in the level's channel, or is being popped by a worker that holds one,
//! so the channel's capacity bounds the level: a submitter that waits for
//! room on the channel waits for exactly the room the level has.
//!
//! An idle level (its channel empty: no token waits, so no tenant's queue
//! holds anything but what workers holding tokens are taking) has no order
//! to keep, so a request that finds it so goes straight onto the channel as
//! a request, not a token, and skips the tenant's queue and the ring: a
//! lightly loaded pool pays one look at the channel for fairness. The ring
//! does not charge that request to its tenant's turn, so a tenant arriving
//! just after it may wait for it and for one turn of the same tenant: one
//! service more than the round robin alone would make it wait, at most
//! (only the head of the channel can be such a request).
//!
//! A take that empties a tenant (nothing handed over left, nothing pushed
//! since) marks it inactive under the tenant's lock, and the tenant
//! leaves the ring; its next push finds it inactive and announces it
//! again. A blocking submit whose tenant's share is full while the level
//! has room waits on the tenant's condition variable, rung by the take
//! that makes room. Both are model-checked (`loom_models`).

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::config::TenantsConfig;
use crate::core::{saturating_add, sync, Job, LevelCapacity, Priority, TenantStats};
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
pub(crate) struct Tenant<T> {
    name: Arc<str>,
    weight: u32,
    /// Its requests not yet handed to the ring, under a lock that a
    /// submitter holds for a push and a worker for a hand-over.
    queue: CachePadded<sync::Mutex<TenantQueue<T>>>,
    /// Requests the workers took (written under the ring's lock, one
    /// worker at a time).
    taken: CachePadded<sync::AtomicU64>,
    /// Submitters waiting for room in the share, and the bell that
    /// wakes them when a request is taken.
    waiting: sync::AtomicUsize,
    room: sync::Condvar,
    /// What submitters count alone, on a line of their own.
    counts: CachePadded<SubmitterCounts>,
}

struct TenantQueue<T> {
    /// Pushed and not yet handed to the ring, oldest first.
    incoming: VecDeque<T>,
    /// The ring's buffer while the tenant is out of it, kept so that
    /// coming back allocates nothing.
    spare: VecDeque<T>,
    /// In the ring, announced to it, or about to be (module docs).
    active: bool,
    /// Requests pushed (all time).
    pushed: u64,
    /// `taken` as this queue last read it: at most the real one, so
    /// `pushed - taken_seen` never counts fewer waiting than there are.
    taken_seen: u64,
}

impl<T> TenantQueue<T> {
    /// Whether its share, `bound` requests waiting, has room; reads the
    /// workers' count only when the last one read says it has none.
    fn has_room(&mut self, taken: &sync::AtomicU64, bound: usize) -> bool {
        let bound = bound as u64;
        if self.pushed - self.taken_seen < bound {
            return true;
        }
        self.taken_seen = taken.load(Ordering::Acquire);
        self.pushed - self.taken_seen < bound
    }
}

struct SubmitterCounts {
    refused: AtomicU64,
    straight: AtomicU64,
}

/// A tenant in a level's ring, with the requests handed to the ring: the
/// workers take them one by one under the ring's lock, and the tenant's
/// own lock only when these run out.
pub(crate) struct Lane<T> {
    tenant: Arc<Tenant<T>>,
    ready: VecDeque<T>,
}

impl<T> Lane<T> {
    /// The lane of a tenant joining the ring.
    pub(crate) fn new(tenant: Arc<Tenant<T>>) -> Self {
        Self {
            tenant,
            ready: VecDeque::new(),
        }
    }

    /// Takes the tenant's oldest request (under the ring's lock), and
    /// whether that emptied the tenant: it is then inactive from this step
    /// on and leaves the ring; its next push announces it again.
    pub(crate) fn take(&mut self) -> Option<(T, bool)> {
        if self.ready.is_empty() {
            let mut q = self.tenant.queue.lock();
            if self.ready.capacity() == 0 {
                self.ready = std::mem::take(&mut q.spare);
            }
            std::mem::swap(&mut self.ready, &mut q.incoming);
        }
        let item = self.ready.pop_front()?;
        self.tenant.took();
        // Handed over all it had: take what came meanwhile, or, if nothing
        // did, go inactive.
        let emptied = self.ready.is_empty() && {
            let mut q = self.tenant.queue.lock();
            if q.incoming.is_empty() {
                q.active = false;
                q.spare = std::mem::take(&mut self.ready);
                true
            } else {
                std::mem::swap(&mut self.ready, &mut q.incoming);
                false
            }
        };
        Some((item, emptied))
    }
}

impl<T> Tenant<T> {
    pub(crate) fn new(name: Arc<str>, weight: u32) -> Self {
        Self {
            name,
            weight,
            queue: CachePadded::new(sync::Mutex::new(TenantQueue {
                incoming: VecDeque::new(),
                spare: VecDeque::new(),
                active: false,
                pushed: 0,
                taken_seen: 0,
            })),
            taken: CachePadded::new(sync::AtomicU64::new(0)),
            waiting: sync::AtomicUsize::new(0),
            room: sync::Condvar::new(),
            counts: CachePadded::new(SubmitterCounts {
                refused: AtomicU64::new(0),
                straight: AtomicU64::new(0),
            }),
        }
    }

    fn refused(&self) -> &AtomicU64 {
        &self.counts.refused
    }

    /// Queues `item` if its share of at most `bound` waiting has room and
    /// `token` (sending the request's token) succeeds; `Ok(true)` when
    /// that made the tenant active (the caller announces it), the item
    /// back when either has no room.
    pub(crate) fn enqueue(
        &self,
        item: T,
        bound: usize,
        token: impl FnOnce() -> bool,
    ) -> Result<bool, T> {
        let mut q = self.queue.lock();
        if !q.has_room(&self.taken, bound) {
            return Err(item);
        }
        // The request is queued before its token is sent, and both under
        // the tenant's lock, so a worker holding the token finds it; a
        // token with no room takes its request back out, from the back
        // where nobody else could have put anything since.
        q.incoming.push_back(item);
        if !token() {
            return Err(q.incoming.pop_back().expect("pushed above"));
        }
        q.pushed += 1;
        Ok(!std::mem::replace(&mut q.active, true))
    }

    /// Waits until its share of at most `bound` waiting has room, or
    /// `until`; false, at once, when it has room already.
    pub(crate) fn wait_for_room(&self, bound: usize, until: Instant) -> bool {
        let mut q = self.queue.lock();
        if q.has_room(&self.taken, bound) {
            return false;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        // SeqCst: the submitter's half of the bell (`Tenant::took`):
        // raise `waiting`, then (`has_room`) read `taken`.
        sync::fence(Ordering::SeqCst);
        while !q.has_room(&self.taken, bound) {
            if self.room.wait_until(&mut q, until) {
                break;
            }
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// A worker took one of its requests (under the ring's lock): counts
    /// it, and rings the bell if a submitter waits for room.
    fn took(&self) {
        // One worker at a time writes (the ring's lock): a load and a
        // store, not a read-modify-write.
        let n = self.taken.load(Ordering::Relaxed) + 1;
        self.taken.store(n, Ordering::Release);
        // SeqCst: a Dekker pair with `wait_for_room` (raise `waiting`, then
        // read `taken`), so either that submitter sees this request gone
        // or this worker sees it waiting. Fences, as the model checker
        // orders them (it does not order SeqCst loads and stores).
        sync::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            // Taken under the lock the waiter checks and sleeps in, so the
            // bell cannot ring between its check and its sleep.
            let _q = self.queue.lock();
            self.room.notify_all();
        }
    }

    /// Its counts and its requests waiting: every request accepted is
    /// served or still waiting; one queued straight onto an idle level
    /// counts as served at once.
    fn counts(&self) -> (Counts, usize) {
        let pushed = self.queue.lock().pushed;
        let taken = self.taken.load(Ordering::Acquire).min(pushed);
        let straight = self.counts.straight.load(Ordering::Relaxed);
        let c = Counts {
            accepted: pushed + straight,
            served: taken + straight,
            refused: self.refused().load(Ordering::Relaxed),
        };
        (c, (pushed - taken) as usize)
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
    ring: Mutex<Drr<Lane<T>>>,
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
            let mut q = t.queue.lock();
            q.pushed += c.served;
            q.taken_seen += c.served;
            t.taken.fetch_add(c.served, Ordering::AcqRel);
            drop(q);
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
        match t.enqueue(item, level.max_per_tenant, || tx.try_send(None).is_ok()) {
            // The push that made the tenant active announces it.
            Ok(true) => {
                let _ = level.announce_tx.send(Arc::clone(t));
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(item) => refuse(item),
        }
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
        t.wait_for_room(level.max_per_tenant, until)
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

    /// The next item of level `lane` by the round robin, for a token just
    /// received. Its request is queued (a token is sent only after its
    /// request, under the tenant's lock), but its tenant may not be
    /// announced yet: its submitter is between the two steps. The worker
    /// then waits for it, spinning and yielding, without the ring's lock.
    /// It must not hand the token back to the channel: the room it left
    /// there may be taken meanwhile by a new request's token, and a token
    /// with no room would be lost, stranding a request.
    pub(crate) fn take_for_token(&self, lane: usize) -> T {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            if let Some(item) = self.pop(lane) {
                return item;
            }
            backoff.snooze();
        }
    }

    /// The next item of level `lane` by the round robin; `None` when the
    /// request a token stands for is not announced yet.
    fn pop(&self, lane: usize) -> Option<T> {
        let level = &self.levels[lane];
        let mut ring = level.ring.lock();
        let absorb = |ring: &mut Drr<Lane<T>>| {
            while let Ok(tenant) = level.announce_rx.try_recv() {
                let w = tenant.weight;
                ring.activate(Lane::new(tenant), w);
            }
        };
        // The token's request is in some tenant of the ring or of the
        // announcements, or about to be announced: a submitter that found
        // its tenant active sent its token without announcing, and the one
        // that made the tenant active may still be between that and its
        // announcement. Look round the ring (announcements included) once;
        // if nothing is there yet, say so, and the caller looks again
        // rather than wait holding the lock.
        absorb(&mut ring);
        let mut left = ring.len();
        loop {
            let Some((item, emptied)) = ring.front()?.take() else {
                ring.skip();
                if left == 0 {
                    return None;
                }
                left -= 1;
                absorb(&mut ring);
                continue;
            };
            if let Some(lane) = ring.served(emptied) {
                self.forget_idle(level, &lane.tenant, ring.len());
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
            q.incoming.is_empty() && !q.active
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
            // A lost token would leave a request that no token fetches:
            // the poppers are stopped after a bound instead of hanging.
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let poppers: Vec<_> = (0..2)
                .map(|_| {
                    let (fair, rx, popped, stop) =
                        (fair.clone(), rx.clone(), popped.clone(), stop.clone());
                    std::thread::spawn(move || {
                        while popped.load(Ordering::SeqCst) < total && !stop.load(Ordering::SeqCst)
                        {
                            match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                                // Queued straight onto the idle level.
                                Ok(Some(_)) => {}
                                Ok(None) => {
                                    fair.take_for_token(0);
                                }
                                Err(_) => continue,
                            }
                            popped.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for s in submitters {
                s.join().unwrap();
            }
            let bound = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while popped.load(Ordering::SeqCst) < total && std::time::Instant::now() < bound {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            stop.store(true, Ordering::SeqCst);
            for p in poppers {
                p.join().unwrap();
            }
            let popped = popped.load(Ordering::SeqCst);
            assert_eq!(popped, 3 * per);
            // Every tenant's count of accepted requests is its served ones
            // (none is left waiting), and refusals are counted apart.
            let stats = fair.stats();
            let accepted: u64 = stats.iter().map(|t| t.accepted).sum();
            assert_eq!(accepted, total as u64);
            for t in &stats {
                assert_eq!((t.accepted, t.queued), (t.served, 0), "{t:?}");
            }
        }
    }
}
