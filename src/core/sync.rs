//! The synchronisation primitives of the protocols the loom models check
//! (the result slot, the admission gate, the ledger's idle wake-up).
//!
//! Normally these are `std`'s atomics and `parking_lot`'s lock and condvar.
//! Built with `RUSTFLAGS="--cfg loom"` they are loom's, so the models in
//! `src/loom_models.rs` explore every interleaving of the real code. One API
//! over both: a condvar waits on `&mut` guard, as `parking_lot`'s does.

#![forbid(unsafe_code)]

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize};

#[cfg(not(loom))]
mod lock {
    use std::time::Instant;

    /// A mutex whose `lock` cannot fail (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(parking_lot::Mutex::new(t))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        /// The value, through `&mut`: no locking, nobody else can hold it.
        #[inline]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }

    /// A condition variable over [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(guard);
        }

        /// True if `deadline` passed.
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }
    }
}

#[cfg(loom)]
mod lock {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// Holds loom's guard in an `Option` so a wait can take it by value.
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_deref().expect("guard held")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_deref_mut().expect("guard held")
        }
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(loom::sync::Mutex::new(t))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().expect("loom mutex")))
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().expect("loom mutex")
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("guard held");
            guard.0 = Some(self.0.wait(g).expect("loom condvar"));
        }

        /// Under loom a deadline never passes: a wait ends only when woken,
        /// so a lost wake-up shows as a deadlock the model reports.
        pub(crate) fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, _: Instant) -> bool {
            self.wait(guard);
            false
        }
    }
}

pub(crate) use lock::{Condvar, Mutex};

/// Waiting in a loop for another thread's write: backs off (spin, then
/// yield); under loom, yields to the model's scheduler on every round.
#[derive(Debug, Default)]
pub(crate) struct SpinWait(#[cfg(not(loom))] crossbeam_utils::Backoff);

impl SpinWait {
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.0.snooze();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}
