//! Setting up a remote group's clients from its settings: one per server
//! in the group's protocol (a lazily opened gRPC channel, or a REST
//! agent), the certificates `https://` servers are checked against (the
//! system's roots, or the PEM file in `tls.ca`), and the headers every
//! call carries, in each protocol's form.

#![forbid(unsafe_code)]

use std::io::Read;
use std::path::Path;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint as TonicEndpoint};

use super::endpoint::{Client, Endpoint};
use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::rest::Rest;
use super::RemoteError;
use crate::config::remote::{Protocol, RemoteConfig};

/// The largest CA file read.
const MAX_CA_BYTES: u64 = 1 << 20;

/// The headers every call carries (values are secrets).
pub(super) struct Headers {
    /// As gRPC metadata, marked sensitive.
    pub(super) grpc: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    /// As HTTP headers for REST.
    pub(super) rest: Vec<(String, String)>,
}

/// The group's headers, checked.
pub(super) fn headers(config: &RemoteConfig) -> Result<Headers, RemoteError> {
    // Allowed (a sidecar on loopback, a private network), but said.
    if !config.headers.is_empty() {
        for url in config.endpoints.iter().filter(|u| u.starts_with("http://")) {
            tracing::warn!(
                "remote endpoint {url}: the group's headers ({}) travel unencrypted; use \
                 `https://` unless the network is private",
                config
                    .headers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut h = Headers {
        grpc: Vec::with_capacity(config.headers.len()),
        rest: Vec::with_capacity(config.headers.len()),
    };
    for (name, value) in &config.headers {
        let key = AsciiMetadataKey::from_bytes(name.as_bytes())
            .map_err(|_| RemoteError::Header(name.clone()))?;
        let mut v = AsciiMetadataValue::try_from(value.expose())
            .map_err(|_| RemoteError::Header(name.clone()))?;
        // Printed as `Sensitive` by any `Debug` (an HTTP/2 trace log
        // included), and never added to HPACK's table.
        v.set_sensitive(true);
        h.grpc.push((key, v));
        h.rest.push((name.clone(), value.expose().to_owned()));
    }
    Ok(h)
}

/// One client per server, in the group's protocol. gRPC channels open
/// lazily on `runtime`: a server that is down now is tried again on each
/// call.
pub(super) fn endpoints(
    config: &RemoteConfig,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<Endpoint>, RemoteError> {
    let secure = config.endpoints.iter().any(|u| u.starts_with("https://"));
    let ca = match config.tls.as_ref().and_then(|t| t.ca.as_deref()) {
        Some(path) if secure => Some(read_ca(path)?),
        _ => None,
    };
    let domain = config.tls.as_ref().and_then(|t| t.domain.clone());
    let rest_roots = match config.protocol {
        Protocol::Rest if secure => Some(rest_roots(ca.as_deref())?),
        _ => None,
    };
    let mut endpoints = Vec::with_capacity(config.endpoints.len());
    for url in &config.endpoints {
        let https = url.starts_with("https://");
        let client = match config.protocol {
            Protocol::Grpc => {
                let bad = |reason: String| RemoteError::Endpoint {
                    endpoint: url.clone(),
                    reason,
                };
                let mut e = TonicEndpoint::from_shared(url.clone())
                    .map_err(|e| bad(e.to_string()))?
                    .connect_timeout(config.connect_timeout)
                    .tcp_nodelay(true);
                if https {
                    let mut tls = match &ca {
                        Some(pem) => {
                            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                        }
                        None => ClientTlsConfig::new().with_native_roots(),
                    };
                    if let Some(d) = &domain {
                        tls = tls.domain_name(d.clone());
                    }
                    e = e.tls_config(tls).map_err(|e| bad(format!("TLS: {e}")))?;
                }
                let channel = {
                    let _rt = runtime.enter();
                    e.connect_lazy()
                };
                Client::Grpc(
                    GrpcInferenceServiceClient::new(channel)
                        .max_decoding_message_size(config.max_message_bytes)
                        .max_encoding_message_size(config.max_message_bytes),
                )
            }
            Protocol::Rest => Client::Rest(Rest::new(
                url,
                config.connect_timeout,
                config.max_message_bytes,
                rest_roots.as_deref().filter(|_| https),
            )),
        };
        endpoints.push(Endpoint::new(url.clone(), client));
    }
    Ok(endpoints)
}

/// The CA file's bytes, bounded.
fn read_ca(path: &Path) -> Result<Vec<u8>, RemoteError> {
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_BYTES + 1).read_to_end(&mut pem))
        .map_err(|e| RemoteError::Tls(format!("reading the CA file {}: {e}", path.display())))?;
    if pem.len() as u64 > MAX_CA_BYTES {
        return Err(RemoteError::Tls(format!(
            "the CA file {} is above {MAX_CA_BYTES} bytes",
            path.display()
        )));
    }
    Ok(pem)
}

/// The certificates a REST client trusts: those of the CA file, or the
/// system's (as the gRPC client does).
fn rest_roots(ca: Option<&[u8]>) -> Result<Vec<ureq::tls::Certificate<'static>>, RemoteError> {
    let roots: Vec<_> = match ca {
        Some(pem) => ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(RemoteError::Tls(format!("the CA file: {e}")))),
            })
            .collect::<Result<_, _>>()?,
        None => rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
            .collect(),
    };
    if roots.is_empty() {
        return Err(RemoteError::Tls(match ca {
            Some(_) => "the CA file holds no certificate (PEM `CERTIFICATE` blocks)".into(),
            None => "this system has no root certificates; give the servers' CA in `tls.ca`".into(),
        }));
    }
    Ok(roots)
}
