//! The remote device group against a real Open Inference Protocol server
//! (MLServer running the PP-OCR classifier through OpenVINO's Python
//! runtime), on loopback. These tests need what `scripts/setup.sh
//! --server` installs; without it they fail with that hint.
#![cfg(all(feature = "remote", feature = "openvino"))]

mod common;
mod remote_server;

use std::time::Duration;

use accelpool::openvino::{OpenVinoConfig, OpenVinoFactory, Precision, Tensor, Tensors};
use accelpool::remote::{RemoteConfig, RemoteError, RemoteFactory};
use accelpool::{ErrorKind, GroupConfig, Pool, Refusal, Request, RetryPolicy, TaskError};
use common::ports::reserve;
use common::{assert_accounting, LONG};
use remote_server::{cls_model, garbage_server, image, silent_server, Server};

/// The classifier in f32 on the local CPU with one inference thread, as
/// the server runs it.
fn cpu_factory() -> OpenVinoFactory {
    let ov = OpenVinoConfig::new(cls_model(), "CPU")
        .precision(Precision::F32)
        .inference_threads(1);
    OpenVinoFactory::new(&ov).unwrap()
}

/// A pool with only the local CPU group.
fn local() -> Pool<Tensors, Tensors> {
    Pool::builder()
        .group(GroupConfig::new("cpu").workers(1), cpu_factory())
        .build()
        .unwrap()
}

/// The fleet first (`fleet`, priority 9), the local CPU (one worker,
/// priority 1) as its fallback.
fn fleet_then_cpu(
    builder: accelpool::PoolBuilder<Tensors, Tensors>,
    fleet: GroupConfig,
    remote: RemoteFactory,
) -> Pool<Tensors, Tensors> {
    builder
        .group(fleet.priority(9).pin(false), remote)
        .group(
            GroupConfig::new("cpu").priority(1).workers(1),
            cpu_factory(),
        )
        .build()
        .unwrap()
}

/// The group named `name` in `stats`.
fn group(stats: &accelpool::PoolStats, name: &str) -> accelpool::GroupStats {
    stats
        .groups
        .iter()
        .find(|g| g.name == name)
        .unwrap()
        .clone()
}

fn remote_pool(cfg: &RemoteConfig) -> Pool<Tensors, Tensors> {
    Pool::builder()
        .group(
            GroupConfig::new("fleet").workers(4).pin(false),
            RemoteFactory::new(cfg).unwrap(),
        )
        .build()
        .unwrap()
}

#[test]
fn the_remote_group_gives_the_local_groups_outputs() {
    let server = Server::start(&cls_model(), "cls");
    let remote = remote_pool(&RemoteConfig::new([server.url()], "cls"));
    let local = local();
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let r = remote.submit(Request::new(image(i))).unwrap();
            let l = local.submit(Request::new(image(i))).unwrap();
            (r, l)
        })
        .collect();
    for (r, l) in handles {
        let (r, l) = (r.wait().unwrap(), l.wait().unwrap());
        assert_eq!(r.len(), l.len());
        for (a, b) in r.iter().zip(&l) {
            assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
            let (a, b) = (a.data.as_f32().unwrap(), b.data.as_f32().unwrap());
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5, "remote {a:?} against local {b:?}");
            }
        }
    }
    let stats = remote.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 24);
    assert_accounting(&stats);
}

#[test]
fn the_models_metadata_refuses_a_wrong_input_at_submit() {
    let server = Server::start(&cls_model(), "cls");
    let factory = RemoteFactory::new(&RemoteConfig::new([server.url()], "cls")).unwrap();
    // The server's own description of the model: one f32 input of 3
    // channels, any batch, height and width.
    let input = &factory.inputs()[0];
    assert_eq!(
        (input.name.as_str(), &input.dims[..]),
        ("x", &[None, Some(3), None, None][..])
    );
    let pool = Pool::builder()
        .group(GroupConfig::new("fleet").workers(2).pin(false), factory)
        .build()
        .unwrap();
    let wrong = [
        vec![Tensor::f32("x", [1, 4, 48, 192], vec![0.0; 4 * 48 * 192])],
        vec![Tensor::f32("x", [3, 48, 192], vec![0.0; 3 * 48 * 192])],
        vec![Tensor::f32("x", [1, 3, 48, 192], vec![0.0; 5])],
        vec![Tensor::new(
            "x",
            [1, 3, 2, 2],
            accelpool::openvino::TensorData::I64(vec![0; 12]),
        )],
    ];
    for input in wrong {
        let e = pool.submit(Request::new(input)).unwrap_err();
        assert!(
            matches!(e.refusal(), Refusal::Invalid { error, .. } if error.input == "x"),
            "{e}"
        );
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!((stats.counts.accepted, stats.refusals.invalid), (0, 4));
}

#[test]
fn a_model_the_server_does_not_have_is_a_typed_error_at_build() {
    let server = Server::start(&cls_model(), "cls");
    let e = RemoteFactory::new(&RemoteConfig::new([server.url()], "nope")).unwrap_err();
    assert!(
        matches!(e, RemoteError::Metadata { ref model, .. } if model == "nope"),
        "{e}"
    );
    // No server at all: unreachable, which an optional group is skipped for.
    let closed_port = reserve();
    let closed = closed_port.url();
    let e = RemoteFactory::new(&RemoteConfig::new([closed], "cls")).unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    // The reason under the connection's failure is said, not only that
    // it failed.
    assert!(e.to_string().contains("Connection refused"), "{e}");
}

#[test]
fn with_one_endpoint_down_every_request_goes_to_the_other() {
    let server = Server::start(&cls_model(), "cls");
    let down_port = reserve();
    let down = down_port.url();
    serves_every_request_without_a_failed_attempt(
        &RemoteConfig::new([down, server.url()], "cls"),
        40,
    );
}

/// Sends `n` requests (as many in flight as the group's workers) through a
/// pool of the remote group `cfg`: every one completes, and no attempt
/// fails, so a call that met a failing endpoint went on to another before
/// its attempt counted.
fn serves_every_request_without_a_failed_attempt(cfg: &RemoteConfig, n: usize) {
    let pool = remote_pool(cfg);
    let handles: Vec<_> = (0..n)
        .map(|i| pool.submit(Request::new(image(i))).unwrap())
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(
        (stats.counts.completed, stats.counts.failed_attempts),
        (n as u64, 0)
    );
    assert_accounting(&stats);
}

#[test]
fn a_silent_server_trips_the_call_timeout_and_calls_go_on_elsewhere() {
    let server = Server::start(&cls_model(), "cls");
    let (silent, _held) = silent_server();
    // A timeout a loaded machine's real server keeps well within, and a
    // cooldown that keeps the silent one aside once it has failed.
    let mut cfg = RemoteConfig::new([server.url(), format!("http://127.0.0.1:{silent}")], "cls")
        .call_timeout(Duration::from_secs(2));
    cfg.endpoint_breaker.cooldown = Duration::from_secs(600);
    serves_every_request_without_a_failed_attempt(&cfg, 12);
}

#[test]
fn a_server_that_answers_garbage_is_an_endpoint_failure_not_a_panic() {
    let server = Server::start(&cls_model(), "cls");
    let garbage = format!("http://127.0.0.1:{}", garbage_server());
    serves_every_request_without_a_failed_attempt(
        &RemoteConfig::new([garbage, server.url()], "cls"),
        12,
    );
}

#[test]
fn a_lone_server_that_dies_fails_the_attempt_as_transient_and_returns_by_probe() {
    let mut server = Server::start(&cls_model(), "cls");
    let factory = RemoteFactory::new(
        &RemoteConfig::new([server.url()], "cls").call_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let pool = Pool::builder()
        .retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .group(GroupConfig::new("fleet").workers(1).pin(false), factory)
        .build()
        .unwrap();
    pool.submit(Request::new(image(0))).unwrap().wait().unwrap();
    server.kill();
    match pool.submit(Request::new(image(1))).unwrap().wait() {
        Err(TaskError::DeadLettered { attempts }) => {
            assert!(
                attempts
                    .iter()
                    .all(|a| a.error.kind() == ErrorKind::Transient),
                "{attempts:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    server.restart();
    // The same connection comes back to the restarted server.
    // Refused at submit (unavailable) while the health poll finds it
    // down, then served.
    common::eventually("the restarted server answers", || {
        pool.submit(Request::new(image(2)))
            .is_ok_and(|h| h.wait().is_ok())
    });
    let stats = pool.shutdown(LONG).stats;
    assert_accounting(&stats);
}

#[test]
fn a_yaml_file_builds_a_local_group_and_a_remote_one_that_takes_the_overflow() {
    let server = Server::start(&cls_model(), "cls");
    let yaml = format!(
        r#"
groups:
  - name: cpu
    priority: 5
    workers: 1
    capacity: {{ urgent: 1, high: 1, normal: 1, low: 1 }}
    backend:
      openvino: {{ model: {model}, device: CPU, precision: f32 }}
  - name: fleet
    priority: 1
    workers: 4
    pin: false
    backend:
      remote: {{ endpoints: ["{url}"], model: cls }}
"#,
        model = cls_model().display(),
        url = server.url()
    );
    let cfg = accelpool::PoolConfig::from_yaml(&yaml).unwrap();
    let pool = accelpool::PoolBuilder::from_backends(cfg)
        .unwrap()
        .build()
        .unwrap();
    let handles: Vec<_> = (0..40)
        .map(|i| pool.submit(Request::new(image(i))).unwrap())
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    let stats = pool.shutdown(LONG).stats;
    let served = |g: &str| {
        stats
            .groups
            .iter()
            .find(|s| s.name == g)
            .unwrap()
            .counts
            .completed
    };
    // The local group's queue holds one request: the rest overflow to the
    // fleet.
    assert!(served("fleet") > 0 && served("cpu") > 0, "{stats:?}");
    assert_eq!(served("fleet") + served("cpu"), 40);
    assert_accounting(&stats);
}

#[test]
fn remote_settings_are_checked_with_their_field_paths() {
    let group = |remote: &str| {
        format!("groups:\n  - name: fleet\n    pin: false\n    backend:\n      remote: {remote}\n")
    };
    common::assert_config_errors(&[
        (
            &group("{ endpoints: [], model: cls }"),
            "groups[0].backend.remote.endpoints",
            "0 is outside 1..=64",
        ),
        (
            &group("{ endpoints: [\"localhost:8001\"], model: cls }"),
            "groups[0].backend.remote.endpoints[0]",
            "write `http://host:port`",
        ),
        (
            &group("{ endpoints: [\"http://h:1\"], model: \"\" }"),
            "groups[0].backend.remote.model",
            "the model's name",
        ),
        (
            &group("{ endpoints: [\"http://h:1\"], model: cls, call_timeout: 0s }"),
            "groups[0].backend.remote.call_timeout",
            "is outside",
        ),
        (
            &group("{ endpoints: [\"http://h:1\"], model: cls, headers: { \"Bad Header\": x } }"),
            "groups[0].backend.remote.headers.Bad Header",
            "lowercase",
        ),
        (
            "groups:\n  - name: fleet\n    backend:\n      remote: { endpoints: [\"http://h:1\"], model: cls }\n",
            "groups[0].pin",
            "set `pin: false`",
        ),
    ]);
}

#[test]
fn a_header_value_is_never_shown() {
    let cfg = RemoteConfig::new(["http://h:1"], "cls").header(
        "authorization",
        accelpool::remote::Secret::new("Bearer s3cret-token"),
    );
    let shown = format!("{cfg:?} {}", serde_yaml_ng::to_string(&cfg).unwrap());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn killing_the_server_mid_run_moves_everything_to_the_local_group_and_a_restart_brings_it_back() {
    use accelpool::{BreakerConfig, BreakerState};
    let mut server = Server::start(&cls_model(), "cls");
    let remote = RemoteFactory::new(
        &RemoteConfig::new([server.url()], "cls").call_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let breaker = BreakerConfig {
        window: 20,
        minimum_calls: 4,
        failure_rate_threshold: 0.5,
        recovery_timeout: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
        ..BreakerConfig::default()
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let pool = fleet_then_cpu(
        Pool::builder().retry(retry),
        GroupConfig::new("fleet").workers(4).breaker(breaker),
        remote,
    );
    let first: Vec<_> = (0..20)
        .map(|i| pool.submit(Request::new(image(i))).unwrap())
        .collect();
    // Killed with calls in flight and requests queued behind them.
    let in_flight: Vec<_> = (20..60)
        .map(|i| pool.submit(Request::new(image(i))).unwrap())
        .collect();
    server.kill();
    let after: Vec<_> = (60..100)
        .map(|i| pool.submit(Request::new(image(i))).unwrap())
        .collect();
    let mut done = 0;
    for h in first.into_iter().chain(in_flight).chain(after) {
        // Each one completes, on the fleet before the kill or on the CPU.
        h.wait().unwrap();
        done += 1;
    }
    assert_eq!(done, 100);
    let stats = pool.stats();
    let fleet = group(&stats, "fleet");
    assert!(
        fleet
            .breaker
            .transitions
            .iter()
            .any(|t| t.to == BreakerState::Open),
        "{:?}",
        fleet.breaker
    );
    assert!(group(&stats, "cpu").counts.completed > 0);
    // Back: the breaker's probes find the server and close it again.
    server.restart();
    common::eventually("the fleet serves again", || {
        pool.submit(Request::new(image(7))).unwrap().wait().unwrap();
        let fleet = group(&pool.stats(), "fleet");
        fleet.breaker.state == BreakerState::Closed
            && fleet
                .breaker
                .transitions
                .last()
                .is_some_and(|t| t.from == BreakerState::HalfOpen)
    });
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.dead_lettered, 0);
    assert_accounting(&stats);
}

#[test]
fn the_health_poll_finds_a_dead_server_before_any_call_does_and_a_live_one_again() {
    use accelpool::BreakerState;
    let mut server = Server::start(&cls_model(), "cls");
    let remote = RemoteFactory::new(
        &RemoteConfig::new([server.url()], "cls").health_interval(Duration::from_millis(20)),
    )
    .unwrap();
    let pool = fleet_then_cpu(
        Pool::builder(),
        GroupConfig::new("fleet")
            .workers(2)
            .breaker(accelpool::BreakerConfig {
                recovery_timeout: Duration::from_millis(50),
                ..accelpool::BreakerConfig::default()
            }),
        remote,
    );
    let fleet = common::stats_until(&pool, "a first poll", |s| {
        group(s, "fleet").endpoints[0].ready == Some(true)
    });
    assert_eq!(group(&fleet, "fleet").endpoints[0].endpoint, server.url());
    for i in 0..4 {
        pool.submit(Request::new(image(i))).unwrap().wait().unwrap();
    }
    assert_eq!(group(&pool.stats(), "fleet").endpoints[0].answered, 4);

    // Killed while idle: the poll sees it, no call has to fail first.
    server.kill();
    let stats = common::stats_until(&pool, "the fleet to be not ready", |s| {
        !group(s, "fleet").healthy
    });
    let fleet = group(&stats, "fleet");
    let why = fleet.not_ready.clone().unwrap();
    assert!(
        why.contains(&server.url()) && why.contains("server/live"),
        "{why}"
    );
    assert_eq!(fleet.breaker.state, BreakerState::Open);
    assert_eq!(fleet.endpoints[0].ready, Some(false));
    for i in 0..10 {
        pool.submit(Request::new(image(i))).unwrap().wait().unwrap();
    }
    let stats = pool.stats();
    assert_eq!(group(&stats, "cpu").counts.completed, 10);
    assert_eq!(group(&stats, "fleet").counts.failed_attempts, 0);
    assert_eq!(group(&stats, "fleet").endpoints[0].failed, 0);
    #[cfg(feature = "metrics")]
    {
        let text = accelpool::metrics::render(&stats);
        let at = format!("group=\"fleet\",endpoint=\"{}\"", server.url());
        for line in [
            format!("accelpool_endpoint_calls_total{{{at},result=\"answered\"}} 4"),
            format!("accelpool_endpoint_in_service{{{at}}} 0"),
            "accelpool_group_healthy{group=\"fleet\"} 0".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    // Back: the poll finds it ready, and the breaker's probes close it.
    server.restart();
    common::stats_until(&pool, "the fleet to be ready", |s| {
        group(s, "fleet").healthy
    });
    common::eventually("the fleet to serve again", || {
        pool.submit(Request::new(image(1))).unwrap().wait().unwrap();
        group(&pool.stats(), "fleet").breaker.state == BreakerState::Closed
    });
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(group(&stats, "fleet").not_ready, None);
    assert_eq!(stats.counts.dead_lettered, 0);
    assert_accounting(&stats);
}

#[test]
fn the_rest_binding_gives_the_same_outputs_and_checks_inputs_from_its_metadata() {
    use accelpool::remote::Protocol;
    let server = Server::start(&cls_model(), "cls");
    let cfg = RemoteConfig::new([server.rest_url()], "cls").protocol(Protocol::Rest);
    let remote = remote_pool(&cfg);
    let local = local();
    for i in 0..12 {
        let r = remote
            .submit(Request::new(image(i)))
            .unwrap()
            .wait()
            .unwrap();
        let l = local
            .submit(Request::new(image(i)))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!((&r[0].name, &r[0].shape), (&l[0].name, &l[0].shape));
        let (a, b) = (r[0].data.as_f32().unwrap(), l[0].data.as_f32().unwrap());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5, "rest {a:?} against local {b:?}");
        }
    }
    let wrong = vec![Tensor::f32("x", [1, 3, 48], vec![0.0; 3 * 48])];
    match remote.submit(Request::new(wrong)) {
        Err(e) => assert!(matches!(e.refusal(), Refusal::Invalid { .. }), "{e}"),
        Ok(_) => panic!("a wrong rank was accepted"),
    }
    let stats = remote.shutdown(LONG).stats;
    assert_eq!(stats.groups[0].backend["protocol"], "rest");
    assert_eq!(stats.counts.completed, 12);
    assert_accounting(&stats);
}

#[test]
fn over_rest_a_dead_endpoint_is_passed_over_and_the_health_poll_follows_the_server() {
    use accelpool::remote::Protocol;
    let mut server = Server::start(&cls_model(), "cls");
    let dead_port = reserve();
    let dead = dead_port.url();
    let cfg = RemoteConfig::new([dead.clone(), server.rest_url()], "cls")
        .protocol(Protocol::Rest)
        .health_interval(Duration::from_millis(20));
    let pool = remote_pool(&cfg);
    for i in 0..8 {
        pool.submit(Request::new(image(i))).unwrap().wait().unwrap();
    }
    let stats = common::stats_until(&pool, "the dead endpoint marked not ready", |s| {
        s.groups[0].endpoints[0].ready == Some(false)
    });
    let fleet = &stats.groups[0];
    assert_eq!(fleet.counts.failed_attempts, 0);
    assert_eq!(fleet.endpoints[0].endpoint, dead);
    assert_eq!(fleet.endpoints[1].answered, 8);
    server.kill();
    common::stats_until(&pool, "the group not ready", |s| !s.groups[0].healthy);
    server.restart();
    common::stats_until(&pool, "the group ready", |s| s.groups[0].healthy);
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 8);
    assert_accounting(&stats);
}

#[test]
fn a_runtime_hosts_a_local_model_and_a_remote_one_which_takes_no_core_from_the_budget() {
    use accelpool::{Runtime, RuntimeConfig};
    let server = Server::start(&cls_model(), "cls");
    // One core in the budget, not shared: the local model's pinned worker
    // takes it; the remote model's calls in flight take none.
    let yaml = format!(
        "cores: [0]
share_cores: false
models:
  local:
    groups:
      - name: cpu
        workers: 1
        backend:
          openvino: {{ model: {model}, device: CPU, precision: f32 }}
  fleet:
    groups:
      - name: fleet
        workers: 8
        pin: false
        backend:
          remote: {{ endpoints: [\"{url}\"], model: cls }}
",
        model = cls_model().display(),
        url = server.url()
    );
    let rt = Runtime::from_backends(RuntimeConfig::from_yaml(&yaml).unwrap()).unwrap();
    for i in 0..6 {
        let l = rt.submit("local", Request::new(image(i))).unwrap();
        let r = rt.submit("fleet", Request::new(image(i))).unwrap();
        let (l, r) = (l.wait().unwrap(), r.wait().unwrap());
        let (a, b) = (l[0].data.as_f32().unwrap(), r[0].data.as_f32().unwrap());
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5));
    }
    let stats = rt.stats();
    let model = |name: &str| stats.models.iter().find(|m| m.name == name).unwrap();
    assert_eq!(model("local").cores, [0]);
    assert!(model("fleet").cores.is_empty());
    assert_eq!(model("fleet").stats.groups[0].endpoints[0].answered, 6);
    // A model whose servers do not answer is refused, naming the model
    // and the group.
    let port = reserve();
    let dead = format!(
        "models:\n  gone:\n    groups:\n      - name: fleet\n        pin: false\n        backend:\n          remote: {{ endpoints: [\"http://127.0.0.1:{}\"], model: cls, connect_timeout: 200ms }}\n",
        port.number()
    );
    let err = Runtime::from_backends(RuntimeConfig::from_yaml(&dead).unwrap()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("model `gone`: group `fleet`: no server answered"),
        "{text}"
    );
    for (_, report) in rt.shutdown(LONG) {
        assert_accounting(&report.stats);
    }
}
