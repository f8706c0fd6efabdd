//! [`RemoteFactory`]: a remote group's servers, the model's inputs as their
//! metadata gives them (`metadata`), and the sessions (one per in-flight call slot)
//! that send requests to the least loaded server in service.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::{self, Headers};
use super::endpoint::{nanos_since, Client, Endpoint};
use super::metadata::RemoteInput;
use super::proto::{ModelInferResponse, ModelReadyRequest};
use super::{rest, wire, RemoteError};
use crate::config::remote::{Protocol, RemoteConfig};
use crate::core::{
    BackendHealth, EndpointStats, ErrorKind, InputError, RunContext, Session, SessionError,
    SessionFactory, WorkerInfo,
};
use crate::tensor::Tensors;

/// The least time the metadata read at start waits for each endpoint
/// (beyond its connection).
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What the sessions of one group share: the runtime that drives the
/// calls, and the rest.
pub(super) struct Remote {
    /// Runs the calls (each worker blocks on its own call's future here)
    /// and the health polls.
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

impl std::ops::Deref for Remote {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// The servers and how to call them: what a health poll running on the
/// runtime holds (never the runtime itself, which must not be dropped
/// from one of its own tasks).
pub(super) struct Shared {
    pub(super) endpoints: Vec<Endpoint>,
    pub(super) model: String,
    pub(super) version: String,
    protocol: Protocol,
    /// The model (and version) under `/v2/models/` in a REST path.
    pub(super) model_path: String,
    headers: Headers,
    pub(super) call_timeout: Duration,
    pub(super) limit: u32,
    pub(super) cooldown: u64,
    max_elements: usize,
    pub(super) epoch: Instant,
    /// Where the search for the least loaded endpoint starts, turning, so
    /// ties spread.
    turn: AtomicUsize,
    /// Nanoseconds between health polls.
    pub(super) health_interval: u64,
    /// Nanoseconds since the epoch when the next poll is due.
    pub(super) next_poll: AtomicU64,
    /// A poll is running.
    pub(super) polling: AtomicBool,
}

/// Builds the sessions of a remote group: connects to its servers, reads
/// the model's metadata once (so inputs are checked at submit) and shares
/// one set of connections among the group's workers, each of which is one
/// call in flight.
///
/// ```no_run
/// use accelpool::remote::{RemoteConfig, RemoteFactory};
/// use accelpool::{GroupConfig, Pool};
///
/// let remote = RemoteConfig::new(["http://127.0.0.1:8081"], "cls");
/// let factory = RemoteFactory::new(&remote)?;
/// let pool = Pool::builder()
///     .group(GroupConfig::new("fleet").workers(8).pin(false), factory)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RemoteFactory {
    remote: Arc<Remote>,
    inputs: Arc<[RemoteInput]>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for RemoteFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFactory")
            .field("model", &self.remote.model)
            .field(
                "endpoints",
                &self
                    .remote
                    .endpoints
                    .iter()
                    .map(|e| &e.url)
                    .collect::<Vec<_>>(),
            )
            .field("inputs", &self.inputs)
            .finish()
    }
}

impl RemoteFactory {
    /// Connects to the servers `config` lists and reads the model's
    /// metadata from the first that answers. Fails with
    /// [`RemoteError::Unreachable`] when none does.
    pub fn new(config: &RemoteConfig) -> Result<Self, RemoteError> {
        config
            .validate("remote")
            .map_err(|e| RemoteError::Config(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("accelpool-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        let endpoints = connect::endpoints(config, &runtime)?;
        let headers = connect::headers(config)?;
        let shared = Arc::new(Shared {
            endpoints,
            model: config.model.clone(),
            version: config.version.clone().unwrap_or_default(),
            protocol: config.protocol,
            model_path: rest::model_path(&config.model, config.version.as_deref().unwrap_or("")),
            headers,
            call_timeout: config.call_timeout,
            limit: config.endpoint_breaker.failures,
            cooldown: u64::try_from(config.endpoint_breaker.cooldown.as_nanos())
                .unwrap_or(u64::MAX),
            max_elements: config.max_tensor_elements,
            epoch: Instant::now(),
            turn: AtomicUsize::new(0),
            health_interval: u64::try_from(config.health_interval.as_nanos()).unwrap_or(u64::MAX),
            next_poll: AtomicU64::new(0),
            polling: AtomicBool::new(false),
        });
        let remote = Remote { runtime, shared };
        // Read once, at start, when a server may still be warming up: a
        // short call timeout is for inference, not for this.
        let metadata_timeout = config.connect_timeout + config.call_timeout.max(METADATA_TIMEOUT);
        let (inputs, outputs) = remote.metadata(metadata_timeout)?;
        Ok(Self {
            remote: Arc::new(remote),
            inputs: inputs.into(),
            outputs,
        })
    }

    /// The model's inputs, as the servers describe them.
    pub fn inputs(&self) -> &[RemoteInput] {
        &self.inputs
    }

    /// Polls every server now, waiting up to `timeout` for each answer
    /// (`server/live`, `server/ready`, `models/{name}/ready`), and returns
    /// the group's health: ready when the model is ready on at least one
    /// server. Servers found ready go back in service. A pool polls by
    /// itself, every `health_interval`, without blocking.
    pub fn ready(&self, timeout: Duration) -> BackendHealth {
        let shared = Arc::clone(&self.remote.shared);
        self.remote
            .runtime
            .block_on(async move { shared.poll_all(timeout).await });
        self.remote.health()
    }
}

impl Shared {
    /// A request for this group's model with the group's headers, timed
    /// out after `timeout` on the server's side too.
    pub(super) fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(timeout);
        let m = r.metadata_mut();
        for (k, v) in &self.headers.grpc {
            m.insert(k.clone(), v.clone());
        }
        r
    }

    /// The model as a request names it.
    pub(super) fn model_ready_request(&self) -> ModelReadyRequest {
        ModelReadyRequest {
            name: self.model.clone(),
            version: self.version.clone(),
        }
    }

    /// The model's name on the servers.
    pub(super) fn model(&self) -> &str {
        &self.model
    }

    /// The model under `/v2/models/` in a REST path.
    pub(super) fn model_path(&self) -> &str {
        &self.model_path
    }

    /// A REST call's headers and timeout.
    pub(super) fn rest_call(&self, timeout: Duration) -> rest::Call<'_> {
        rest::Call {
            headers: &self.headers.rest,
            timeout,
        }
    }
}

/// Waits for a call's answer for at most `timeout`.
pub(super) async fn call<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, RemoteError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(RemoteError::from_status(&status, timeout)),
        Err(_) => Err(RemoteError::Timeout(timeout)),
    }
}

impl Remote {
    /// Runs a call on the group's runtime, for at most `timeout`.
    pub(super) fn block_on<T>(
        &self,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, RemoteError> {
        self.runtime.block_on(call(timeout, fut))
    }

    /// The endpoint to call next: the one with the fewest calls in flight
    /// among those in service and not `tried` (a bit per endpoint); when
    /// every untried one is set aside, the one whose cooldown ends first
    /// (never none while one is untried: a group whose servers all failed
    /// still tries them, and the group's own breaker decides).
    fn pick(&self, tried: u64) -> Option<usize> {
        let now = nanos_since(self.epoch);
        let n = self.endpoints.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let untried = (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| tried & (1 << i) == 0);
        untried
            .clone()
            .filter(|&i| self.endpoints[i].available(now))
            .min_by_key(|&i| self.endpoints[i].in_flight())
            .or_else(|| untried.min_by_key(|&i| self.endpoints[i].aside_until()))
    }

    /// One inference call to one server, in its protocol.
    fn call_infer(
        &self,
        client: &Client,
        input: &Tensors,
        id: u64,
        timeout: Duration,
    ) -> Result<ModelInferResponse, RemoteError> {
        match client {
            Client::Grpc(c) => {
                let req = wire::request(&self.model, &self.version, id, input);
                let mut c = c.clone();
                self.block_on(timeout, c.model_infer(self.request(req, timeout)))
            }
            Client::Rest(r) => {
                let body = rest::infer_body(id, input);
                r.infer(&self.model_path, &body, &self.rest_call(timeout))
            }
        }
    }

    /// Runs one inference, failing over between endpoints: a failure of
    /// the endpoint itself (unreachable, reset, timed out) counts against
    /// it and the next one is tried; an answer (a result, or the server's
    /// own error status) ends the attempt.
    fn infer(&self, input: &Tensors, id: u64, timeout: Duration) -> Result<Tensors, RemoteError> {
        let mut tried = 0u64;
        let mut reasons = Vec::new();
        while let Some(i) = self.pick(tried) {
            tried |= 1 << i;
            let e = &self.endpoints[i];
            let result = {
                let _in_flight = e.start();
                self.call_infer(&e.client, input, id, timeout)
            };
            match result {
                Ok(answer) => {
                    e.answered();
                    return wire::outputs(answer, self.max_elements);
                }
                Err(err) if err.is_endpoint_fault() => {
                    let now = nanos_since(self.epoch);
                    if e.failed(now, self.limit, self.cooldown, err.to_string()) {
                        tracing::warn!("remote endpoint {} set aside: {err}", e.url);
                    }
                    // A lone endpoint's timeout is the attempt's.
                    if self.endpoints.len() == 1 {
                        return Err(err);
                    }
                    reasons.push(format!("{}: {err}", e.url));
                }
                Err(err) => {
                    e.answered();
                    return Err(err);
                }
            }
        }
        Err(RemoteError::Unreachable(reasons.join("; ")))
    }
}

impl SessionFactory<Tensors, Tensors> for RemoteFactory {
    fn create(
        &self,
        _worker: &WorkerInfo,
    ) -> Result<Box<dyn Session<Tensors, Tensors>>, SessionError> {
        Ok(Box::new(RemoteSession {
            remote: Arc::clone(&self.remote),
        }))
    }

    fn validate(&self, input: &Tensors) -> Result<(), InputError> {
        crate::tensor::validate(&self.inputs, input, self.remote.max_elements)
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![
            ("backend".into(), "remote".into()),
            (
                "protocol".into(),
                match self.remote.protocol {
                    Protocol::Grpc => "grpc",
                    Protocol::Rest => "rest",
                }
                .into(),
            ),
            ("model".into(), self.remote.model.clone()),
            (
                "endpoints".into(),
                self.remote
                    .endpoints
                    .iter()
                    .map(|e| e.url.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("outputs".into(), self.outputs.join(",")),
        ]
    }

    /// Starts a health poll in the background when one is due, and
    /// answers from the last: ready while the model is ready on at least
    /// one server (or none has been polled yet).
    fn health(&self) -> BackendHealth {
        self.remote.shared.poll_if_due(&self.remote.runtime);
        self.remote.health()
    }

    fn endpoints(&self) -> Vec<EndpointStats> {
        let now = nanos_since(self.remote.epoch);
        self.remote.endpoints.iter().map(|e| e.stats(now)).collect()
    }

    /// Each call carries one request.
    fn batch_key(&self, _input: &Tensors) -> Option<u64> {
        None
    }
}

/// One in-flight call slot of a remote group (a worker's session).
pub struct RemoteSession {
    remote: Arc<Remote>,
}

impl Session<Tensors, Tensors> for RemoteSession {
    fn run(&mut self, input: &Tensors, ctx: &RunContext<'_>) -> Result<Tensors, SessionError> {
        let s = &self.remote;
        // Within the request's own deadline, when it has one.
        let timeout = match ctx.deadline() {
            Some(d) => s
                .call_timeout
                .min(d.saturating_duration_since(Instant::now())),
            None => s.call_timeout,
        };
        if timeout.is_zero() {
            return Err(RemoteError::Timeout(timeout).into());
        }
        s.infer(input, ctx.request_id(), timeout)
            .map_err(SessionError::from)
    }
}

impl From<RemoteError> for SessionError {
    fn from(e: RemoteError) -> Self {
        let kind = match &e {
            RemoteError::Timeout(_) => ErrorKind::TimedOut,
            RemoteError::Unreachable(_) | RemoteError::Transport(_) => ErrorKind::Transient,
            RemoteError::Status { code, .. } => match code {
                tonic::Code::InvalidArgument
                | tonic::Code::NotFound
                | tonic::Code::FailedPrecondition
                | tonic::Code::OutOfRange
                | tonic::Code::Unimplemented
                | tonic::Code::PermissionDenied
                | tonic::Code::Unauthenticated => ErrorKind::Permanent,
                _ => ErrorKind::Transient,
            },
            _ => ErrorKind::Permanent,
        };
        SessionError::new(kind, e.to_string())
    }
}
