//! A moving average of durations that one thread updates and any thread
//! reads: a relaxed load and store, no read-modify-write.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// An exponentially weighted moving average in nanoseconds, weight 1/8 per
/// new sample. Zero until the first sample. Concurrent writers may lose a
/// sample to each other, which an average can afford; nothing waits.
///
/// In a cache line of its own: a worker writes it after every call, and
/// it must not share a line with what submitters read on every request.
#[derive(Debug, Default)]
pub(crate) struct Ewma(CachePadded<AtomicU64>);

impl Ewma {
    /// Folds in one sample.
    #[inline]
    pub(crate) fn note(&self, nanos: u64) {
        let avg = self.0.load(Ordering::Relaxed);
        let next = if avg == 0 {
            nanos
        } else {
            avg - avg / 8 + nanos / 8
        };
        self.0.store(next, Ordering::Relaxed);
    }

    /// The average (0 before any sample).
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::Ewma;

    #[test]
    fn starts_at_the_first_sample_and_moves_an_eighth_per_sample() {
        let e = Ewma::default();
        assert_eq!(e.get(), 0);
        e.note(800);
        assert_eq!(e.get(), 800);
        e.note(1600);
        assert_eq!(e.get(), 900);
        for _ in 0..200 {
            e.note(1600);
        }
        assert!((1590..=1600).contains(&e.get()), "{}", e.get());
    }
}
