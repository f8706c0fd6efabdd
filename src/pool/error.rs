//! Why a pool could not start (or reload).

#![forbid(unsafe_code)]

use crate::config::ConfigError;
use crate::core::SessionError;

/// Why a pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A group was configured without a session factory, or the other way round.
    #[error("group `{group}`: {message}")]
    Group {
        /// The group.
        group: String,
        /// What is wrong.
        message: String,
    },
    /// A worker could not build its first session.
    #[error("group `{group}` worker {worker}: could not build its session: {error}")]
    Session {
        /// The group.
        group: String,
        /// The worker index within the group.
        worker: usize,
        /// The factory's error.
        error: SessionError,
    },
    /// A thread could not be spawned.
    #[error("could not spawn a thread: {0}")]
    Spawn(#[from] std::io::Error),
}
