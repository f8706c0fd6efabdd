//! Request priorities.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// How urgent a request is. Workers always take the highest non-empty level
/// first (strict priority), and each level has its own bounded queue, so a
/// full `Low` queue never blocks `Urgent` work.
///
/// ```
/// use accelpool::Priority;
/// assert!(Priority::Urgent > Priority::Low);
/// assert_eq!(Priority::ALL[0], Priority::Urgent);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Background work: taken only when nothing else waits.
    Low,
    /// The default level.
    #[default]
    Normal,
    /// Interactive work.
    High,
    /// Latency-critical work: always taken first.
    Urgent,
}

impl Priority {
    /// Number of levels.
    pub const COUNT: usize = 4;

    /// All levels, highest first (the order a worker looks at its queues).
    pub const ALL: [Priority; Priority::COUNT] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    /// Index of this level in [`Priority::ALL`] (0 = `Urgent`).
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            Priority::Urgent => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
        }
    }

    /// Lower-case name, as written in configuration and stats.
    pub const fn name(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Queue capacity for each priority level of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelCapacity {
    /// `Urgent` queue capacity.
    pub urgent: usize,
    /// `High` queue capacity.
    pub high: usize,
    /// `Normal` queue capacity.
    pub normal: usize,
    /// `Low` queue capacity.
    pub low: usize,
}

impl LevelCapacity {
    /// The same capacity at every level.
    pub const fn uniform(n: usize) -> Self {
        Self {
            urgent: n,
            high: n,
            normal: n,
            low: n,
        }
    }

    /// Capacity of every level together.
    pub(crate) fn total(&self) -> usize {
        Priority::ALL
            .iter()
            .fold(0usize, |n, &p| n.saturating_add(self.of(p)))
    }

    /// Capacity of one level.
    pub const fn of(&self, p: Priority) -> usize {
        match p {
            Priority::Urgent => self.urgent,
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }
}

impl Default for LevelCapacity {
    fn default() -> Self {
        Self::uniform(256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all_order() {
        for (i, p) in Priority::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
        assert!(Priority::Urgent > Priority::High);
        assert!(Priority::Normal > Priority::Low);
    }
}
