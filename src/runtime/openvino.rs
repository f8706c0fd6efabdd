//! A runtime whose models run OpenVINO, from one YAML file.

#![forbid(unsafe_code)]

use super::{Runtime, RuntimeError};
use crate::config::RuntimeConfig;
use crate::openvino::Tensors;
use crate::pool::PoolBuilder;

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
    pub fn from_openvino_config(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        config.validate()?;
        let rt = Self::with_config(&config)?;
        for (name, pool) in config.models {
            let builder = PoolBuilder::from_openvino_config(pool).map_err(|source| {
                RuntimeError::OpenVino {
                    model: name.clone(),
                    source,
                }
            })?;
            // Dropping `rt` on an error stops the models already started.
            rt.add_model(name, builder)?;
        }
        Ok(rt)
    }
}
