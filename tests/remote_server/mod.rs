//! A real Open Inference Protocol server for the remote-group tests:
//! MLServer (installed into the project's venv by `scripts/setup.sh
//! --server`) serving a model through `openvino_runtime.py` beside this
//! file, on loopback ports of its own, started and stopped by process id.
// Each test binary that includes it uses part of it.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    dir: tempfile::TempDir,
}

/// A free loopback port (the listener is closed at once; the server binds
/// it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    /// Serves `model_file` as `name` and waits until its gRPC port accepts
    /// connections (MLServer opens it once the model is loaded).
    pub fn start(model_file: &Path, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http) = (free_port(), free_port());
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
            if TcpStream::connect(("127.0.0.1", self.grpc)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.http)).is_ok()
            {
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
