//! Building a pool whose groups run OpenVINO: the pool layer wires the
//! backend's factories to the configuration.

#![forbid(unsafe_code)]

use super::PoolBuilder;
use crate::config::{GroupConfig, PoolConfig};
use crate::openvino::{OpenVinoConfig, OpenVinoError, OpenVinoFactory, Tensors};

impl PoolBuilder<Tensors, Tensors> {
    /// A builder for a configuration whose groups name an OpenVINO backend:
    /// each such group's model is compiled now. An optional group whose
    /// device is absent is left out of the pool (logged). Groups without a
    /// backend still need a factory from [`PoolBuilder::factory`].
    ///
    /// ```no_run
    /// use accelpool::{PoolBuilder, PoolConfig};
    /// let cfg = PoolConfig::from_yaml_file("config/npu_cpu_failover.yaml")?;
    /// let pool = PoolBuilder::from_openvino_config(cfg)?.build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_openvino_config(mut config: PoolConfig) -> Result<Self, OpenVinoError> {
        let mut factories = Vec::new();
        let mut kept = Vec::new();
        for group in std::mem::take(&mut config.groups) {
            match group.backend.as_ref().and_then(|b| b.openvino.as_ref()) {
                Some(ov) => match OpenVinoFactory::new(ov) {
                    Ok(f) => {
                        factories.push((group.name.clone(), f));
                        kept.push(group);
                    }
                    Err(e) if e.is_device_absent() && ov.optional => {
                        tracing::warn!("group `{}` skipped: {e}", group.name);
                    }
                    Err(e) => return Err(e),
                },
                None => kept.push(group),
            }
        }
        config.groups = kept;
        let mut builder = Self::from_config(config);
        for (name, f) in factories {
            builder = builder.factory(name, f);
        }
        Ok(builder)
    }

    /// Adds a device group that runs `ov` through OpenVINO. If the device
    /// is absent and `ov.optional` is set, the group is skipped (logged)
    /// and the builder returned unchanged; any other failure is an error.
    pub fn openvino_group(
        self,
        group: GroupConfig,
        ov: &OpenVinoConfig,
    ) -> Result<Self, OpenVinoError> {
        match OpenVinoFactory::new(ov) {
            Ok(f) => Ok(self.group(group, f)),
            Err(e) if e.is_device_absent() && ov.optional => {
                tracing::warn!("group `{}` skipped: {e}", group.name);
                Ok(self)
            }
            Err(e) => Err(e),
        }
    }
}
