//! Heap allocations per request in steady state, counted by a global
//! allocator over every thread of the process (the caller's and the
//! workers'). Its own test binary, since the allocator is process-wide, and
//! one test, so nothing else allocates while it counts.
//!
//! The no-op path is held to a bound: a change that allocates more per
//! request fails here. The OpenVINO path's count is reported (the runtime
//! allocates its output tensors, which is not ours to remove).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use accelpool::{GroupConfig, Pool, Request, SessionError, WorkerInfo};

/// The system allocator, counting allocations and their bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is an atomic increment, which neither allocates nor panics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as it is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations and bytes per request over `n` round trips of `one`.
fn per_request(n: u64, mut one: impl FnMut()) -> (f64, f64) {
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..n {
        one();
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
}

/// What one no-op request may cost in allocations in steady state: none.
/// Its result slot and its input's box are both reused. One request in a
/// hundred may still find the box or slot at the front of its cache held
/// for a moment by the worker that just finished it (then a new one is
/// made, and the cache grows by one); anything done per request would be
/// 1 or more.
const NO_OP_BOUND: f64 = 0.01;

#[test]
fn allocations_per_request_in_steady_state() {
    let pool = Pool::<u64, u64>::builder()
        .group(
            GroupConfig::new("cpu").workers(1).pin(false),
            |_: &WorkerInfo| Ok(|x: &u64| -> Result<u64, SessionError> { Ok(x + 1) }),
        )
        .build()
        .unwrap();
    let round_trip = |x: u64| {
        let h = pool.submit(Request::new(x)).unwrap();
        assert_eq!(h.wait().unwrap(), x + 1);
    };
    // Warm-up: queues, histograms and thread-locals reach their size.
    for x in 0..20_000 {
        round_trip(x);
    }
    let n = 20_000;
    let (allocs, bytes) = per_request(n, || round_trip(7));
    println!("no-op round trip: {allocs:.3} allocations and {bytes:.0} bytes per request");
    assert!(
        allocs <= NO_OP_BOUND,
        "{allocs:.3} allocations per request, above the bound of {NO_OP_BOUND}"
    );

    let stats = pool.shutdown(std::time::Duration::from_secs(30)).stats;
    let c = stats.counts;
    assert_eq!(
        c.accepted,
        c.completed + c.dead_lettered + c.cancelled + c.expired
    );
    assert_eq!(c.completed, 40_000);

    #[cfg(feature = "openvino")]
    openvino_path();
}

/// Reports allocations per request on the real classifier (the runtime's
/// own output tensors and our copy of them included).
#[cfg(feature = "openvino")]
fn openvino_path() {
    use accelpool::openvino::{library, OpenVinoConfig, OpenVinoFactory, Precision, Tensor};
    library::load(None, false).expect("the OpenVINO runtime from scripts/setup.sh");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/tiny.onnx");
    let cfg = OpenVinoConfig::new(model, "CPU").precision(Precision::F32);
    let pool = Pool::builder()
        .group(
            GroupConfig::new("cpu").workers(1).pin(false),
            OpenVinoFactory::new(&cfg).unwrap(),
        )
        .build()
        .unwrap();
    let input = || vec![Tensor::f32("x", [1, 4], vec![1.0, 2.0, 3.0, 4.0])];
    let round_trip = || {
        let h = pool.submit(Request::new(input())).unwrap();
        h.wait().unwrap();
    };
    for _ in 0..500 {
        round_trip();
    }
    let (allocs, bytes) = per_request(2_000, round_trip);
    println!(
        "OpenVINO round trip (tiny model): {allocs:.1} allocations and {bytes:.0} bytes per request, the input's own included"
    );
    let c = pool
        .shutdown(std::time::Duration::from_secs(30))
        .stats
        .counts;
    assert_eq!(c.completed, 2_500);
}
