//! Memory pressure, driven by a manual probe: workers park (dropping their
//! sessions) above the high watermark, lowest-priority groups first, and
//! wake (rebuilding them) below the low one; readings in between change
//! nothing; low priorities are refused meanwhile; nothing is lost.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accelpool::{
    GroupConfig, ManualProbe, MemoryConfig, MemoryProbe, Pool, PoolStats, PressureAction,
    PressureEvent, PressureLevel, Priority, Refusal, Request, RunContext, Session, SessionError,
    SysinfoProbe, WorkerInfo,
};
use common::{assert_accounting, stats_until, Count, LONG};

struct Tracked {
    drops: Count,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.inc();
    }
}

impl Session<u32, u32> for Tracked {
    fn run(&mut self, x: &u32, _: &RunContext<'_>) -> Result<u32, SessionError> {
        Ok(x + 1)
    }
}

fn sampled(pool: &Pool<u32, u32>, probe: &ManualProbe) -> PoolStats {
    let want = probe.sample().unwrap();
    stats_until(pool, "the supervisor to read the new sample", |s| {
        s.memory.last_sample == Some(want)
    })
}

#[test]
fn workers_park_and_wake_with_hysteresis_and_nothing_is_lost() {
    let probe = ManualProbe::new(8 << 30);
    probe.set_fraction(0.5);
    let builds = Count::default();
    let drops = Count::default();
    let (events_tx, events) = crossbeam_channel::unbounded::<PressureEvent>();
    let factory = |builds: Count, drops: Count| {
        move |_: &WorkerInfo| {
            builds.inc();
            Ok(Tracked {
                drops: drops.clone(),
            })
        }
    };
    let pool = Arc::new(
        Pool::builder()
            .memory(MemoryConfig {
                enabled: true,
                high_watermark: 0.9,
                low_watermark: 0.7,
                sample_interval: Duration::from_millis(1),
                refuse_below: Some(Priority::Normal),
            })
            .memory_probe(Arc::new(probe.clone()))
            .on_pressure(move |e| events_tx.send(e.clone()).unwrap())
            .group(
                GroupConfig::new("npu")
                    .priority(9)
                    .workers(2)
                    .min_workers(1),
                factory(builds.clone(), drops.clone()),
            )
            .group(
                GroupConfig::new("cpu")
                    .priority(1)
                    .workers(2)
                    .min_workers(1),
                factory(builds.clone(), drops.clone()),
            )
            .build()
            .unwrap(),
    );
    assert_eq!(builds.get(), 4);

    // Traffic through every phase; it must all complete.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut done = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let h = pool
                    .submit(Request::new(done).priority(Priority::High))
                    .unwrap();
                assert_eq!(h.wait().unwrap(), done + 1);
                done += 1;
            }
            done
        })
    };

    // High: park down to the minimum, lowest-priority group first.
    probe.set_fraction(0.95);
    let e = events.recv_timeout(LONG).unwrap();
    assert_eq!(e.level, PressureLevel::High);
    assert_eq!(
        e.action,
        PressureAction::Parked(vec![("cpu".into(), 1), ("npu".into(), 1)])
    );
    let s = stats_until(&pool, "two workers parked", |s| {
        s.memory.parked_workers == 2
    });
    assert_eq!(drops.get(), 2, "parked workers dropped their sessions");
    assert_eq!(
        s.groups
            .iter()
            .map(|g| g.active_workers)
            .collect::<Vec<_>>(),
        [1, 1]
    );
    assert_eq!(s.memory.refusing_below, Some(Priority::Normal));
    // Low priorities are refused and handed back; others still run.
    let err = pool
        .try_submit(Request::new(7).priority(Priority::Low))
        .unwrap_err();
    assert!(
        matches!(err.refusal(), Refusal::MemoryPressure { .. }),
        "{err}"
    );
    assert_eq!(err.into_request().into_input(), 7);
    assert_eq!(
        pool.submit(Request::new(1).priority(Priority::Normal))
            .unwrap()
            .wait()
            .unwrap(),
        2
    );

    // Flapping between the watermarks changes nothing.
    for f in [0.8, 0.89, 0.71, 0.85] {
        probe.set_fraction(f);
        let s = sampled(&pool, &probe);
        assert_eq!(s.memory.level, PressureLevel::High, "at {f}");
        assert_eq!(s.memory.parked_workers, 2);
    }
    assert!(
        events.try_recv().is_err(),
        "no transition between the watermarks"
    );

    // Low: wake them; they rebuild their sessions.
    probe.set_fraction(0.6);
    let e = events.recv_timeout(LONG).unwrap();
    assert_eq!(e.level, PressureLevel::Normal);
    assert_eq!(
        e.action,
        PressureAction::Woken(vec![("npu".into(), 1), ("cpu".into(), 1)])
    );
    stats_until(&pool, "workers woken", |s| {
        s.memory.parked_workers == 0 && s.groups.iter().all(|g| g.active_workers == 2)
    });
    assert_eq!(builds.get(), 6, "two sessions rebuilt");
    assert!(pool
        .try_submit(Request::new(3).priority(Priority::Low))
        .is_ok());

    // Flapping across both watermarks: each crossing is one transition.
    for (f, level) in [
        (0.95, PressureLevel::High),
        (0.8, PressureLevel::High),
        (0.5, PressureLevel::Normal),
    ] {
        probe.set_fraction(f);
        sampled(&pool, &probe);
        assert_eq!(pool.stats().memory.level, level);
    }
    assert_eq!(events.try_iter().count(), 2);

    stop.store(true, Ordering::Relaxed);
    let done = traffic.join().unwrap();
    assert!(done > 0);
    let report = pool.shutdown(LONG);
    assert_eq!(report.stats.memory.transitions, 4);
    assert_accounting(&report.stats);
}

#[test]
fn sysinfo_probe_reads_this_machine_sensibly() {
    let s = SysinfoProbe::new().sample().unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let host_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let host = host_kib * 1024;
    assert!(
        s.limit > 0 && s.limit <= host,
        "limit {} vs host {host}",
        s.limit
    );
    assert!(
        s.used > 0 && s.used <= s.limit,
        "used {} of {}",
        s.used,
        s.limit
    );
    // A container's limit, when set below the host's memory, is the one used.
    if let Some(cg) = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&cg| cg < host)
    {
        assert_eq!(s.limit, cg, "the cgroup limit applies");
    }
}
