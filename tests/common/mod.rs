//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use accelpool::{CountsSnapshot, PoolStats};
use crossbeam_channel::{bounded, Receiver, Sender};

pub mod ports;

/// Generous bound for waits that should end at once; reaching it means a bug.
pub const LONG: Duration = Duration::from_secs(20);

/// A gate a session blocks on until the test opens it, and a signal that
/// tells the test a session reached the gate.
#[derive(Clone)]
pub struct Gate {
    open_rx: Receiver<()>,
    open_tx: Sender<()>,
    reached_tx: Sender<()>,
    reached_rx: Receiver<()>,
}

impl Gate {
    pub fn new() -> Self {
        let (open_tx, open_rx) = bounded(0);
        let (reached_tx, reached_rx) = crossbeam_channel::unbounded();
        Self {
            open_rx,
            open_tx,
            reached_tx,
            reached_rx,
        }
    }

    /// Called by a session: signal arrival, then block until opened.
    pub fn pass(&self) {
        self.reached_tx.send(()).unwrap();
        let _ = self.open_rx.recv();
    }

    /// Called by the test: wait until a session is blocked at the gate.
    pub fn wait_reached(&self) {
        self.reached_rx
            .recv_timeout(LONG)
            .expect("a session reached the gate");
    }

    /// Let one blocked session through.
    pub fn open_one(&self) {
        self.open_tx
            .send_timeout((), LONG)
            .expect("a session waiting at the gate");
    }
}

/// Counts calls from many threads.
#[derive(Clone, Default)]
pub struct Count(Arc<AtomicUsize>);

impl Count {
    pub fn inc(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Waits until `cond` holds, failing the test (naming `what`) if it does not
/// within [`LONG`]. For conditions another thread makes true, such as a
/// detached call's late result being counted.
///
/// It backs off between looks (yields first, then sleeps growing to 1 ms):
/// a condition read from `pool.stats()` locks every worker, and spinning on
/// it would compete with the workers it waits for on a small machine.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + LONG;
    let mut pause = Duration::from_micros(1);
    let mut looks = 0u32;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        looks += 1;
        if looks < 16 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}

/// Waits until the supervisor has finished two more checks than it had:
/// after that, whatever it decides from state set before this call has
/// been decided (the first check may have been under way already).
pub fn supervisor_checked<I: Send + Sync + 'static, O: Send + 'static>(
    pool: &accelpool::Pool<I, O>,
) {
    let start = pool.stats().supervisor_checks;
    stats_until(pool, "two supervisor checks", |s| {
        s.supervisor_checks >= start + 2
    });
}

/// Polls a pool's stats until `cond` holds; returns the stats that held.
pub fn stats_until<I: Send + Sync + 'static, O: Send + 'static>(
    pool: &accelpool::Pool<I, O>,
    what: &str,
    cond: impl Fn(&PoolStats) -> bool,
) -> PoolStats {
    let mut last = None;
    eventually(what, || {
        let s = pool.stats();
        let ok = cond(&s);
        last = Some(s);
        ok
    });
    last.expect("sampled at least once")
}

/// Each YAML text is refused with the error naming `field`, its message
/// containing `message`.
pub fn assert_config_errors(cases: &[(&str, &str, &str)]) {
    for &(yaml, field, message) in cases {
        let err = accelpool::PoolConfig::from_yaml(yaml).expect_err(yaml);
        assert_eq!(err.field, field, "{yaml}: {err}");
        assert!(err.message.contains(message), "{yaml}: {err}");
    }
}

/// The invariant every test checks once a pool is shut down.
pub fn assert_accounting(stats: &PoolStats) {
    let c: CountsSnapshot = stats.counts;
    assert_eq!(
        c.accepted,
        c.completed + c.dead_lettered + c.cancelled + c.expired,
        "accepted = completed + dead_lettered + cancelled + expired must hold: {c:?}"
    );
    assert_eq!(
        stats.in_flight, 0,
        "nothing may be in flight after shutdown"
    );
}

/// Keeps the test output readable: panics injected on purpose carry
/// "injected" and are not printed; every other panic is.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.contains("injected") {
                default(info);
            }
        }));
    });
}
