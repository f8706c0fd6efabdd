//! A runtime whose models' groups name their backend (OpenVINO in
//! process, or a remote fleet), from one YAML file.

#![forbid(unsafe_code)]

use super::{Runtime, RuntimeError};
use crate::config::{PoolConfig, RuntimeConfig};
use crate::pool::PoolBuilder;
use crate::tensor::Tensors;

impl Runtime<Tensors, Tensors> {
    /// Starts every model of `config`, each group's model compiled through
    /// OpenVINO (see [`PoolBuilder::from_openvino_config`]). On an error
    /// the models already started are stopped and the error names the
    /// model.
    ///
    /// ```no_run
    /// use accelpool::{Runtime, RuntimeConfig};
    /// let cfg = RuntimeConfig::from_yaml_file("config/runtime/ppocr.yaml")?;
    /// let rt = Runtime::from_openvino_config(cfg)?;
    /// println!("{:?}", rt.models());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "openvino")]
    pub fn from_openvino_config(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::from_models(
            config,
            PoolBuilder::from_openvino_config,
            |model, source| RuntimeError::OpenVino { model, source },
        )
    }

    /// Starts every model of `config`, each group built from the backend
    /// it names (see [`PoolBuilder::from_backends`]): OpenVINO groups take
    /// cores from the runtime's budget, remote groups (`pin: false`, their
    /// workers are calls in flight) take none. On an error the models
    /// already started are stopped and the error names the model and the
    /// group.
    ///
    /// ```no_run
    /// use accelpool::{Runtime, RuntimeConfig};
    /// let cfg = RuntimeConfig::from_yaml_file("config/runtime/ppocr.yaml")?;
    /// let rt = Runtime::from_backends(cfg)?;
    /// println!("{:?}", rt.models());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_backends(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::from_models(config, PoolBuilder::from_backends, |model, source| {
            RuntimeError::Backend {
                model,
                source: Box::new(source),
            }
        })
    }

    /// Starts each model of `config` from the builder `build` makes of it.
    fn from_models<E>(
        config: RuntimeConfig,
        build: impl Fn(PoolConfig) -> Result<PoolBuilder<Tensors, Tensors>, E>,
        error: impl Fn(String, E) -> RuntimeError,
    ) -> Result<Self, RuntimeError> {
        config.validate()?;
        let rt = Self::with_config(&config)?;
        for (name, pool) in config.models {
            let builder = build(pool).map_err(|e| error(name.clone(), e))?;
            // Dropping `rt` on an error stops the models already started.
            rt.add_model(name, builder)?;
        }
        Ok(rt)
    }
}
