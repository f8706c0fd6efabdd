//! The dead-letter queue: requests that exhausted their attempts, kept with
//! their input intact, every attempt's error and their timestamps, to be
//! inspected, drained, or replayed into the pool.
//!
//! It is bounded. When full, the [`OverflowPolicy`] picks which letter is
//! pushed out; that letter is counted and handed to the overflow callback if
//! one is set, never dropped silently.

#![forbid(unsafe_code)]

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::config::{DeadLetterConfig, OverflowPolicy};
use crate::core::{Counter, DeadLetter, DeadLetterStats};

pub(crate) type OverflowHook<I> = Box<dyn Fn(DeadLetter<I>) + Send + Sync>;

/// The bounded dead-letter queue of one pool.
pub struct DeadLetterQueue<I> {
    letters: Mutex<VecDeque<DeadLetter<I>>>,
    config: DeadLetterConfig,
    overflowed: Counter,
    on_overflow: Option<OverflowHook<I>>,
}

impl<I> std::fmt::Debug for DeadLetterQueue<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<I> DeadLetterQueue<I> {
    pub(crate) fn new(config: DeadLetterConfig, on_overflow: Option<OverflowHook<I>>) -> Self {
        Self {
            letters: Mutex::new(VecDeque::new()),
            config,
            overflowed: Counter::default(),
            on_overflow,
        }
    }

    pub(crate) fn push(&self, letter: DeadLetter<I>) {
        let pushed_out = {
            let mut q = self.letters.lock();
            if q.len() < self.config.capacity {
                q.push_back(letter);
                None
            } else {
                match self.config.overflow {
                    OverflowPolicy::DropOldest => {
                        let old = q.pop_front();
                        q.push_back(letter);
                        old
                    }
                    OverflowPolicy::DropNewest => Some(letter),
                }
            }
        };
        if let Some(out) = pushed_out {
            self.overflow(out);
        }
    }

    #[cold]
    fn overflow(&self, letter: DeadLetter<I>) {
        self.overflowed.inc();
        tracing::warn!(
            "dead-letter queue full ({}): request {} pushed out by the {:?} policy",
            self.config.capacity,
            letter.id,
            self.config.overflow
        );
        if let Some(hook) = &self.on_overflow {
            hook(letter);
        }
    }

    /// Letters held now.
    pub fn len(&self) -> usize {
        self.letters.lock().len()
    }

    /// True when no letter is held.
    pub fn is_empty(&self) -> bool {
        self.letters.lock().is_empty()
    }

    /// Calls `f` on each letter held, oldest first, without removing them.
    /// The queue is locked meanwhile: keep `f` short.
    pub fn inspect(&self, mut f: impl FnMut(&DeadLetter<I>)) {
        self.letters.lock().iter().for_each(&mut f);
    }

    /// Removes and returns every letter, oldest first.
    pub fn drain(&self) -> Vec<DeadLetter<I>> {
        self.letters.lock().drain(..).collect()
    }

    /// Size, capacity and overflow count.
    pub fn stats(&self) -> DeadLetterStats {
        DeadLetterStats {
            len: self.len(),
            capacity: self.config.capacity,
            overflowed: self.overflowed.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Priority;
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;
    use std::time::SystemTime;

    fn letter(id: u64) -> DeadLetter<u64> {
        DeadLetter {
            id,
            input: crate::core::SharedInput::new(id * 10),
            priority: Priority::Normal,
            group: None,
            tenant: None,
            affinity: None,
            errors: vec![],
            submitted_at: SystemTime::now(),
            dead_lettered_at: SystemTime::now(),
        }
    }

    #[test]
    fn overflow_policies_count_and_hand_out_the_pushed_out_letter() {
        for (policy, kept, out) in [
            (OverflowPolicy::DropOldest, [2, 3], 1),
            (OverflowPolicy::DropNewest, [1, 2], 3),
        ] {
            let seen = Arc::new(StdMutex::new(vec![]));
            let hook = {
                let seen = seen.clone();
                Box::new(move |l: DeadLetter<u64>| seen.lock().unwrap().push(l.id))
                    as OverflowHook<u64>
            };
            let q = DeadLetterQueue::new(
                DeadLetterConfig {
                    capacity: 2,
                    overflow: policy,
                },
                Some(hook),
            );
            for id in 1..=3 {
                q.push(letter(id));
            }
            let mut ids = vec![];
            q.inspect(|l| ids.push(l.id));
            assert_eq!(ids, kept);
            assert_eq!(*seen.lock().unwrap(), [out]);
            assert_eq!(q.stats().overflowed, 1);
            let drained = q.drain();
            assert_eq!(
                drained.iter().map(|l| *l.input).collect::<Vec<_>>(),
                kept.map(|k| k * 10)
            );
            assert!(q.is_empty());
        }
    }
}
