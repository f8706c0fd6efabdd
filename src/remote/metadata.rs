//! The model as the servers describe it: its inputs (so requests are
//! checked at submit, as for an OpenVINO group) and its outputs' names,
//! read once when the group is built, from the first server that answers.

#![forbid(unsafe_code)]

use std::time::Duration;

use super::endpoint::Client;
use super::factory::Remote;
use super::proto::ModelMetadataRequest;
use super::{wire, RemoteError};
use crate::tensor::{ElementType, InputShape};

/// One model input as the servers' metadata gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteInput {
    /// The input's name.
    pub name: String,
    /// The element type a request gives.
    pub element: ElementType,
    /// Each dimension: `Some(n)` fixed, `None` any size (`-1`).
    pub dims: Vec<Option<usize>>,
}

impl InputShape for RemoteInput {
    fn name(&self) -> &str {
        &self.name
    }

    fn element(&self) -> ElementType {
        self.element
    }

    fn dims(&self) -> &[Option<usize>] {
        &self.dims
    }
}

impl Remote {
    /// The model's inputs and output names, from the first endpoint that
    /// answers.
    pub(super) fn metadata(
        &self,
        timeout: Duration,
    ) -> Result<(Vec<RemoteInput>, Vec<String>), RemoteError> {
        let mut reasons = Vec::new();
        let mut all_tls = true;
        for e in &self.endpoints {
            let answer = match &e.client {
                Client::Grpc(c) => {
                    let req = ModelMetadataRequest {
                        name: self.model.clone(),
                        version: self.version.clone(),
                    };
                    let mut c = c.clone();
                    self.block_on(timeout, c.model_metadata(self.request(req, timeout)))
                }
                Client::Rest(r) => r.metadata(&self.model_path, &self.rest_call(timeout)),
            };
            match answer {
                Ok(m) => {
                    let bad = |reason: String| RemoteError::Metadata {
                        model: self.model.clone(),
                        reason,
                    };
                    let inputs = m
                        .inputs
                        .into_iter()
                        .map(|t| {
                            let element = wire::element(&t.datatype).ok_or_else(|| {
                                bad(format!(
                                    "input `{}` has datatype `{}`, which the group does not send",
                                    t.name, t.datatype
                                ))
                            })?;
                            let dims = t
                                .shape
                                .iter()
                                .map(|&d| match d {
                                    -1 => Ok(None),
                                    d => usize::try_from(d).map(Some).map_err(|_| {
                                        bad(format!("input `{}` has shape {:?}", t.name, t.shape))
                                    }),
                                })
                                .collect::<Result<_, _>>()?;
                            Ok(RemoteInput {
                                name: t.name,
                                element,
                                dims,
                            })
                        })
                        .collect::<Result<Vec<_>, RemoteError>>()?;
                    if inputs.is_empty() {
                        return Err(bad("the servers describe no inputs".into()));
                    }
                    e.back_in_service();
                    return Ok((inputs, m.outputs.into_iter().map(|t| t.name).collect()));
                }
                // The server answered: the model is not there, or not as asked.
                Err(err @ RemoteError::Status { .. }) if !err.is_endpoint_fault() => {
                    return Err(RemoteError::Metadata {
                        model: self.model.clone(),
                        reason: format!("{}: {err}", e.url),
                    })
                }
                Err(RemoteError::Tls(why)) => reasons.push(format!("{}: {why}", e.url)),
                Err(err) => {
                    all_tls = false;
                    reasons.push(format!("{}: {err}", e.url));
                }
            }
        }
        // Every server refused by its certificate: a setting to fix, not
        // servers that are down.
        if all_tls {
            return Err(RemoteError::Tls(reasons.join("; ")));
        }
        Err(RemoteError::Unreachable(reasons.join("; ")))
    }
}
