//! A request whose shape holds more elements than memory (or the limit) is
//! refused at submit without allocating for it: the largest allocation made
//! while it is refused is measured by a counting allocator. Its own test
//! binary, since the allocator is process-wide.
#![cfg(feature = "openvino")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use accelpool::openvino::{library, OpenVinoConfig, OpenVinoFactory, Precision, Tensor};
use accelpool::{GroupConfig, Pool, Refusal, Request};

/// The system allocator, noting the largest allocation the watching
/// thread makes (other threads, such as the runtime's own, are not counted).
struct Largest;

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn watching() -> bool {
    WATCHING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only additions are a thread-local read and an atomic update, which
// neither allocate nor panic.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if watching() {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[test]
fn a_huge_shape_is_refused_without_allocating_for_it() {
    library::load(None, false).expect("the OpenVINO runtime from scripts/setup.sh");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/tiny.onnx");
    let cfg = OpenVinoConfig::new(model, "CPU").precision(Precision::F32);
    let pool = Pool::builder()
        .group(GroupConfig::new("cpu"), OpenVinoFactory::new(&cfg).unwrap())
        .build()
        .unwrap();
    for shape in [[usize::MAX, 2], [1 << 40, 4], [1 << 28, 4]] {
        let request = Request::new(vec![Tensor::f32("x", shape, vec![])]);
        LARGEST.store(0, Ordering::Relaxed);
        WATCHING.set(true);
        let refused = pool.try_submit(request);
        WATCHING.set(false);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            matches!(
                refused.as_ref().map_err(|e| e.refusal()),
                Err(Refusal::Invalid { .. })
            ),
            "{shape:?} is refused"
        );
        // Error messages and bookkeeping only: nothing sized by the shape.
        assert!(
            largest < 4096,
            "{shape:?}: an allocation of {largest} bytes"
        );
    }
}
