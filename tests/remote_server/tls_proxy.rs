//! A TLS front for the test server: nginx (from the distribution's
//! packages, installed by `scripts/test-tools.sh`) terminating TLS with a
//! certificate from a CA made here, and optionally requiring a bearer
//! token, before passing the gRPC calls to MLServer on loopback. MLServer
//! itself speaks neither TLS nor tokens.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::common::ports::{reserve, Port};

/// The name on the server's certificate (not the host it is reached at).
pub const SERVER_NAME: &str = "fleet.internal";

/// A CA's certificate, as a PEM file.
pub struct Ca {
    pub pem: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate authority of its own, its certificate written to
/// `dir/name.pem`.
pub fn ca(dir: &Path, name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("accelpool test {name}"));
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, issuer.pem()).unwrap();
    Ca { pem, issuer }
}

/// nginx in front of a gRPC server.
pub struct TlsProxy {
    child: Option<Child>,
    pub port: u16,
    /// The port of its REST front (HTTP/1.1 over TLS to the server's
    /// REST port).
    pub rest_port: u16,
    /// Both ports, reserved while the proxy lives.
    _ports: [Port; 2],
    dir: tempfile::TempDir,
}

fn nginx() -> &'static str {
    for bin in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(bin).is_file() {
            return bin;
        }
    }
    panic!("the TLS tests need nginx: run ./scripts/test-tools.sh");
}

impl TlsProxy {
    /// Serves TLS on free loopback ports with a certificate for
    /// [`SERVER_NAME`] signed by `ca`, passing calls to the server's gRPC
    /// port `upstream` on one and to its REST port `rest` on the other;
    /// with `token`, a call without `authorization: Bearer <token>` is
    /// refused (gRPC `Unauthenticated`, HTTP 401).
    pub fn start(ca: &Ca, upstream: u16, rest: u16, token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![SERVER_NAME.to_string()])
            .unwrap()
            .signed_by(&key, &ca.issuer)
            .unwrap();
        std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
        let rest_key = KeyPair::generate().unwrap();
        let rest_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&rest_key, &ca.issuer)
            .unwrap();
        std::fs::write(d.join("rest.pem"), rest_cert.pem()).unwrap();
        std::fs::write(d.join("rest.key"), rest_key.serialize_pem()).unwrap();
        let ports = [reserve(), reserve()];
        let (port, rest_port) = (ports[0].number(), ports[1].number());
        // Refused as a gRPC server refuses a call: HTTP 200 with the
        // status `Unauthenticated` (16) in the headers.
        let check = token.map_or(String::new(), |t| {
            format!("if ($http_authorization != \"Bearer {t}\") {{ return 401; }}")
        });
        let refuse = "error_page 401 = @unauthenticated;
    location @unauthenticated {
      internal;
      default_type application/grpc;
      add_header grpc-status 16 always;
      add_header grpc-message \"missing or wrong token\" always;
      return 200 \"\";
    }";
        let d = d.display();
        let conf = format!(
            "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    client_max_body_size 64m;
    {refuse}
    location / {{
      {check}
      grpc_pass grpc://127.0.0.1:{upstream};
    }}
  }}
  server {{
    listen 127.0.0.1:{rest_port} ssl;
    ssl_certificate {d}/rest.pem;
    ssl_certificate_key {d}/rest.key;
    client_max_body_size 64m;
    location / {{
      {check}
      proxy_pass http://127.0.0.1:{rest};
    }}
  }}
}}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
        let child = Command::new(nginx())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting nginx");
        let mut proxy = Self {
            child: Some(child),
            port,
            rest_port,
            _ports: ports,
            dir,
        };
        let until = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", rest_port)).is_err()
        {
            let exited = proxy.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > until {
                panic!("nginx did not start ({exited:?}): {}", proxy.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    /// The TLS endpoint (gRPC).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The TLS endpoint (REST). Its certificate is for `127.0.0.1`, the
    /// host it is called by (`tls.domain` is gRPC's only).
    pub fn rest_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.rest_port)
    }

    /// nginx's own output and error log.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.txt"), read("error.log"))
    }

    /// The calls it passed on or refused, one line each.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
