//! Several models in one runtime: one core budget (no core pinned twice
//! unless sharing is allowed, and then said so), models added and removed
//! while running, requests routed by model name, removal under load loses
//! nothing, and the accounting identity holds per model and overall.

mod common;

use std::time::Duration;

use accelpool::{
    GroupConfig, Pool, PoolBuilder, Refusal, Request, Runtime, RuntimeConfig, RuntimeError,
    SessionError, TaskError, WorkerInfo,
};
use common::{assert_accounting, Gate, LONG};

/// The cores this process may run on.
fn cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// A model of one pinned worker that answers `x * factor`; input 0 waits
/// at the gate.
fn model(factor: u32, gate: &Gate) -> PoolBuilder<u32, u32> {
    let gate = gate.clone();
    Pool::builder().group(
        GroupConfig::new("cpu").workers(1).capacity(256),
        move |_: &WorkerInfo| {
            let gate = gate.clone();
            Ok(move |x: &u32| -> Result<u32, SessionError> {
                if *x == 0 {
                    gate.pass();
                }
                Ok(x * factor)
            })
        },
    )
}

fn runtime(budget: &[usize], share: bool) -> Runtime<u32, u32> {
    let yaml = format!(
        "cores: {budget:?}\nshare_cores: {share}\nmodels:\n  unused:\n    groups:\n      - name: cpu\n"
    );
    Runtime::with_config(&RuntimeConfig::from_yaml(&yaml).unwrap()).unwrap()
}

/// Every worker's core in a model's stats.
fn worker_cores(stats: &accelpool::PoolStats) -> Vec<usize> {
    stats
        .groups
        .iter()
        .flat_map(|g| &g.workers)
        .filter_map(|w| w.core)
        .collect()
}

#[test]
fn two_models_never_pin_one_core_twice() {
    let all = cores();
    if all.len() < 2 {
        // One core: the budget cannot hold two pinned models (see
        // `a_budget_too_small_is_refused_unless_sharing_is_allowed`).
        let rt = runtime(&all, false);
        let gate = Gate::new();
        rt.add_model("det", model(2, &gate)).unwrap();
        assert!(matches!(
            rt.add_model("rec", model(3, &gate)),
            Err(RuntimeError::CoreBudget { .. })
        ));
        return;
    }
    let rt = runtime(&all[..2], false);
    let gate = Gate::new();
    rt.add_model("det", model(2, &gate)).unwrap();
    rt.add_model("rec", model(3, &gate)).unwrap();
    assert_eq!(rt.models(), ["det", "rec"]);
    assert_eq!(
        rt.submit("det", Request::new(5)).unwrap().wait().unwrap(),
        10
    );
    assert_eq!(
        rt.submit("rec", Request::new(5)).unwrap().wait().unwrap(),
        15
    );
    let stats = rt.stats();
    let det = worker_cores(&stats.models[0].stats);
    let rec = worker_cores(&stats.models[1].stats);
    assert_eq!(
        det.len() + rec.len(),
        2,
        "each worker pinned: {det:?} {rec:?}"
    );
    assert!(det.iter().all(|c| !rec.contains(c)), "{det:?} {rec:?}");
    assert_eq!(stats.models[0].cores, det);
    assert_eq!(stats.models[1].cores, rec);
    assert!(stats.models.iter().all(|m| !m.shares_cores));
    // The cores of a removed model go to the next one.
    rt.remove_model("det", LONG).unwrap();
    rt.add_model("cls", model(4, &gate)).unwrap();
    let stats = rt.stats();
    assert_eq!(stats.models[0].name, "cls");
    assert_eq!(worker_cores(&stats.models[0].stats), det);
    assert_eq!(stats.counts.completed, 2);
    for report in rt.shutdown(LONG).into_values() {
        assert_accounting(&report.stats);
    }
}

#[test]
fn a_budget_too_small_is_refused_unless_sharing_is_allowed() {
    let one = [cores()[0]];
    let gate = Gate::new();
    let strict = runtime(&one, false);
    strict.add_model("det", model(2, &gate)).unwrap();
    let err = strict.add_model("rec", model(3, &gate)).unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::CoreBudget {
                need: 1,
                free: 0,
                budget: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("share_cores: true"), "{err}");
    assert_eq!(strict.models(), ["det"], "the refused model is not running");
    // Unpinned groups take no core from the budget.
    let unpinned = Pool::builder().group(GroupConfig::new("cpu").pin(false), |_: &WorkerInfo| {
        Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) })
    });
    strict.add_model("echo", unpinned).unwrap();

    let shared = runtime(&one, true);
    shared.add_model("det", model(2, &gate)).unwrap();
    shared.add_model("rec", model(3, &gate)).unwrap();
    let stats = shared.stats();
    assert!(
        !stats.models[0].shares_cores,
        "the first had the core alone"
    );
    assert!(
        stats.models[1].shares_cores,
        "the second shares it, and says so"
    );
    assert_eq!(stats.models[1].cores, one);
    assert_eq!(
        shared
            .submit("rec", Request::new(2))
            .unwrap()
            .wait()
            .unwrap(),
        6
    );
}

#[test]
fn removing_a_loaded_model_loses_nothing() {
    for round in 0..5 {
        let budget = cores();
        let rt = runtime(&budget, true);
        let gate = Gate::new();
        rt.add_model("busy", model(2, &gate)).unwrap();
        rt.add_model("calm", model(3, &gate)).unwrap();
        let held = rt.submit("busy", Request::new(0)).unwrap();
        gate.wait_reached();
        let queued: Vec<_> = (1..=100)
            .map(|i| rt.submit("busy", Request::new(i)).unwrap())
            .collect();
        // Remove it while one call is held and 100 wait. In odd rounds the
        // held call is let go while the removal drains (everything runs);
        // in even rounds only after it gave up (the running call and the
        // queued ones are cancelled).
        let opener = (round % 2 == 1).then(|| {
            let gate = gate.clone();
            std::thread::spawn(move || gate.open_one())
        });
        let drain = if round % 2 == 1 {
            LONG
        } else {
            Duration::from_millis(100)
        };
        let report = rt.remove_model("busy", drain).unwrap();
        match opener {
            Some(o) => o.join().unwrap(),
            None => gate.open_one(),
        }
        match held.wait() {
            Ok(0) => assert!(round % 2 == 1, "round {round}"),
            Err(TaskError::Cancelled { .. }) => assert!(round % 2 == 0, "round {round}"),
            other => panic!("round {round}: the held call ended as {other:?}"),
        }
        let (mut completed, mut cancelled) = (0, 0);
        for (i, h) in queued.into_iter().enumerate() {
            match h.wait() {
                Ok(v) => {
                    assert_eq!(v, 2 * (i as u32 + 1));
                    completed += 1;
                }
                Err(TaskError::Cancelled { .. }) => cancelled += 1,
                Err(e) => panic!("round {round}: request {i} ended as {e}"),
            }
        }
        assert_eq!(completed + cancelled, 100, "round {round}");
        if round % 2 == 0 {
            assert_eq!(
                (report.cancelled_running, report.cancelled_queued),
                (1, 100)
            );
        }
        assert_accounting(&report.stats);
        assert_eq!(report.stats.counts.accepted, 101);
        // New requests for it are refused, handed back.
        let err = rt.submit("busy", Request::new(7)).unwrap_err();
        assert!(matches!(err.refusal(), Refusal::UnknownModel { model } if model == "busy"));
        assert_eq!(err.into_request().into_input(), 7);
        // The other model never noticed.
        assert_eq!(
            rt.submit("calm", Request::new(3)).unwrap().wait().unwrap(),
            9
        );
        let stats = rt.stats();
        assert_eq!(stats.unknown_model, 1);
        assert_eq!(stats.counts.accepted, 102, "removed models still count");
        assert_eq!(
            stats.counts.accepted,
            stats.counts.completed
                + stats.counts.dead_lettered
                + stats.counts.cancelled
                + stats.counts.expired,
            "round {round}: the identity over every model"
        );
        rt.shutdown(LONG);
    }
}

#[test]
fn model_names_and_duplicates_are_checked() {
    let rt = runtime(&cores(), true);
    let gate = Gate::new();
    rt.add_model("det", model(2, &gate)).unwrap();
    let err = rt.add_model("det", model(2, &gate)).unwrap_err();
    assert!(matches!(err, RuntimeError::ModelExists { .. }), "{err}");
    let err = rt.add_model("bad name!", model(2, &gate)).unwrap_err();
    assert!(err.to_string().contains("letters, digits"), "{err}");
    let err = rt
        .add_model("pinned", model(2, &gate).cores(vec![0]))
        .unwrap_err();
    assert!(err.to_string().contains("models.pinned.cores"), "{err}");
    let err = rt.remove_model("nope", LONG).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no model named `nope`; the runtime has `det`"
    );
}

#[test]
fn runtime_yaml_names_the_model_in_every_error() {
    let cfg = RuntimeConfig::from_yaml(
        "cores: [0]\nmodels:\n  det:\n    groups:\n      - name: cpu\n  rec:\n    routing:\n      strategy: round_robin\n    groups:\n      - name: a\n      - name: b\n",
    )
    .unwrap();
    assert_eq!(cfg.models.len(), 2);
    assert_eq!(cfg.models["rec"].groups.len(), 2);
    for (yaml, field, message) in [
        (
            "models:\n  det:\n    groups:\n      - name: cpu\n        priority: 11\n",
            "models.det.groups[0].priority",
            "11 is outside 1..=10",
        ),
        ("models: {}\n", "models", "at least one model"),
        (
            "cores: [0, 0]\nmodels:\n  det:\n    groups:\n      - name: cpu\n",
            "cores[1]",
            "listed twice",
        ),
        (
            "models:\n  det:\n    cores: [1]\n    groups:\n      - name: cpu\n",
            "models.det.cores",
            "runtime's budget",
        ),
        (
            "models:\n  \"a b\":\n    groups:\n      - name: cpu\n",
            "models.a b",
            "letters, digits",
        ),
        ("modles:\n  det: {}\n", "modles", "unknown field"),
    ] {
        let err = RuntimeConfig::from_yaml(yaml).expect_err(yaml);
        assert_eq!(err.field, field, "{yaml}: {err}");
        assert!(err.message.contains(message), "{yaml}: {err}");
    }
    // A budget core the process may not run on.
    let err = Runtime::<u32, u32>::with_config(
        &RuntimeConfig::from_yaml(
            "cores: [4095]\nmodels:\n  det:\n    groups:\n      - name: cpu\n",
        )
        .unwrap(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("core 4095 is not one this process may run on"),
        "{err}"
    );
}
