//! The remote group over TLS and with a bearer token, against the real
//! test server behind a TLS front (nginx with a CA made by the test, see
//! `remote_server/tls_proxy.rs`), on loopback. The token must reach the
//! server and appear in no log line, error or stats.
#![cfg(all(feature = "remote", feature = "openvino"))]

mod common;
mod remote_server;
#[path = "remote_server/tls_proxy.rs"]
mod tls_proxy;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use accelpool::remote::{RemoteConfig, RemoteError, RemoteFactory, Secret, TlsConfig};
use accelpool::{GroupConfig, Pool, Request};
use common::{assert_accounting, LONG};
use remote_server::{cls_model, image, Server};
use tls_proxy::{ca, TlsProxy, SERVER_NAME};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const TOKEN: &str = "s3cret-t0ken-4f9a";

/// Every event any thread logs, at every level (the HTTP/2 and TLS
/// crates' traces included), as text.
fn logged() -> &'static Mutex<String> {
    static LOG: OnceLock<Mutex<String>> = OnceLock::new();
    LOG.get_or_init(|| {
        struct Recorder;
        struct Text<'a>(&'a mut String);
        impl Visit for Text<'_> {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        impl<S: tracing::Subscriber> Layer<S> for Recorder {
            fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
                let mut line = String::from(event.metadata().target());
                event.record(&mut Text(&mut line));
                line.push('\n');
                logged().lock().unwrap().push_str(&line);
            }
        }
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
            .expect("the only subscriber of this test binary");
        Mutex::new(String::new())
    })
}

fn secured(url: String, ca: PathBuf, token: Option<&str>) -> RemoteConfig {
    let cfg = RemoteConfig::new([url], "cls").tls(TlsConfig {
        ca: Some(ca),
        domain: Some(SERVER_NAME.into()),
    });
    match token {
        Some(t) => cfg.header("authorization", Secret::new(format!("Bearer {t}"))),
        None => cfg,
    }
}

#[test]
fn tls_with_a_private_ca_and_a_token_serves_and_the_token_is_never_shown() {
    let log = logged();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "ca");
    let server = Server::start(&cls_model(), "cls");
    let proxy = TlsProxy::start(&ca, server.grpc, server.http, Some(TOKEN));
    let cfg = secured(proxy.url(), ca.pem.clone(), Some(TOKEN));
    let factory = RemoteFactory::new(&cfg).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
    let pool = Pool::builder()
        .group(GroupConfig::new("fleet").workers(2).pin(false), factory)
        .build()
        .unwrap();
    for i in 0..8 {
        let out = pool.submit(Request::new(image(i))).unwrap().wait().unwrap();
        assert_eq!(out[0].shape, [1, 2]);
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 8);
    assert_accounting(&stats);
    // The calls went through the TLS front, which checked the token.
    let access = proxy.access_log();
    assert!(
        access.matches("ModelInfer HTTP/2.0\" 200").count() >= 8,
        "{access}"
    );
    let shown = format!(
        "{stats:?}{}{cfg:?}{}",
        serde_json::to_string(&stats).unwrap(),
        log.lock().unwrap()
    );
    assert!(!shown.contains(TOKEN), "the token was shown");
}

#[test]
fn a_missing_or_wrong_token_is_refused_by_the_server_and_not_shown() {
    let log = logged();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "ca");
    let server = Server::start(&cls_model(), "cls");
    let proxy = TlsProxy::start(&ca, server.grpc, server.http, Some(TOKEN));
    for token in [None, Some("wr0ng-t0ken-77")] {
        let err = RemoteFactory::new(&secured(proxy.url(), ca.pem.clone(), token)).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, RemoteError::Metadata { .. }) && text.contains("Unauthenticated"),
            "{text}"
        );
        assert!(!text.contains("wr0ng"), "{text}");
    }
    let access = proxy.access_log();
    assert!(access.contains("ModelMetadata HTTP/2.0\" 200"), "{access}");
    assert!(!log.lock().unwrap().contains("wr0ng"));
}

#[test]
fn a_certificate_from_another_ca_or_for_another_name_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (ca(dir.path(), "ca"), ca(dir.path(), "other-ca"));
    let server = Server::start(&cls_model(), "cls");
    let proxy = TlsProxy::start(&ca, server.grpc, server.http, None);
    let wrong_ca = RemoteFactory::new(
        &secured(proxy.url(), other.pem.clone(), None).call_timeout(Duration::from_secs(2)),
    )
    .unwrap_err();
    let text = wrong_ca.to_string();
    assert!(
        matches!(wrong_ca, RemoteError::Tls(_)) && text.contains("not trusted"),
        "{text}"
    );
    let mut cfg = secured(proxy.url(), ca.pem.clone(), None);
    cfg.tls.as_mut().unwrap().domain = None;
    let wrong_name = RemoteFactory::new(&cfg).unwrap_err();
    let text = wrong_name.to_string();
    assert!(
        matches!(wrong_name, RemoteError::Tls(_))
            && text.contains("127.0.0.1")
            && text.contains("tls.domain"),
        "{text}"
    );
    // A CA file that is not there names the file.
    let missing = RemoteFactory::new(&secured(proxy.url(), dir.path().join("missing.pem"), None))
        .unwrap_err();
    assert!(
        matches!(&missing, RemoteError::Tls(t) if t.contains("missing.pem")),
        "{missing}"
    );
}

#[test]
fn rest_over_tls_with_a_private_ca_and_a_token_serves_and_a_wrong_ca_is_refused() {
    use accelpool::remote::Protocol;
    let log = logged();
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (ca(dir.path(), "ca"), ca(dir.path(), "other-ca"));
    let server = Server::start(&cls_model(), "cls");
    let proxy = TlsProxy::start(&ca, server.grpc, server.http, Some(TOKEN));
    let rest = |ca: PathBuf, token: Option<&str>| {
        let cfg = RemoteConfig::new([proxy.rest_url()], "cls")
            .protocol(Protocol::Rest)
            .tls(TlsConfig {
                ca: Some(ca),
                domain: None,
            });
        match token {
            Some(t) => cfg.header("authorization", Secret::new(format!("Bearer {t}"))),
            None => cfg,
        }
    };
    let factory = RemoteFactory::new(&rest(ca.pem.clone(), Some(TOKEN)))
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
    let pool = Pool::builder()
        .group(GroupConfig::new("fleet").workers(2).pin(false), factory)
        .build()
        .unwrap();
    for i in 0..4 {
        let out = pool.submit(Request::new(image(i))).unwrap().wait().unwrap();
        assert_eq!(out[0].shape, [1, 2]);
    }
    let stats = pool.shutdown(LONG).stats;
    assert_eq!(stats.counts.completed, 4);
    let access = proxy.access_log();
    assert!(
        access
            .matches("/v2/models/cls/infer HTTP/1.1\" 200")
            .count()
            >= 4,
        "{access}"
    );
    let wrong_ca = RemoteFactory::new(&rest(other.pem.clone(), Some(TOKEN))).unwrap_err();
    assert!(
        matches!(&wrong_ca, RemoteError::Tls(t) if t.contains("not trusted")),
        "{wrong_ca}"
    );
    let no_token = RemoteFactory::new(&rest(ca.pem.clone(), None)).unwrap_err();
    assert!(
        no_token.to_string().contains("Unauthenticated"),
        "{no_token}"
    );
    let shown = format!("{stats:?}{}", log.lock().unwrap());
    assert!(!shown.contains(TOKEN), "the token was shown");
}
