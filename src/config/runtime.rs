//! A runtime's configuration: several named models, each a pool's
//! configuration, over one core budget.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_cores, parse_yaml, read_yaml_file, ConfigError, PoolConfig};

/// The most models one runtime hosts.
pub const MAX_MODELS: usize = 64;
/// The longest model name.
const MAX_MODEL_NAME: usize = 64;

/// Several models over one core budget, as written in YAML:
///
/// ```yaml
/// cores: [0, 1]          # the budget; default every core the process may use
/// share_cores: false     # refuse to pin two workers on one core
/// models:
///   det:
///     groups:
///       - name: cpu
///         workers: 1
///   rec:
///     groups:
///       - name: cpu
///         workers: 1
/// ```
///
/// Each model is a [`PoolConfig`] without its own `cores`: the runtime
/// gives each model's pinned workers cores of their own from the budget.
///
/// ```
/// use accelpool::RuntimeConfig;
/// let cfg = RuntimeConfig::from_yaml(
///     "models:\n  det:\n    groups:\n      - name: cpu\n  rec:\n    groups:\n      - name: cpu\n",
/// )?;
/// assert_eq!(cfg.models.keys().collect::<Vec<_>>(), ["det", "rec"]);
/// let err = RuntimeConfig::from_yaml("models:\n  det:\n    groups:\n      - name: cpu\n        workers: 0\n")
///     .unwrap_err();
/// assert_eq!(err.field, "models.det.groups[0].workers");
/// # Ok::<(), accelpool::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The core budget: the cores the models' pinned workers go on.
    /// Default: every core the process may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// When the budget has fewer cores than the models' pinned workers:
    /// `false` (default) refuses to start the model that does not fit;
    /// `true` lets workers share cores, which each model's stats say.
    #[serde(default)]
    pub share_cores: bool,
    /// The models by name, 1 to [`MAX_MODELS`].
    #[serde(default)]
    pub models: BTreeMap<String, PoolConfig>,
}

impl RuntimeConfig {
    /// Reads and validates a YAML runtime configuration; the error names
    /// the field path (`models.det.groups[0].workers`).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let cfg: RuntimeConfig = parse_yaml(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a YAML file.
    pub fn from_yaml_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        read_yaml_file(path.as_ref(), Self::from_yaml)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cores) = &self.cores {
            check_cores("cores", cores)?;
        }
        if self.models.is_empty() {
            return Err(ConfigError::new("models", "at least one model is required"));
        }
        if self.models.len() > MAX_MODELS {
            return Err(ConfigError::new(
                "models",
                format!("{} models is outside 1..={MAX_MODELS}", self.models.len()),
            ));
        }
        for (name, pool) in &self.models {
            check_model_name(name)?;
            pool.validate()
                .map_err(|e| ConfigError::new(format!("models.{name}.{}", e.field), e.message))?;
            if pool.cores.is_some() {
                return Err(ConfigError::new(
                    format!("models.{name}.cores"),
                    "a model takes its cores from the runtime's budget: set `cores` at the top \
                     level instead",
                ));
            }
        }
        Ok(())
    }
}

/// A model name: 1 to 64 letters, digits, `_`, `-` or `.` (it appears in
/// logs, metrics labels and thread names).
pub(crate) fn check_model_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_MODEL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            format!("models.{name}"),
            format!(
                "a model name is 1 to {MAX_MODEL_NAME} letters, digits, `_`, `-` or `.`; \
                 `{name}` is not"
            ),
        ))
    }
}
