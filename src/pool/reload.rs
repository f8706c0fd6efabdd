//! [`Pool::reload`]: a new generation takes over from the running one.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::BuildError;
use super::generation::Generation;
use super::persistent::NamedFactory;
use super::Pool;
use crate::config::PoolConfig;
use crate::core::{saturating_add, Job, ReloadReport, SessionError};
use crate::exec::drain::Drain;

impl<I: Send + Sync + 'static, O: Send + 'static> Pool<I, O> {
    /// Applies a new configuration while the pool runs: worker counts,
    /// queue capacities, breakers, retry, memory and scaling settings, and
    /// groups added or removed. Each group keeps its session factory (by
    /// name); a new group needs one from [`Pool::reload_with`].
    ///
    /// How: a new generation of groups, workers and supervisor starts with
    /// the new configuration; once every worker has its session, new
    /// requests go to it. The old generation drains what it holds (up to
    /// `drain_timeout`). What it still holds then:
    ///
    /// - a queued request (or one waiting for a retry) is handed over to
    ///   the new generation and runs once, there;
    /// - a call still running is handed over like a stuck call: the request
    ///   runs again in the new generation and resolves once, with whichever
    ///   call finishes first. The outcome is exactly-once; the session may
    ///   see the request twice (at-least-once execution). Give
    ///   `drain_timeout` more than the longest call to avoid it;
    /// - a request restricted to a group the reload removes
    ///   ([`Request::group`](crate::Request::group)) is never run elsewhere:
    ///   it is dead-lettered with an error naming the group.
    ///
    /// [`ReloadReport`] counts each. Every accepted request still resolves
    /// exactly once, and the pool-wide counters carry on, monotonic across
    /// reloads (group counters start again with the new groups). An invalid
    /// configuration, a missing factory or a failed session build leaves the
    /// running pool untouched and returns the error.
    pub fn reload(
        &self,
        config: PoolConfig,
        drain_timeout: Duration,
    ) -> Result<ReloadReport, BuildError> {
        self.reload_with(config, Vec::new(), drain_timeout)
    }

    /// [`Pool::reload`] with factories for groups the pool does not have yet
    /// (or to replace a group's factory).
    pub fn reload_with(
        &self,
        config: PoolConfig,
        factories: Vec<NamedFactory<I, O>>,
        drain_timeout: Duration,
    ) -> Result<ReloadReport, BuildError> {
        let started = Instant::now();
        config.validate()?;
        let life = self.lifecycle.lock();
        let old = self.current.load_full();
        if life.is_some() || old.gate().is_closed() {
            return Err(BuildError::Group {
                group: String::new(),
                message: "the pool is shut down; build a new one".into(),
            });
        }
        let mut chosen = factories;
        for (name, f) in self.persistent.factories() {
            let wanted = config.groups.iter().any(|g| g.name == name);
            if wanted && !chosen.iter().any(|(n, _)| *n == name) {
                chosen.push((name, f));
            }
        }
        let names = |g: &Generation<I, O>| -> Vec<String> {
            g.groups()
                .groups()
                .iter()
                .map(|g| g.name().to_string())
                .collect()
        };
        let before = names(&old);
        let fresh = Generation::start(config, chosen, &self.persistent)?;
        let after = names(&fresh);
        // From here on, submitters use the new generation. The old one is
        // listed as draining in the same step, so a stats snapshot counts
        // its workers exactly once.
        {
            let mut history = self.persistent.history();
            history.draining(Arc::clone(&old));
            self.current.store(Arc::clone(&fresh));
        }
        drop(life);
        let dead_lettered = Cell::new(0);
        let stopped = old.stop(
            saturating_add(Instant::now(), drain_timeout),
            Drain::Generation,
            &mut |job| {
                let handed = adopt(&fresh, job, &old);
                if !handed {
                    dead_lettered.set(dead_lettered.get() + 1);
                }
                handed
            },
        );
        self.persistent.history().retire(&old);
        let only_in = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|n| !b.contains(n)).cloned().collect()
        };
        Ok(ReloadReport {
            added: only_in(&after, &before),
            removed: only_in(&before, &after),
            kept: after
                .iter()
                .filter(|n| before.contains(n))
                .cloned()
                .collect(),
            drained: stopped.drained,
            handed_over: stopped.leftover_queued,
            handed_over_running: stopped.leftover_running,
            dead_lettered: dead_lettered.get(),
            elapsed: started.elapsed(),
        })
    }
}

/// Takes a request from an older generation (a reload's hand-over): its
/// group restriction is carried over by name, and the supervisor routes it
/// like a retry that is due now. A request restricted to a group the reload
/// removed runs nowhere else: it is dead-lettered with an error naming the
/// group (its letter keeps the restriction, so a replay once the group is
/// back runs it there).
///
/// True if handed over, false if dead-lettered.
fn adopt<I: Send + Sync + 'static, O: Send + 'static>(
    new: &Generation<I, O>,
    mut job: Job<I, O>,
    old: &Generation<I, O>,
) -> bool {
    job.slot().requeue(); // a call given up on mid-run goes back to Queued
    if let Some(g) = job.only_group() {
        let name = old.groups().groups()[g].name();
        match new.groups().group_index(name) {
            Some(g) => job.restrict_to(Some(g)),
            None => {
                job.restrict_to(None);
                job.note_error(
                    Arc::clone(name),
                    SessionError::permanent(format!(
                        "group `{name}` was removed by a reload while this request, \
                         which may run only there, was still queued or running; it was \
                         not run elsewhere (replay it once the group is back)"
                    )),
                );
                new.retries()
                    .dead_letter_as(job, Some(name.to_string()), || ());
                return false;
            }
        }
    }
    job.forget_failed_groups();
    job.set_probe(false);
    new.retries().schedule(Instant::now(), job);
    true
}
