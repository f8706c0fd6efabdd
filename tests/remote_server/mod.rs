//! A real Open Inference Protocol server for the remote-group tests:
//! MLServer (installed into the project's venv by `scripts/setup.sh
//! --server`) serving a model through `openvino_runtime.py` beside this
//! file, on loopback ports of its own, started and stopped by process id.
//! Its includer provides `common::ports` (the tests' and the benchmarks'
//! `common` both do).
// Each test binary that includes it uses part of it.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accelpool::remote::{Protocol, RemoteConfig, RemoteFactory};
use accelpool::BackendHealth;

use crate::common::ports::{reserve, Port};

/// The PP-OCR direction classifier, which the server and the local
/// groups run.
pub fn cls_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ppocr/cls.onnx")
}

/// A text-line image the classifier takes, different for each `seed`
/// (`benches/remote/client.py` makes the same).
pub fn image(seed: usize) -> Vec<accelpool::openvino::Tensor> {
    let data = (0..3 * 48 * 192)
        .map(|i| ((i * 7919 + seed * 104_729) % 255) as f32 / 255.0 - 0.5)
        .collect();
    vec![accelpool::openvino::Tensor::f32("x", [1, 3, 48, 192], data)]
}

/// One server process and the folder holding its settings and log.
pub struct Server {
    child: Option<Child>,
    /// The gRPC port.
    pub grpc: u16,
    /// The REST (HTTP) port.
    pub http: u16,
    /// The model it serves.
    model: String,
    /// Both ports, reserved while the server lives (restarts included).
    _ports: [Port; 2],
    dir: tempfile::TempDir,
}

fn mlserver() -> PathBuf {
    let home = accelpool::openvino::library::setup_home()
        .expect("the remote tests need HOME or ACCELPOOL_HOME to find the setup venv");
    let bin = home.join("venv/bin/mlserver");
    assert!(
        bin.is_file(),
        "the remote tests need MLServer: run ./scripts/setup.sh --server (looked for {})",
        bin.display()
    );
    bin
}

impl Server {
    /// Serves `model_file` as `name` and waits until the model is ready
    /// on both ports (see [`Server::serves`]).
    pub fn start(model_file: &Path, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports = [reserve(), reserve()];
        let (grpc, http) = (ports[0].number(), ports[1].number());
        let settings = serde_json::json!({
            "host": "127.0.0.1",
            "http_port": http,
            "grpc_port": grpc,
            "metrics_endpoint": null,
            "parallel_workers": 0,
        });
        std::fs::write(dir.path().join("settings.json"), settings.to_string()).unwrap();
        let model_dir = dir.path().join(name);
        std::fs::create_dir(&model_dir).unwrap();
        let model = serde_json::json!({
            "name": name,
            "implementation": "openvino_runtime.OpenVinoRuntime",
            "parameters": { "uri": model_file },
        });
        std::fs::write(model_dir.join("model-settings.json"), model.to_string()).unwrap();
        let mut s = Self {
            child: None,
            grpc,
            http,
            model: name.to_owned(),
            _ports: ports,
            dir,
        };
        s.spawn();
        s
    }

    /// The gRPC endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    /// The REST endpoint.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log.txt")).unwrap();
        let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/remote_server");
        let child = Command::new(mlserver())
            .arg("start")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .env("PYTHONPATH", runtime)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting mlserver");
        self.child = Some(child);
        // Many servers may start at once on a loaded or one-CPU machine.
        let until = Instant::now() + Duration::from_secs(600);
        loop {
            if self.serves() {
                return;
            }
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > until {
                panic!(
                    "mlserver did not start ({exited:?}); its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server is up: both ports accept connections (checked
    /// first, as it costs nothing while the process starts), and over each
    /// protocol the server describes the model and says it and the model
    /// are ready. MLServer opens its ports while the model still loads,
    /// and stops serving when the load fails, so an open port alone says
    /// neither.
    fn serves(&self) -> bool {
        let open = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !(open(self.grpc) && open(self.http)) {
            return false;
        }
        [
            (self.url(), Protocol::Grpc),
            (self.rest_url(), Protocol::Rest),
        ]
        .into_iter()
        .all(|(url, protocol)| {
            let cfg = RemoteConfig::new([url], &self.model).protocol(protocol);
            RemoteFactory::new(&cfg)
                .is_ok_and(|f| f.ready(Duration::from_secs(10)) == BackendHealth::Ready)
        })
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log.txt")).unwrap_or_default()
    }

    /// Kills the process (SIGKILL: no goodbye to the clients) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // A failing test shows what the server said (its folder goes now).
        if std::thread::panicking() {
            eprintln!(
                "log of the server on ports {} and {}:\n{}",
                self.grpc,
                self.http,
                self.log()
            );
        }
    }
}

/// A server that accepts connections and never says a word.
pub fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(64) {
            held.push(s);
        }
    });
    (port, h)
}

/// A server that answers every connection with bytes that are not HTTP/2.
pub fn garbage_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nthis is not gRPC\x00\x01\x02");
        }
    });
    port
}
