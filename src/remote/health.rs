//! A remote group's health, from the protocol itself: each server is asked
//! `server/live`, `server/ready` and `models/{name}/ready` together, in the
//! background on the group's I/O thread, at most once per
//! `health_interval` and never twice at once. The pool's supervisor starts
//! the polls (`SessionFactory::health`, at each of its health checks) and
//! reads the last answers, so its thread never waits on the network.
//!
//! A poll that finds a server not reachable, not live, not ready, or
//! without the model ready counts like a failed call on its endpoint
//! breaker: the `endpoint_breaker.failures`-th in a row (so one slow or
//! lost poll is not enough) sets it aside and marks it not ready, and it
//! then takes no calls, not even a trial one after its cooldown, until a
//! poll finds it ready, which puts it back in service at once. The group
//! is ready while at least one server is not marked so (a server not yet
//! polled counts as ready: the metadata read at start found one).

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::endpoint::{nanos_since, Client};
use super::factory::{call, Shared};
use super::proto::{ServerLiveRequest, ServerReadyRequest};
use super::RemoteError;
use crate::core::BackendHealth;

impl Shared {
    /// Starts a poll of every server on `runtime` when one is due and
    /// none is running; returns at once.
    pub(super) fn poll_if_due(self: &Arc<Self>, runtime: &tokio::runtime::Runtime) {
        let now = nanos_since(self.epoch);
        if now < self.next_poll.load(Ordering::Relaxed)
            || self.polling.swap(true, Ordering::Acquire)
        {
            return;
        }
        self.next_poll
            .store(now.saturating_add(self.health_interval), Ordering::Relaxed);
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            let timeout = shared.call_timeout;
            Arc::clone(&shared).poll_all(timeout).await;
            shared.polling.store(false, Ordering::Release);
        });
    }

    /// Asks every server at once, each call waiting at most `timeout`, and
    /// records the answers.
    pub(super) async fn poll_all(self: Arc<Self>, timeout: Duration) {
        let mut polls = tokio::task::JoinSet::new();
        for i in 0..self.endpoints.len() {
            let shared = Arc::clone(&self);
            polls.spawn(async move {
                let answer = shared.ask(i, timeout).await;
                let e = &shared.endpoints[i];
                let was = e.ready();
                let now = nanos_since(shared.epoch);
                if e.polled(answer, now, shared.limit, shared.cooldown) {
                    match e.ready() {
                        Some(true) if was.is_some() => {
                            tracing::info!("remote endpoint {} ready again", e.url)
                        }
                        Some(false) => tracing::warn!(
                            "remote endpoint {} not ready: {}",
                            e.url,
                            e.last_error().unwrap_or_default()
                        ),
                        _ => {}
                    }
                }
            });
        }
        while polls.join_next().await.is_some() {}
    }

    /// Server `i`'s answer: `Ok` when the model is ready on it, otherwise
    /// why not (not reachable, not live, not ready, the model not ready).
    async fn ask(self: &Arc<Self>, i: usize, timeout: Duration) -> Result<(), String> {
        match &self.endpoints[i].client {
            Client::Grpc(c) => {
                let (mut a, mut b, mut m) = (c.clone(), c.clone(), c.clone());
                let (live, ready, model) = tokio::join!(
                    call(
                        timeout,
                        a.server_live(self.request(ServerLiveRequest {}, timeout))
                    ),
                    call(
                        timeout,
                        b.server_ready(self.request(ServerReadyRequest {}, timeout))
                    ),
                    call(
                        timeout,
                        m.model_ready(self.request(self.model_ready_request(), timeout))
                    ),
                );
                self.verdict(
                    live.map(|r| r.live),
                    ready.map(|r| r.ready),
                    model.map(|r| r.ready),
                )
            }
            // A blocking client: on the runtime's blocking threads.
            Client::Rest(_) => {
                let shared = Arc::clone(self);
                tokio::task::spawn_blocking(move || {
                    let Client::Rest(r) = &shared.endpoints[i].client else {
                        unreachable!("matched above");
                    };
                    let call = shared.rest_call(timeout);
                    let model = format!("/v2/models/{}/ready", shared.model_path());
                    match r.healthy(&model, &call) {
                        Ok(true) => Ok(()),
                        model => shared.verdict(
                            r.healthy("/v2/health/live", &call),
                            r.healthy("/v2/health/ready", &call),
                            model,
                        ),
                    }
                })
                .await
                .unwrap_or_else(|e| Err(format!("the health poll failed: {e}")))
            }
        }
    }

    /// One server's health from its three answers (the model's readiness
    /// decides; the others say why it is not).
    fn verdict(
        &self,
        live: Result<bool, RemoteError>,
        ready: Result<bool, RemoteError>,
        model: Result<bool, RemoteError>,
    ) -> Result<(), String> {
        match (live, ready, model) {
            (_, _, Ok(true)) => Ok(()),
            (Err(err), _, _) => Err(format!("server/live: {err}")),
            (Ok(false), _, _) => Err("the server is not live".into()),
            (_, Err(err), _) => Err(format!("server/ready: {err}")),
            (_, Ok(false), _) => Err("the server is not ready".into()),
            (_, _, Err(err)) => Err(format!("models/{}/ready: {err}", self.model())),
            (_, _, Ok(false)) => Err(format!("model `{}` is not ready", self.model())),
        }
    }

    /// Ready while the model is ready on at least one server, or none has
    /// been polled; otherwise why each is not.
    pub(super) fn health(&self) -> BackendHealth {
        if self.endpoints.iter().any(|e| e.ready() != Some(false)) {
            return BackendHealth::Ready;
        }
        BackendHealth::NotReady(
            self.endpoints
                .iter()
                .map(|e| format!("{}: {}", e.url, e.last_error().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}
