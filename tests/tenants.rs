//! Tenant fairness within a priority level: tenants share the workers by
//! weight, a flooding tenant cannot starve a quiet one of the same level
//! (its share and its wait, counted in services, stay bounded), each
//! tenant's backlog is bounded, strict priority between levels is kept,
//! and without fairness a level stays one FIFO.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use accelpool::{
    GroupConfig, Pool, PoolConfig, Priority, Refusal, Request, SessionError, TenantsConfig,
    WorkerInfo,
};
use common::{assert_accounting, Gate, LONG};
use parking_lot::Mutex;

/// The tenants served, in the order the worker ran them.
type Served = Arc<Mutex<Vec<String>>>;

/// One worker; input 0 waits at the gate; every call records its tenant
/// (the input's tag: `q` or `n`, or the priority test's labels).
fn pool(tenants: TenantsConfig, gate: &Gate, served: &Served) -> Pool<(u32, &'static str), u32> {
    let (gate, served) = (gate.clone(), served.clone());
    Pool::builder()
        .tenants(tenants)
        .group(
            GroupConfig::new("cpu").workers(1).capacity(4096).pin(false),
            move |_: &WorkerInfo| {
                let (gate, served) = (gate.clone(), served.clone());
                Ok(
                    move |x: &(u32, &'static str)| -> Result<u32, SessionError> {
                        if x.0 == 0 {
                            gate.pass();
                        } else {
                            served.lock().push(x.1.to_owned());
                        }
                        Ok(x.0)
                    },
                )
            },
        )
        .build()
        .unwrap()
}

fn fair(weights: &[(&str, u32)]) -> TenantsConfig {
    TenantsConfig {
        enabled: true,
        weights: weights.iter().map(|&(k, w)| (k.to_owned(), w)).collect(),
        ..Default::default()
    }
}

/// Holds the worker, queues `noisy_per_quiet` noisy requests for each quiet
/// one (`quiet` of them), lets the worker go, and returns the share of the
/// first `window` services that went to the quiet tenant.
fn quiet_share(tenants: TenantsConfig, quiet: u32, noisy_per_quiet: u32, window: usize) -> f64 {
    let (gate, served) = (Gate::new(), Served::default());
    let pool = pool(tenants, &gate, &served);
    let held = pool.submit(Request::new((0, "held"))).unwrap();
    gate.wait_reached();
    let mut handles = Vec::new();
    for i in 0..quiet {
        for j in 0..noisy_per_quiet {
            let r = Request::new((1 + i * 100 + j, "n")).tenant("noisy");
            handles.push(pool.submit(r).unwrap());
        }
        handles.push(pool.submit(Request::new((1, "q")).tenant("quiet")).unwrap());
    }
    gate.open_one();
    held.wait().unwrap();
    for h in handles {
        h.wait().unwrap();
    }
    let stats = pool.shutdown(LONG).stats;
    assert_accounting(&stats);
    let order = served.lock();
    assert_eq!(order.len(), (quiet * (noisy_per_quiet + 1)) as usize);
    order[..window].iter().filter(|t| *t == "q").count() as f64 / window as f64
}

#[test]
fn a_flooding_tenant_gets_its_weights_share_and_no_more() {
    // Noisy submits ten times as much; both are backlogged. Equal weights:
    // the quiet tenant gets half of the service while it has work.
    let share = quiet_share(fair(&[]), 100, 10, 200);
    assert!(
        (share - 0.5).abs() <= 0.05,
        "quiet share {share} for weight share 0.5"
    );
    // Weight 3 against 1: three quarters.
    let share = quiet_share(fair(&[("quiet", 3)]), 100, 10, 120);
    assert!(
        (share - 0.75).abs() <= 0.075,
        "quiet share {share} for weight share 0.75"
    );
    // Without fairness a level is one FIFO: the quiet tenant gets only
    // its share of the arrivals.
    let share = quiet_share(TenantsConfig::default(), 100, 10, 200);
    assert!(share < 0.15, "FIFO share {share}");
}

#[test]
fn a_quiet_tenant_waits_a_bounded_number_of_services_under_a_flood() {
    let (gate, served) = (Gate::new(), Served::default());
    let tenants = TenantsConfig {
        max_queued_per_tenant: Some(64),
        ..fair(&[])
    };
    let pool = Arc::new(pool(tenants, &gate, &served));
    // Hold the worker until the flood has filled its tenant's share.
    let held = pool.submit(Request::new((0, "held"))).unwrap();
    gate.wait_reached();
    let done = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood = {
        let (pool, done, refusals) = (pool.clone(), done.clone(), refusals.clone());
        std::thread::spawn(move || {
            let mut handles = Vec::new();
            let mut i = 1;
            while !done.load(Ordering::Relaxed) {
                match pool.try_submit(Request::new((i, "n")).tenant("noisy")) {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        assert!(matches!(e.refusal(), Refusal::Full { .. }), "{e}");
                        refusals.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                }
                i += 1;
            }
            handles
        })
    };
    common::eventually("the flood reaches its tenant's bound", || {
        refusals.load(Ordering::Relaxed) > 0
    });
    gate.open_one();
    held.wait().unwrap();
    // The quiet tenant submits one request at a time. Counted in services:
    // once its submit has returned (the request is queued), the worker
    // serves at most the call it may be starting, one noisy request that
    // found the level idle and went straight onto the channel (the round
    // robin does not charge it: only when the flood stalls long enough for
    // its backlog to drain), and one noisy turn (equal weights), however
    // deep the noisy backlog; without fairness it would wait for the whole
    // backlog, up to its share of 64.
    let mut worst = 0;
    for _ in 0..200 {
        let before = served.lock().len();
        let h = pool.submit(Request::new((1, "q")).tenant("quiet")).unwrap();
        let queued_at = served.lock().len();
        h.wait().unwrap();
        let order = served.lock();
        let ran_at = before + order[before..].iter().position(|t| t == "q").unwrap();
        worst = worst.max(ran_at.saturating_sub(queued_at));
    }
    done.store(true, Ordering::Relaxed);
    let handles = flood.join().unwrap();
    for h in handles {
        h.wait().unwrap();
    }
    assert!(worst <= 3, "the quiet tenant waited {worst} services");
    let refused = refusals.load(Ordering::Relaxed);
    let pool = Arc::try_unwrap(pool).unwrap();
    let stats = pool.shutdown(LONG).stats;
    let tenant = |name: &str| {
        stats.groups[0]
            .tenants
            .iter()
            .find(|t| t.tenant == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (tenant("quiet").accepted, tenant("quiet").refused),
        (200, 0)
    );
    assert_eq!(tenant("noisy").refused, refused);
    assert_eq!(tenant("noisy").accepted, tenant("noisy").served);
    assert_accounting(&stats);
}

#[test]
fn a_blocking_submit_waits_for_room_in_its_tenants_share() {
    for _ in 0..20 {
        let (gate, served) = (Gate::new(), Served::default());
        let tenants = TenantsConfig {
            max_queued_per_tenant: Some(2),
            ..fair(&[])
        };
        let pool = Arc::new(pool(tenants, &gate, &served));
        let held = pool.submit(Request::new((0, "held"))).unwrap();
        gate.wait_reached();
        // The level is idle: the first request goes straight onto its
        // channel; the next two fill `a`'s share.
        let mut handles: Vec<_> = (1..=3)
            .map(|i| pool.submit(Request::new((i, "a")).tenant("a")).unwrap())
            .collect();
        // The level has room, `a`'s share has none: refused at once, or
        // after the wait, with the request back.
        let e = pool
            .try_submit(Request::new((4, "a")).tenant("a"))
            .unwrap_err();
        assert!(matches!(e.refusal(), Refusal::Full { .. }), "{e}");
        assert_eq!(e.into_request().into_input().0, 4);
        let e = pool
            .submit_timeout(
                Request::new((5, "a")).tenant("a"),
                std::time::Duration::from_millis(20),
            )
            .unwrap_err();
        assert!(matches!(e.refusal(), Refusal::Timeout { .. }), "{e}");
        assert_eq!(e.into_request().into_input().0, 5);
        // Another tenant is not held back by it.
        handles.push(pool.try_submit(Request::new((6, "b")).tenant("b")).unwrap());
        // A blocking submit waits until a request of `a` leaves its queue.
        let blocked = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.submit(Request::new((7, "a")).tenant("a"))
                    .map_err(|e| e.to_string())
            })
        };
        gate.open_one();
        held.wait().unwrap();
        handles.push(blocked.join().unwrap().unwrap());
        for h in handles {
            h.wait().unwrap();
        }
        let mut ran = served.lock().clone();
        ran.sort();
        assert_eq!(ran, ["a", "a", "a", "a", "b"]);
        let pool = Arc::try_unwrap(pool).unwrap();
        let stats = pool.shutdown(LONG).stats;
        let a = stats.groups[0]
            .tenants
            .iter()
            .find(|t| t.tenant == "a")
            .unwrap();
        assert_eq!((a.accepted, a.served, a.refused), (4, 4, 2));
        assert_accounting(&stats);
    }
}

#[test]
fn strict_priority_between_levels_is_kept_with_tenants() {
    let (gate, served) = (Gate::new(), Served::default());
    let pool = pool(fair(&[]), &gate, &served);
    let held = pool.submit(Request::new((0, "held"))).unwrap();
    gate.wait_reached();
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(
            pool.submit(Request::new((1, "low")).tenant("a").priority(Priority::Low))
                .unwrap(),
        );
    }
    handles.push(
        pool.submit(
            Request::new((1, "urgent"))
                .tenant("b")
                .priority(Priority::Urgent),
        )
        .unwrap(),
    );
    handles.push(pool.submit(Request::new((1, "normal"))).unwrap());
    gate.open_one();
    held.wait().unwrap();
    for h in handles {
        h.wait().unwrap();
    }
    assert_eq!(*served.lock(), ["urgent", "normal", "low", "low", "low"]);
    let stats = pool.shutdown(LONG).stats;
    // Requests without a tenant count under the default tenant, "".
    assert!(stats.groups[0]
        .tenants
        .iter()
        .any(|t| t.tenant.is_empty() && t.accepted == 2));
    assert_accounting(&stats);
}

#[test]
fn tenants_read_from_yaml_and_bad_values_name_their_field() {
    let cfg = PoolConfig::from_yaml(
        "tenants:\n  enabled: true\n  weights: { web: 4 }\n  max_queued_per_tenant: 16\ngroups:\n  - name: a\n",
    )
    .unwrap();
    assert!(cfg.tenants.enabled);
    assert_eq!(cfg.tenants.weights["web"], 4);
    common::assert_config_errors(&[
        (
            "tenants:\n  weights: { web: 0 }\ngroups:\n  - name: a\n",
            "tenants.weights.web",
            "0 is outside 1..=1000",
        ),
        (
            "tenants:\n  max_queued_per_tenant: 0\ngroups:\n  - name: a\n",
            "tenants.max_queued_per_tenant",
            "0 is outside 1..=1048576",
        ),
        (
            "tenants:\n  enable: true\ngroups:\n  - name: a\n",
            "tenants.enable",
            "unknown field `enable`",
        ),
    ]);
}
