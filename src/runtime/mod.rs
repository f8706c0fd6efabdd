//! Several models over one core budget: a [`Runtime`] hosts named pools
//! (one per model, each with its own device groups, queues and workers),
//! gives each model's pinned workers cores no other model holds, routes a
//! request by model name, adds and removes models while running, and
//! reports stats per model and overall.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::{check_model_name, ConfigError, PoolConfig, RuntimeConfig};
use crate::core::{
    Counter, CountsSnapshot, PoolStats, Refusal, Request, ShutdownReport, SubmitError, TaskHandle,
};
use crate::exec::pinning::CorePlan;
use crate::policy::cores::{self, Allotment};
use crate::pool::{BuildError, Pool, PoolBuilder};

#[cfg(any(feature = "openvino", feature = "remote"))]
mod backends;

/// Why a model could not be added or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A setting is out of range (the field path says which).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The runtime already has a model of that name.
    #[error("a model named `{model}` is already running; remove it first or choose another name")]
    ModelExists {
        /// The name.
        model: String,
    },
    /// The runtime has no model of that name.
    #[error("no model named `{model}`; the runtime has {known}")]
    UnknownModel {
        /// The name given.
        model: String,
        /// The names it has, for the message.
        known: String,
    },
    /// The model's pinned workers need more free cores than the budget has.
    #[error(
        "model `{model}` pins {need} worker(s) but only {free} of the budget's {budget} core(s) \
         are free; remove a model, lower its `workers`, set `pin: false` on a group, widen \
         `cores`, or set `share_cores: true` to let workers share cores"
    )]
    CoreBudget {
        /// The model.
        model: String,
        /// Its pinned workers.
        need: usize,
        /// Cores no model holds.
        free: usize,
        /// Cores in the budget.
        budget: usize,
    },
    /// The model's pool could not start.
    #[error("model `{model}`: {source}")]
    Build {
        /// The model.
        model: String,
        /// Why its pool did not start.
        source: BuildError,
    },
    /// The model's OpenVINO backend could not be set up.
    #[cfg(feature = "openvino")]
    #[error("model `{model}`: {source}")]
    OpenVino {
        /// The model.
        model: String,
        /// The backend's error.
        source: crate::openvino::OpenVinoError,
    },
    /// A group's backend (OpenVINO or remote) could not be set up.
    #[cfg(any(feature = "openvino", feature = "remote"))]
    #[error("model `{model}`: {source}")]
    Backend {
        /// The model.
        model: String,
        /// The group and its backend's error (boxed: it is large, and
        /// every other result of the runtime carries this type).
        source: Box<crate::pool::BackendError>,
    },
}

/// One model's stats.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStats {
    /// The model's name.
    pub name: String,
    /// The cores its pinned workers are on.
    pub cores: Vec<usize>,
    /// Whether a worker of this model shares a core with another worker
    /// (only with `share_cores`).
    pub shares_cores: bool,
    /// Its pool's stats.
    pub stats: PoolStats,
}

/// A runtime's stats: each model's, and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeStats {
    /// The core budget.
    pub budget: Vec<usize>,
    /// Whether workers may share cores.
    pub share_cores: bool,
    /// The models running, by name.
    pub models: Vec<ModelStats>,
    /// Counts over every model the runtime has run, removed ones included:
    /// the accounting identity holds here too.
    pub counts: CountsSnapshot,
    /// Requests refused because they named no model the runtime has.
    pub unknown_model: u64,
}

/// One running model.
struct Model<I: Send + Sync + 'static, O: Send + 'static> {
    pool: Arc<Pool<I, O>>,
    allotment: Allotment,
}

/// The models and who holds which core.
struct Models<I: Send + Sync + 'static, O: Send + 'static> {
    live: BTreeMap<String, Model<I, O>>,
    /// Names whose pool is being built (their cores are reserved).
    starting: BTreeSet<String>,
    /// Workers holding each core of the budget, by position in it.
    held: Vec<usize>,
    /// What removed models counted.
    retired: CountsSnapshot,
}

/// Several named models over one core budget.
///
/// Each model is a [`Pool`]; the runtime gives its pinned workers cores of
/// their own from the budget (every core the process may use, unless
/// given), so two models never pin onto one core unless `share_cores` says
/// they may. Models are added and removed while running; a request names
/// its model.
///
/// ```
/// use accelpool::{GroupConfig, Pool, Request, Runtime, SessionError, WorkerInfo};
/// let rt = Runtime::<u32, u32>::new();
/// let double = |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(x * 2) });
/// rt.add_model("double", Pool::builder().group(GroupConfig::new("cpu").pin(false), double))?;
/// let h = rt.submit("double", Request::new(21)).unwrap();
/// assert_eq!(h.wait()?, 42);
/// assert!(rt.submit("triple", Request::new(1)).is_err());
/// let report = rt.remove_model("double", std::time::Duration::from_secs(5))?;
/// assert!(report.drained);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime<I: Send + Sync + 'static, O: Send + 'static> {
    budget: Vec<usize>,
    share_cores: bool,
    models: Mutex<Models<I, O>>,
    unknown_model: Counter,
}

impl<I: Send + Sync + 'static, O: Send + 'static> Default for Runtime<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

/// A request and the pool of the model it named.
struct Routed<I: Send + Sync + 'static, O: Send + 'static> {
    pool: Arc<Pool<I, O>>,
    request: Request<I>,
}

// A refused request comes back whole inside `SubmitError`, as from a pool.
#[allow(clippy::result_large_err)]
impl<I: Send + Sync + 'static, O: Send + 'static> Runtime<I, O> {
    /// A runtime over every core the process may use, workers never
    /// sharing one.
    pub fn new() -> Self {
        Self::over(CorePlan::available_ids(), false)
    }

    /// A runtime over the budget and sharing rule of `config` (its models
    /// are not started: add them with [`Runtime::add_model`], or use
    /// `Runtime::from_openvino_config`). A core of the budget the process
    /// may not run on is an error naming it.
    pub fn with_config(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let budget = match &config.cores {
            None => CorePlan::available_ids(),
            Some(cores) => {
                crate::config::check_cores("cores", cores)?;
                CorePlan::new(Some(cores)).map_err(|m| ConfigError::new("cores", m))?;
                cores.clone()
            }
        };
        Ok(Self::over(budget, config.share_cores))
    }

    fn over(budget: Vec<usize>, share_cores: bool) -> Self {
        Self {
            models: Mutex::new(Models {
                live: BTreeMap::new(),
                starting: BTreeSet::new(),
                held: vec![0; budget.len()],
                retired: CountsSnapshot::default(),
            }),
            budget,
            share_cores,
            unknown_model: Counter::default(),
        }
    }

    /// Starts a model: gives its pinned workers cores from the budget, then
    /// builds its pool (waiting for its sessions, without blocking other
    /// models' requests). The builder must not set `cores` itself.
    pub fn add_model(
        &self,
        name: impl Into<String>,
        mut builder: PoolBuilder<I, O>,
    ) -> Result<Arc<Pool<I, O>>, RuntimeError> {
        let name = name.into();
        check_model_name(&name)?;
        if builder.config().cores.is_some() {
            return Err(ConfigError::new(
                format!("models.{name}.cores"),
                "a model takes its cores from the runtime's budget; leave `cores` unset",
            )
            .into());
        }
        let allotment = self.reserve(&name, pinned_workers(builder.config()))?;
        if !allotment.cores.is_empty() {
            builder.config_mut().cores = Some(allotment.cores.clone());
        }
        let built = builder.build();
        let mut models = self.models.lock();
        models.starting.remove(&name);
        match built {
            Ok(pool) => {
                let pool = Arc::new(pool);
                if allotment.shared {
                    tracing::info!(
                        "model `{name}`: workers share cores {:?} with other workers",
                        allotment.cores
                    );
                }
                models.live.insert(
                    name,
                    Model {
                        pool: Arc::clone(&pool),
                        allotment,
                    },
                );
                Ok(pool)
            }
            Err(source) => {
                self.release(&mut models, &allotment);
                Err(RuntimeError::Build {
                    model: name,
                    source,
                })
            }
        }
    }

    /// Reserves cores for a model about to start.
    fn reserve(&self, name: &str, need: usize) -> Result<Allotment, RuntimeError> {
        let mut models = self.models.lock();
        if models.live.contains_key(name) || models.starting.contains(name) {
            return Err(RuntimeError::ModelExists {
                model: name.to_owned(),
            });
        }
        let allotment =
            cores::allot(&self.budget, &models.held, need, self.share_cores).map_err(|s| {
                RuntimeError::CoreBudget {
                    model: name.to_owned(),
                    need: s.need,
                    free: s.free,
                    budget: s.budget,
                }
            })?;
        for c in &allotment.cores {
            if let Some(i) = self.budget.iter().position(|b| b == c) {
                models.held[i] += 1;
            }
        }
        models.starting.insert(name.to_owned());
        Ok(allotment)
    }

    fn release(&self, models: &mut Models<I, O>, allotment: &Allotment) {
        for c in &allotment.cores {
            if let Some(i) = self.budget.iter().position(|b| b == c) {
                models.held[i] = models.held[i].saturating_sub(1);
            }
        }
    }

    /// Stops a model and frees its cores. New requests for it are refused
    /// at once; its queued requests run until `timeout`, then are
    /// cancelled (every accepted request still ends exactly once: see
    /// [`Pool::shutdown`]). Returns its shutdown report.
    pub fn remove_model(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ShutdownReport, RuntimeError> {
        let model = {
            let mut models = self.models.lock();
            match models.live.remove(name) {
                Some(m) => m,
                None => return Err(self.unknown(&models, name)),
            }
        };
        let report = model.pool.shutdown(timeout);
        let mut models = self.models.lock();
        self.release(&mut models, &model.allotment);
        models.retired += report.stats.counts;
        Ok(report)
    }

    fn unknown(&self, models: &Models<I, O>, name: &str) -> RuntimeError {
        let known = if models.live.is_empty() {
            "none".to_owned()
        } else {
            models
                .live
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        RuntimeError::UnknownModel {
            model: name.to_owned(),
            known,
        }
    }

    /// The pool of a running model.
    pub fn model(&self, name: &str) -> Option<Arc<Pool<I, O>>> {
        self.models
            .lock()
            .live
            .get(name)
            .map(|m| Arc::clone(&m.pool))
    }

    /// The running models' names, sorted.
    pub fn models(&self) -> Vec<String> {
        self.models.lock().live.keys().cloned().collect()
    }

    /// The pool for `model`, or the request back refused as
    /// [`Refusal::UnknownModel`].
    fn route(&self, model: &str, request: Request<I>) -> Result<Routed<I, O>, SubmitError<I>> {
        match self.model(model) {
            Some(pool) => Ok(Routed { pool, request }),
            None => {
                self.unknown_model.inc();
                let refusal = Refusal::UnknownModel {
                    model: model.to_owned(),
                };
                Err(SubmitError::new(request, refusal))
            }
        }
    }

    /// [`Pool::try_submit`] to the model named `model`.
    pub fn try_submit(
        &self,
        model: &str,
        request: Request<I>,
    ) -> Result<TaskHandle<O>, SubmitError<I>> {
        let r = self.route(model, request)?;
        r.pool.try_submit(r.request)
    }

    /// [`Pool::submit`] to the model named `model`.
    pub fn submit(
        &self,
        model: &str,
        request: Request<I>,
    ) -> Result<TaskHandle<O>, SubmitError<I>> {
        let r = self.route(model, request)?;
        r.pool.submit(r.request)
    }

    /// [`Pool::submit_timeout`] to the model named `model`.
    pub fn submit_timeout(
        &self,
        model: &str,
        request: Request<I>,
        timeout: Duration,
    ) -> Result<TaskHandle<O>, SubmitError<I>> {
        let r = self.route(model, request)?;
        r.pool.submit_timeout(r.request, timeout)
    }

    /// Every model's stats, and counts over all models run so far.
    pub fn stats(&self) -> RuntimeStats {
        let (live, retired): (Vec<_>, _) = {
            let models = self.models.lock();
            let live = models
                .live
                .iter()
                .map(|(n, m)| (n.clone(), Arc::clone(&m.pool), m.allotment.clone()))
                .collect();
            (live, models.retired)
        };
        let mut counts = retired;
        let models: Vec<ModelStats> = live
            .into_iter()
            .map(|(name, pool, allotment)| {
                let stats = pool.stats();
                counts += stats.counts;
                ModelStats {
                    name,
                    cores: allotment.cores,
                    shares_cores: allotment.shared,
                    stats,
                }
            })
            .collect();
        RuntimeStats {
            budget: self.budget.clone(),
            share_cores: self.share_cores,
            models,
            counts,
            unknown_model: self.unknown_model.get(),
        }
    }

    /// Removes every model (see [`Runtime::remove_model`]); their reports
    /// by name.
    pub fn shutdown(&self, timeout: Duration) -> BTreeMap<String, ShutdownReport> {
        let deadline = crate::core::checked_deadline(timeout);
        self.models()
            .into_iter()
            .filter_map(|name| {
                let left = deadline.map_or(timeout, |d| {
                    d.saturating_duration_since(std::time::Instant::now())
                });
                self.remove_model(&name, left).ok().map(|r| (name, r))
            })
            .collect()
    }
}

/// Workers of a pool's configuration that pin a core.
fn pinned_workers(config: &PoolConfig) -> usize {
    config
        .groups
        .iter()
        .filter(|g| g.pin)
        .map(|g| g.workers)
        .sum()
}

impl<I: Send + Sync + 'static, O: Send + 'static> std::fmt::Debug for Runtime<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("budget", &self.budget)
            .field(
                "models",
                &self.models.lock().live.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}
