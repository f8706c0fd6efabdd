//! Request spans (feature `request-spans`) as a `tracing` subscriber sees
//! them: each request's span opens inside the caller's span, with a queue
//! span and a run span per attempt (group, worker, attempt, batch) under
//! it, and an outcome event. Run with
//! `cargo test --features request-spans --test request_spans`.
#![cfg(feature = "request-spans")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use accelpool::{GroupConfig, Pool, Request, RetryPolicy, SessionError, WorkerInfo};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span or event as recorded: its name, fields, and its parent's name.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    fields: HashMap<String, String>,
    parent: Option<String>,
    parent_id: Option<u64>,
    id: Option<u64>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.span(id).and_then(|s| s.parent());
        self.0.lock().unwrap().push(Seen {
            name: attrs.metadata().name().to_owned(),
            fields,
            parent: parent.as_ref().map(|p| p.name().to_owned()),
            parent_id: parent.map(|p| p.id().into_u64()),
            id: Some(id.into_u64()),
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let parent = ctx.event_span(event);
        self.0.lock().unwrap().push(Seen {
            name: event.metadata().name().to_owned(),
            fields,
            parent: parent.as_ref().map(|p| p.name().to_owned()),
            parent_id: parent.map(|p| p.id().into_u64()),
            id: None,
        });
    }
}

#[test]
fn each_request_has_a_span_with_its_queue_wait_runs_and_outcome() {
    let recorder = Recorder::default();
    // Global: the pool's worker threads must see the subscriber too (the
    // only test in this binary).
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    {
        let pool = Pool::<i32, i32>::builder()
            .group(
                GroupConfig::new("cpu").workers(1).pin(false),
                |_: &WorkerInfo| {
                    Ok(|x: &i32| -> Result<i32, SessionError> {
                        // Fails the first attempt of a negative input.
                        static FAILED: std::sync::atomic::AtomicBool =
                            std::sync::atomic::AtomicBool::new(false);
                        if *x < 0 && !FAILED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            return Err(SessionError::transient("busy"));
                        }
                        Ok(x * 2)
                    })
                },
            )
            .retry(RetryPolicy {
                max_attempts: 2,
                initial_backoff: std::time::Duration::from_millis(1),
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let app = tracing::info_span!("app.handle_image");
        let _in_app = app.enter();
        assert_eq!(pool.submit(Request::new(21)).unwrap().wait().unwrap(), 42);
        assert_eq!(pool.submit(Request::new(-1)).unwrap().wait().unwrap(), -2);
        common::assert_accounting(&pool.shutdown(common::LONG).stats);
    }
    let seen = recorder.0.lock().unwrap().clone();
    let requests: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.name == "accelpool.request")
        .collect();
    assert_eq!(requests.len(), 2, "{seen:#?}");
    for r in &requests {
        assert_eq!(r.parent.as_deref(), Some("app.handle_image"), "{r:?}");
        assert_eq!(r.fields["priority"], "normal");
        let under = |name: &str| -> Vec<&Seen> {
            seen.iter()
                .filter(|s| s.name == name && s.parent_id == r.id)
                .collect()
        };
        let runs = under("accelpool.run");
        let outcome = under("accelpool.outcome");
        assert!(!under("accelpool.queue").is_empty(), "{seen:#?}");
        assert_eq!(outcome.len(), 1, "{seen:#?}");
        assert_eq!(outcome[0].fields["outcome"], "Completed");
        for (i, run) in runs.iter().enumerate() {
            assert_eq!(run.fields["group"], "cpu");
            assert_eq!(run.fields["worker"], "0");
            assert_eq!(run.fields["batch"], "1");
            assert_eq!(run.fields["attempt"], (i + 1).to_string());
        }
        let expected_runs = if r.fields["id"] == requests[1].fields["id"] {
            2
        } else {
            1
        };
        assert_eq!(runs.len(), expected_runs, "{seen:#?}");
    }
}
