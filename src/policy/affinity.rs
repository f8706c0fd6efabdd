//! Which worker last ran each affinity key, remembered for a bounded number
//! of keys.
//!
//! Two generations of a hash map stand in for a least-recently-used list:
//! keys are written to the recent one; when it holds half the bound it
//! becomes the older one (the previous older one is forgotten) and a new
//! recent one starts; a key found in the older one moves back to the
//! recent one. So a key used within the last `max_keys / 2` distinct keys
//! is always remembered, at most `max_keys` are, and every operation is
//! O(1) — an exact LRU list would cost a linked list per key.

#![forbid(unsafe_code)]

use std::collections::HashMap;

/// Key -> the worker that last ran it, bounded.
#[derive(Debug)]
pub(crate) struct KeyMemory {
    recent: HashMap<u64, u32>,
    older: HashMap<u64, u32>,
    /// Keys the recent generation holds before it turns older.
    half: usize,
}

impl KeyMemory {
    /// Remembers at most `max_keys` keys (at least two).
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            recent: HashMap::new(),
            older: HashMap::new(),
            half: (max_keys / 2).max(1),
        }
    }

    /// The worker that last ran `key`, if it is remembered.
    pub(crate) fn get(&mut self, key: u64) -> Option<usize> {
        if let Some(&w) = self.recent.get(&key) {
            return Some(w as usize);
        }
        let w = self.older.remove(&key)?;
        self.insert(key, w);
        Some(w as usize)
    }

    /// `worker` ran `key` last.
    pub(crate) fn set(&mut self, key: u64, worker: usize) {
        self.older.remove(&key);
        // Worker indices are below `MAX_WORKERS`, far below `u32::MAX`.
        self.insert(key, u32::try_from(worker).unwrap_or(u32::MAX));
    }

    fn insert(&mut self, key: u64, worker: u32) {
        if self.recent.len() >= self.half && !self.recent.contains_key(&key) {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(key, worker);
    }

    /// Keys remembered now.
    pub(crate) fn len(&self) -> usize {
        self.recent.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_worker_of_each_key() {
        let mut m = KeyMemory::new(8);
        assert_eq!(m.get(1), None);
        m.set(1, 0);
        m.set(2, 1);
        m.set(1, 3);
        assert_eq!((m.get(1), m.get(2), m.len()), (Some(3), Some(1), 2));
    }

    #[test]
    fn stays_within_its_bound_and_keeps_the_recently_used_keys() {
        let max = 64;
        let mut m = KeyMemory::new(max);
        for k in 0..10_000u64 {
            m.set(k, (k % 4) as usize);
            // Key 7 is used all along: it is never forgotten.
            if k >= 7 {
                assert_eq!(m.get(7), Some(3), "after key {k}");
            }
            assert!(m.len() <= max, "{} keys after {k}", m.len());
        }
        // The last half-bound of keys is always there; the first are gone.
        for k in 10_000 - (max as u64 / 2) + 1..10_000 {
            assert_eq!(m.get(k), Some((k % 4) as usize));
        }
        assert_eq!(m.get(0), None);
    }
}
