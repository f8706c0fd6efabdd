//! Building a pool whose groups name their backend in the configuration,
//! OpenVINO in process or a remote fleet: the pool layer wires each
//! backend's factory to its group.

#![forbid(unsafe_code)]

use super::PoolBuilder;
use crate::config::PoolConfig;
#[cfg(feature = "openvino")]
use crate::openvino::{OpenVinoError, OpenVinoFactory};
#[cfg(feature = "remote")]
use crate::remote::{RemoteError, RemoteFactory};
use crate::tensor::Tensors;

/// Why a group's backend could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// An OpenVINO group's model or device.
    #[cfg(feature = "openvino")]
    #[error("group `{group}`: {source}")]
    OpenVino {
        /// The group.
        group: String,
        /// What failed.
        source: OpenVinoError,
    },
    /// A remote group's servers or model.
    #[cfg(feature = "remote")]
    #[error("group `{group}`: {source}")]
    Remote {
        /// The group.
        group: String,
        /// What failed.
        source: RemoteError,
    },
}

impl PoolBuilder<Tensors, Tensors> {
    /// A builder for a configuration whose groups name their backend:
    /// each OpenVINO group's model is compiled now, and each remote group
    /// reads its model's metadata from its servers. An optional group whose
    /// device is absent, or whose servers all fail to answer, is left out
    /// of the pool (logged). Groups without a backend still need a factory
    /// from [`PoolBuilder::factory`].
    ///
    /// ```no_run
    /// use accelpool::{PoolBuilder, PoolConfig};
    /// let cfg = PoolConfig::from_yaml_file("config/npu_cpu_remote.yaml")?;
    /// let pool = PoolBuilder::from_backends(cfg)?.build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_backends(mut config: PoolConfig) -> Result<Self, BackendError> {
        // Each built factory, as the step that adds it to the builder.
        let mut factories: Vec<Box<dyn FnOnce(Self) -> Self>> = Vec::new();
        let mut kept = Vec::new();
        for group in std::mem::take(&mut config.groups) {
            let name = group.name.clone();
            let Some(backend) = &group.backend else {
                kept.push(group);
                continue;
            };
            #[cfg(feature = "openvino")]
            if let Some(ov) = &backend.openvino {
                match OpenVinoFactory::new(ov) {
                    Ok(f) => {
                        factories.push(Box::new(move |b: Self| b.factory(name, f)));
                        kept.push(group);
                    }
                    Err(e) if e.is_device_absent() && ov.optional => {
                        tracing::warn!("group `{name}` skipped: {e}");
                    }
                    Err(source) => {
                        return Err(BackendError::OpenVino {
                            group: name,
                            source,
                        })
                    }
                }
                continue;
            }
            #[cfg(feature = "remote")]
            if let Some(r) = &backend.remote {
                match RemoteFactory::new(r) {
                    Ok(f) => {
                        factories.push(Box::new(move |b: Self| b.factory(name, f)));
                        kept.push(group);
                    }
                    Err(e) if e.is_unreachable() && r.optional => {
                        tracing::warn!("group `{name}` skipped: {e}");
                    }
                    Err(source) => {
                        return Err(BackendError::Remote {
                            group: name,
                            source,
                        })
                    }
                }
                continue;
            }
            kept.push(group);
        }
        config.groups = kept;
        let mut builder = Self::from_config(config);
        for add in factories {
            builder = add(builder);
        }
        Ok(builder)
    }
}
