//! A device group of kind `remote` (feature `remote`): inference servers
//! that speak the Open Inference Protocol (KServe v2) over gRPC, such as
//! Triton, OpenVINO Model Server, MLServer or KServe, as one more group of
//! the pool. Its requests keep their priorities, queues, breakers,
//! retries, dead-letter queue and accounting; a priority below the local
//! groups makes the fleet the overflow, above them the first choice.
//!
//! A [`RemoteFactory`] reads the model's metadata once (waiting up to the
//! connection timeout and the call timeout, at least 10 s, per server), so inputs are
//! checked at submit exactly as for an OpenVINO group, and shares one
//! connection per server among the group's workers, each of which is one
//! call in flight (the group's `workers` is its concurrency, not cores: set
//! `pin: false`). A call goes to the server with the fewest calls in
//! flight among those in service; a server that fails (unreachable, reset,
//! timed out) `endpoint_breaker.failures` times in a row is set aside for
//! its cooldown, and a call that meets a failing server is sent to the
//! next one before its attempt counts as failed.
//!
//! Header values (a bearer token) are [`Secret`]s: never logged, never in
//! an error or the stats.

mod connect;
mod endpoint;
mod factory;
mod health;
mod metadata;
mod proto;
mod rest;
mod wire;

use std::time::Duration;

pub use crate::config::remote::{
    EndpointBreaker, Protocol, RemoteConfig, Secret, TlsConfig, CONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_BYTES, HEALTH_INTERVAL, MAX_ENDPOINTS, MAX_MESSAGE_BYTES,
    REMOTE_CALL_TIMEOUT,
};
pub use factory::{RemoteFactory, RemoteSession};
pub use metadata::RemoteInput;

/// Why a remote group could not be built, or a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The group's settings are invalid.
    #[error("remote group: {0}")]
    Config(String),
    /// An endpoint could not be set up (a malformed URL, a TLS setting).
    #[error("endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings could not be used (the CA file), or a server's
    /// certificate was refused (not from a trusted CA, not for its name).
    #[error("TLS: {0}")]
    Tls(String),
    /// A header's value cannot be sent (the value is not shown).
    #[error("header `{0}`: the name or value is not valid in a gRPC header (visible ASCII only); the value is not shown")]
    Header(String),
    /// The runtime that drives the calls could not start.
    #[error("starting the remote group's I/O thread: {0}")]
    Runtime(String),
    /// The servers' metadata for the model is missing or unusable.
    #[error("model `{model}`: {reason}")]
    Metadata {
        /// The model asked for.
        model: String,
        /// Why its metadata cannot be used.
        reason: String,
    },
    /// No endpoint answered (each one's reason, `; `-separated).
    #[error("no server answered: {0}")]
    Unreachable(String),
    /// A server answered with an error status.
    #[error("the server answered {code:?}: {message}")]
    Status {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The connection to a server failed under a call (refused, reset,
    /// or not speaking HTTP/2 gRPC).
    #[error("the connection to the server failed: {0}")]
    Transport(String),
    /// A call took longer than its timeout.
    #[error("the call timed out after {0:?}")]
    Timeout(Duration),
    /// A server's answer is not a valid inference result.
    #[error("the server's answer is malformed: {0}")]
    Malformed(String),
}

impl RemoteError {
    /// A status as the error it is: transport failures and deadlines are
    /// the endpoint's (fail over), other codes the server's answer.
    ///
    /// A status with a source was made on this side, from a failure of
    /// the connection (or of the call's timer); one without came from the
    /// server.
    fn from_status(s: &tonic::Status, timeout: Duration) -> Self {
        use std::error::Error;
        let message = || s.message().chars().take(512).collect();
        if s.code() == tonic::Code::DeadlineExceeded {
            return RemoteError::Timeout(timeout);
        }
        match s.source() {
            Some(cause) => {
                // The status's own message is tonic's summary ("transport
                // error"); the causes under it say what failed (a refused
                // or timed-out connect, a reset, a peer not speaking
                // HTTP/2), and go in the error after it.
                let mut reason: String = message();
                let mut e: Option<&(dyn Error + 'static)> = Some(cause);
                while let Some(c) = e {
                    if c.is::<tonic::TimeoutExpired>() {
                        return RemoteError::Timeout(timeout);
                    }
                    if let Some(tls) = tls_failure(c) {
                        return RemoteError::Tls(tls);
                    }
                    let text = c.to_string();
                    if !reason.ends_with(&text) && reason.len() < 512 {
                        reason = format!("{reason}: {text}");
                    }
                    e = c.source();
                }
                RemoteError::Transport(reason)
            }
            None => RemoteError::Status {
                code: s.code(),
                message: message(),
            },
        }
    }

    /// Whether the endpoint itself failed (rather than answering): the
    /// call may go to another one.
    pub fn is_endpoint_fault(&self) -> bool {
        match self {
            RemoteError::Timeout(_)
            | RemoteError::Unreachable(_)
            | RemoteError::Transport(_)
            | RemoteError::Tls(_) => true,
            // The server itself says it cannot take the call now.
            RemoteError::Status { code, .. } => *code == tonic::Code::Unavailable,
            _ => false,
        }
    }

    /// Whether no server answered (an optional group is then left out).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RemoteError::Unreachable(_))
    }
}

/// What a TLS handshake failure in a connection's error chain means, and
/// the setting that fixes it (`None`: not a TLS failure).
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    })?;
    Some(tls_explained(tls))
}

/// What a TLS failure means, and the setting that fixes it.
fn tls_explained(tls: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match tls {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not trusted: no CA the group trusts signed it \
             (give its CA's PEM file in `tls.ca`)"
                .into()
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not for the name called ({tls}); set `tls.domain` \
             to the name it carries"
        ),
        Error::InvalidCertificate(c) => format!("the server's certificate was refused: {c}"),
        other => format!("the TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::remote::RemoteError;

    /// A connector's error over the socket's, as a connection failure
    /// reaches a call.
    #[derive(Debug)]
    struct Connect(std::io::Error);

    impl std::fmt::Display for Connect {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("tcp connect error")
        }
    }

    impl std::error::Error for Connect {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_failed_connection_says_what_failed_under_the_summary() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(Connect(refused)));
        match RemoteError::from_status(&status, Duration::from_secs(1)) {
            RemoteError::Transport(reason) => {
                assert_eq!(reason, "tcp connect error: connection refused")
            }
            other => panic!("{other:?}"),
        }
    }
}
