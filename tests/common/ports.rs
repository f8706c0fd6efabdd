//! Loopback ports for the servers the tests start as child processes
//! (MLServer, nginx, Prometheus), which bind them themselves.
//!
//! A port found by binding port 0 and closing the listener is an ephemeral
//! one: until the child binds it, which takes a minute for a server that
//! loads a model on a loaded machine, the kernel may hand it to any other
//! socket (another test's listener on port 0, an outgoing connection's
//! source port). The child then fails to bind it, or the test talks to
//! someone else's server. So a port here is taken below the kernel's
//! ephemeral range, which it never hands out by itself, and reserved with a
//! lock file, which keeps every test process running at once (several test
//! binaries, or several copies of one) from choosing the same port. The
//! reservation lasts until the [`Port`] drops; the lock goes with the
//! process if it dies. The lock files stay (empty, one per port of a small
//! range): deleting one while another process may be opening it would let
//! two processes each hold "the" lock.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::os::fd::AsRawFd;

/// The lowest port handed out.
const LOWEST: u16 = 20_000;

/// How many ports are handed out: far more than the test processes of a
/// run hold at once (tens), and few enough that the lock files left in the
/// temporary directory (one per port ever reserved, empty) stay few.
const SPAN: u16 = 1_000;

/// A loopback port reserved for this test, free when it was reserved.
#[derive(Debug)]
pub struct Port {
    number: u16,
    _lock: File,
}

impl Port {
    /// The port's number.
    pub fn number(&self) -> u16 {
        self.number
    }

    /// `http://127.0.0.1:<port>`: an endpoint nobody serves while the
    /// reservation lasts.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.number)
    }
}

/// Reserves a loopback port nobody listens on, below the ephemeral range,
/// that no other test process holds.
pub fn reserve() -> Port {
    // Below the ephemeral range where it starts high enough (Linux's
    // default starts at 32768); where it starts lower, the locks still keep
    // test processes apart.
    let top = ephemeral_low().clamp(LOWEST + SPAN / 2, LOWEST + SPAN);
    let span = u64::from(top - LOWEST);
    // A random first candidate, so processes starting together rarely
    // contend for the same locks.
    let start = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    for i in 0..span {
        let number = LOWEST + u16::try_from(start.wrapping_add(i) % span).unwrap();
        let Some(lock) = lock(number) else { continue };
        if TcpListener::bind(("127.0.0.1", number)).is_ok() {
            return Port {
                number,
                _lock: lock,
            };
        }
    }
    panic!("no free loopback port between {LOWEST} and {top}");
}

/// The first port of the kernel's ephemeral range (Linux's default when
/// it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The lock of port `number`, if no other holder has it (another process,
/// or another test of this one: locks of two opens of one file exclude
/// each other).
fn lock(number: u16) -> Option<File> {
    let dir = std::env::temp_dir().join("accelpool-test-ports");
    std::fs::create_dir_all(&dir).ok()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(number.to_string()))
        .ok()?;
    // SAFETY: `file` is open for the whole call, so its descriptor is
    // valid; `flock` only takes a lock on it, released when it closes.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    taken.then_some(file)
}
