//! [`DeadLetter`]: a request that exhausted its attempts, as the
//! dead-letter queue keeps it and a replay takes it back.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::SystemTime;

use super::handle::AttemptError;
use super::input::SharedInput;
use super::priority::Priority;

/// A request that could not be served.
#[derive(Debug, Clone)]
pub struct DeadLetter<I> {
    /// The request's id (its handle's).
    pub id: u64,
    /// The input, as submitted. Shared because a stuck call that was failed
    /// over may still be reading it; [`SharedInput::into_inner`] takes it
    /// back.
    pub input: SharedInput<I>,
    /// Its priority level.
    pub priority: Priority,
    /// The group it was restricted to, if any.
    pub group: Option<String>,
    /// The tenant it was served for (`None`: the default one); a replay
    /// is served for it again.
    pub tenant: Option<Arc<str>>,
    /// Its affinity key's hash, if it had one; a replay keeps it.
    pub affinity: Option<u64>,
    /// Every attempt's error, in order (the device history).
    pub errors: Vec<AttemptError>,
    /// When it was submitted.
    pub submitted_at: SystemTime,
    /// When it was dead-lettered.
    pub dead_lettered_at: SystemTime,
}
