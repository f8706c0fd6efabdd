//! A remote device group's settings: the inference servers it sends to, the
//! model it asks for, and how it talks to them.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ranges::{check_count, check_duration};
use super::ConfigError;

/// The most endpoints one remote group lists.
pub const MAX_ENDPOINTS: usize = 64;

/// Default of [`RemoteConfig::max_message_bytes`]: 64 MiB, the largest
/// request or answer the group sends or reads.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Largest accepted [`RemoteConfig::max_message_bytes`]: 1 GiB.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Range of [`RemoteConfig::call_timeout`].
pub const REMOTE_CALL_TIMEOUT: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(3600);

/// Range of [`RemoteConfig::connect_timeout`].
pub const CONNECT_TIMEOUT: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(600);

/// Range of [`RemoteConfig::health_interval`].
pub const HEALTH_INTERVAL: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(3600);

/// The protocol a remote group speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// gRPC (HTTP/2), tensors in binary (`raw_input_contents`): the fast
    /// path. Endpoints are the servers' gRPC ports.
    #[default]
    Grpc,
    /// REST (JSON over HTTP/1.1), for servers or proxies that do not pass
    /// gRPC: the same calls, tensors as JSON numbers (several times the
    /// bytes and the encoding work of gRPC). Endpoints are the servers'
    /// HTTP ports.
    Rest,
}

/// A value that is never shown: a header's token. `Debug` and `Display`
/// print `[redacted]`, so it cannot reach a log, an error or the stats.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// TLS to the servers (endpoints written `https://`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of the certificate authorities to trust instead of the
    /// system's roots (a private fleet's own CA).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The name the servers' certificates must carry, when it is not the
    /// endpoint's host.
    #[serde(default)]
    pub domain: Option<String>,
}

/// When one endpoint of a group is set aside, apart from the group's own
/// breaker: a request fails over to another endpoint before its attempt
/// counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointBreaker {
    /// Failures in a row (connection refused or reset, timeouts, a server
    /// that is not ready) that set the endpoint aside.
    pub failures: u32,
    /// How long it stays aside before one call tries it again.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for EndpointBreaker {
    fn default() -> Self {
        Self {
            failures: 3,
            cooldown: Duration::from_secs(1),
        }
    }
}

/// A remote device group: inference servers that speak the Open Inference
/// Protocol (KServe v2), as YAML writes it under a group's `backend:`:
///
/// ```yaml
/// backend:
///   remote:
///     endpoints: ["http://10.0.0.7:8001", "http://10.0.0.8:8001"]
///     model: cls
///     call_timeout: 2s
///     headers: { authorization: "Bearer ..." }
/// ```
///
/// The group's `workers` are its calls in flight, not cores: each waits on
/// the network, so a remote group sets `pin: false` and takes no core from
/// a runtime's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The servers: `http://host:port` (or `https://` for TLS), 1 to
    /// [`MAX_ENDPOINTS`]. Calls go to the one with the fewest in flight
    /// among those not set aside.
    pub endpoints: Vec<String>,
    /// The model's name on the servers.
    pub model: String,
    /// The model's version; the server's choice when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The protocol: `grpc` (the default) or `rest`.
    #[serde(default)]
    pub protocol: Protocol,
    /// The longest one call may take (then it fails as timed out, and the
    /// request fails over or retries), within [`REMOTE_CALL_TIMEOUT`].
    #[serde(default = "default_call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
    /// The longest a connection may take to open, within
    /// [`CONNECT_TIMEOUT`].
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// TLS settings for `https://` endpoints (system roots when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Headers sent with every call (gRPC metadata), such as
    /// `authorization`. Their values are never logged or shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// When an endpoint is set aside.
    #[serde(default)]
    pub endpoint_breaker: EndpointBreaker,
    /// How often each server is asked whether it is live and ready and
    /// whether the model is ready (`server/live`, `server/ready`,
    /// `models/{name}/ready`), within [`HEALTH_INTERVAL`]. The pool's
    /// supervisor starts a poll when one is due, in the background: a
    /// server that says not ready is skipped, and when none is ready the
    /// group is not ready (the router skips it and its breaker opens).
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub health_interval: Duration,
    /// The largest message sent or read, 1 KiB to [`MAX_MESSAGE_BYTES`].
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The most elements one input tensor may hold (checked at submit).
    #[serde(default = "default_max_tensor_elements")]
    pub max_tensor_elements: usize,
    /// Leave the group out of the pool (logged) when no server answers at
    /// start, instead of failing the build.
    #[serde(default)]
    pub optional: bool,
}

fn default_call_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_health_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

fn default_max_tensor_elements() -> usize {
    1 << 28
}

impl RemoteConfig {
    /// A group asking `endpoints` for `model`, with default settings.
    pub fn new<S: Into<String>>(
        endpoints: impl IntoIterator<Item = S>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            model: model.into(),
            version: None,
            protocol: Protocol::Grpc,
            call_timeout: default_call_timeout(),
            connect_timeout: default_connect_timeout(),
            tls: None,
            headers: BTreeMap::new(),
            endpoint_breaker: EndpointBreaker::default(),
            health_interval: default_health_interval(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_tensor_elements: default_max_tensor_elements(),
            optional: false,
        }
    }

    /// Sets the per-call timeout.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// Sets the protocol.
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }

    /// Sets how often the servers' health is polled.
    pub fn health_interval(mut self, d: Duration) -> Self {
        self.health_interval = d;
        self
    }

    /// Sets TLS.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds a header sent with every call (its value is never shown).
    pub fn header(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.headers.insert(name.into(), value);
        self
    }

    /// Checks every field; errors name the field under `path`.
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("{path}.{f}");
        check_count(
            || field("endpoints"),
            self.endpoints.len(),
            1,
            MAX_ENDPOINTS,
        )?;
        for (i, e) in self.endpoints.iter().enumerate() {
            let (scheme, rest) = e.split_once("://").unwrap_or(("", e));
            if !matches!(scheme, "http" | "https")
                || rest.is_empty()
                || rest.contains(char::is_whitespace)
            {
                return Err(ConfigError::new(
                    format!("{path}.endpoints[{i}]"),
                    format!("`{e}` is not an endpoint; write `http://host:port` (or `https://` for TLS)"),
                ));
            }
        }
        if self.model.is_empty() || self.model.len() > 256 {
            return Err(ConfigError::new(
                field("model"),
                "give the model's name on the servers (1 to 256 characters)",
            ));
        }
        check_duration(
            || field("call_timeout"),
            self.call_timeout,
            REMOTE_CALL_TIMEOUT,
        )?;
        check_duration(
            || field("connect_timeout"),
            self.connect_timeout,
            CONNECT_TIMEOUT,
        )?;
        check_duration(
            || field("health_interval"),
            self.health_interval,
            HEALTH_INTERVAL,
        )?;
        check_count(
            || field("max_message_bytes"),
            self.max_message_bytes,
            1024,
            MAX_MESSAGE_BYTES,
        )?;
        check_count(
            || field("max_tensor_elements"),
            self.max_tensor_elements,
            1,
            usize::MAX,
        )?;
        check_count(
            || field("endpoint_breaker.failures"),
            self.endpoint_breaker.failures,
            1,
            1000,
        )?;
        check_duration(
            || field("endpoint_breaker.cooldown"),
            self.endpoint_breaker.cooldown,
            super::ranges::BREAKER_COOLDOWN,
        )?;
        for name in self.headers.keys() {
            let ok = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok || name.ends_with("-bin") {
                return Err(ConfigError::new(
                    format!("{path}.headers.{name}"),
                    "a header name is lowercase letters, digits, `-` and `_` (and not a `-bin` one)",
                ));
            }
        }
        if let Some(tls) = &self.tls {
            if tls.domain.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::new(
                    field("tls.domain"),
                    "is empty; remove it to check the endpoint's own host",
                ));
            }
            if tls.domain.is_some() && self.protocol == Protocol::Rest {
                return Err(ConfigError::new(
                    field("tls.domain"),
                    "is not supported with `protocol: rest`; write the endpoint with the name \
                     its certificate carries, or use `protocol: grpc`",
                ));
            }
        }
        if self.protocol == Protocol::Rest {
            // They go in the URL's path as they are.
            let path_safe = |v: &str| {
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                    && v != "."
                    && v != ".."
            };
            if !path_safe(&self.model) {
                return Err(ConfigError::new(
                    field("model"),
                    "with `protocol: rest` a model name is letters, digits, `.`, `_` and `-` \
                     (it goes in the URL's path)",
                ));
            }
            if self.version.as_deref().is_some_and(|v| !path_safe(v)) {
                return Err(ConfigError::new(
                    field("version"),
                    "with `protocol: rest` a version is letters, digits, `.`, `_` and `-`",
                ));
            }
        }
        Ok(())
    }
}
