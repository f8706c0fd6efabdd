//! Request spans for `tracing` subscribers (feature `request-spans`): one
//! `accelpool.request` span per request, opened at submit inside the
//! caller's current span, with an `accelpool.queue` child for each wait in
//! a queue, an `accelpool.run` span per session call (group, worker,
//! attempt, batch size) and an `outcome` event when it resolves. Without the
//! feature every function here is an empty inline one on zero-sized types,
//! so the hot path pays nothing.

#![forbid(unsafe_code)]

use super::handle::Status;
use super::priority::Priority;

#[cfg(feature = "request-spans")]
mod on {
    use super::{Priority, Status};

    /// A request's own span.
    pub(crate) type RequestSpan = tracing::Span;
    /// The span of one wait in a queue, closed when a worker takes it.
    /// Boxed, and only when a subscriber wants it, so a job stays small.
    pub(crate) type QueueSpan = Option<Box<tracing::Span>>;
    /// An entered run span.
    pub(crate) type RunGuard = tracing::span::EnteredSpan;

    /// Opens the span of a request just admitted (id and priority; the
    /// caller's current span is its parent).
    #[inline]
    pub(crate) fn request(id: u64, priority: Priority) -> RequestSpan {
        tracing::info_span!("accelpool.request", id, priority = %priority)
    }

    /// Opens a queue-wait span under `request`.
    #[inline]
    pub(crate) fn queue(request: &RequestSpan) -> QueueSpan {
        let span = tracing::debug_span!(parent: request, "accelpool.queue");
        (!span.is_disabled()).then(|| Box::new(span))
    }

    /// No queue span: the wait is over.
    #[inline]
    pub(crate) fn no_queue() -> QueueSpan {
        None
    }

    /// Enters the span of one session call over `requests` (all of one
    /// batch): the parent is the first request's span, the others follow
    /// from it.
    #[inline]
    pub(crate) fn run<'a>(
        group: &str,
        worker: usize,
        attempt: u32,
        mut requests: impl Iterator<Item = &'a RequestSpan>,
        batch: usize,
    ) -> RunGuard {
        let first = requests.next().cloned().unwrap_or_else(tracing::Span::none);
        let span = tracing::info_span!(
            parent: &first,
            "accelpool.run",
            group,
            worker,
            attempt,
            batch
        );
        for r in requests {
            span.follows_from(r);
        }
        span.entered()
    }

    /// The request's final outcome, as an event in its span.
    #[inline]
    pub(crate) fn outcome(request: &RequestSpan, status: Status) {
        tracing::info!(name: "accelpool.outcome", parent: request, outcome = ?status, "request resolved");
    }
}

#[cfg(not(feature = "request-spans"))]
mod on {
    use super::{Priority, Status};

    /// Nothing: request spans are compiled out.
    #[derive(Clone, Default)]
    pub(crate) struct RequestSpan;
    /// Nothing: request spans are compiled out.
    pub(crate) type QueueSpan = RequestSpan;
    /// Nothing: request spans are compiled out.
    pub(crate) type RunGuard = RequestSpan;

    #[inline(always)]
    pub(crate) fn request(_: u64, _: Priority) -> RequestSpan {
        RequestSpan
    }

    #[inline(always)]
    pub(crate) fn queue(_: &RequestSpan) -> QueueSpan {
        RequestSpan
    }

    #[inline(always)]
    pub(crate) fn no_queue() -> QueueSpan {
        RequestSpan
    }

    #[inline(always)]
    pub(crate) fn run<'a>(
        _: &str,
        _: usize,
        _: u32,
        _: impl Iterator<Item = &'a RequestSpan>,
        _: usize,
    ) -> RunGuard {
        RequestSpan
    }

    #[inline(always)]
    pub(crate) fn outcome(_: &RequestSpan, _: Status) {}
}

pub(crate) use on::*;
