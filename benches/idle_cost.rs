//! Idle cost: CPU time an idle pool uses once its workers' spin windows have
//! passed, over several seconds, as a share of one core. The supervisor's
//! health checks are the only expected work.
//!
//!     cargo bench --bench idle_cost
//!
//! Writes `bench-results/idle_cost.json`.

mod common;

use std::time::Duration;

use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};
use serde_json::json;

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass, which is plain data
    // and zero-initialised is a valid value for it.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spin = Duration::from_micros(50);
    let pool = Pool::<u64, u64>::builder()
        .group(
            GroupConfig::new("cpu")
                .workers(workers)
                .spin_before_park(spin),
            |_: &WorkerInfo| Ok(|x: &u64| -> Result<u64, SessionError> { Ok(*x) }),
        )
        .build()
        .unwrap();
    for i in 0..1000 {
        pool.submit(Request::new(i)).unwrap().wait().unwrap();
    }
    std::thread::sleep(spin * 100); // well past every spin window
    let window = common::pick(Duration::from_secs(3), Duration::from_secs(10));
    let before = cpu_time();
    std::thread::sleep(window);
    let used = cpu_time() - before;
    let share = used.as_secs_f64() / window.as_secs_f64();
    common::write(
        "idle_cost",
        json!({
            "workers": workers,
            "window_s": window.as_secs_f64(),
            "cpu_used_ms": used.as_secs_f64() * 1e3,
            "share_of_one_core_percent": (share * 100.0 * 1000.0).round() / 1000.0,
            "target_percent": 1.0,
        }),
    );
    drop(pool);
}
