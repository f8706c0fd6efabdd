//! The protocol's REST binding (`protocol: rest`), for servers or proxies
//! that do not pass gRPC: the same health, metadata and inference calls as
//! JSON over HTTP/1.1, sent by a blocking client (`ureq`) from the worker
//! thread itself (a health poll runs it on the I/O runtime's blocking
//! pool). Tensors travel as JSON numbers (the protocol's base form; its
//! binary extension is not assumed of a server), so gRPC stays the fast
//! path. Answers become the gRPC binding's messages, so one reader checks
//! both (`wire::outputs`, the metadata reader).

#![forbid(unsafe_code)]

use std::time::Duration;

use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::proto::model_infer_response::InferOutputTensor;
use super::proto::model_metadata_response::TensorMetadata;
use super::proto::{InferTensorContents, ModelInferResponse, ModelMetadataResponse};
use super::{tls_explained, RemoteError};
use crate::tensor::{ElementType, Tensor};

/// The longest error text kept from a server's answer.
const MAX_MESSAGE_CHARS: usize = 512;

/// One server's REST client.
pub(crate) struct Rest {
    agent: ureq::Agent,
    /// `http[s]://host:port`, no trailing slash.
    base: String,
    /// Bounds every answer read.
    max_bytes: u64,
}

/// What a call sends besides its body.
pub(crate) struct Call<'a> {
    pub(crate) headers: &'a [(String, String)],
    pub(crate) timeout: Duration,
}

impl Call<'_> {
    /// `req` with the call's headers and timeout.
    fn prepare<B>(&self, mut req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        for (k, v) in self.headers {
            req = req.header(k, v);
        }
        req.config().timeout_global(Some(self.timeout)).build()
    }
}

impl Rest {
    /// A client of the server at `url`, trusting `roots` for `https://`.
    pub(crate) fn new(
        url: &str,
        connect_timeout: Duration,
        max_bytes: usize,
        roots: Option<&[ureq::tls::Certificate<'static>]>,
    ) -> Self {
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            // A status is an answer to read, not an error.
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("accelpool/", env!("CARGO_PKG_VERSION")));
        if let Some(roots) = roots {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(roots))
                    .build(),
            );
        }
        Self {
            agent: config.build().into(),
            base: url.trim_end_matches('/').to_owned(),
            max_bytes: max_bytes as u64,
        }
    }

    /// `GET base/path`: the status and the body.
    fn get(&self, path: &str, call: &Call<'_>) -> Result<(u16, Vec<u8>), RemoteError> {
        let req = self.agent.get(format!("{}{path}", self.base));
        self.read(call.prepare(req).call(), call.timeout)
    }

    fn read(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), RemoteError> {
        let mut resp = resp.map_err(|e| from_ureq(e, timeout))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.max_bytes)
            .read_to_vec()
            .map_err(|e| from_ureq(e, timeout))?;
        Ok((status, body))
    }

    /// The server's answer to a health call: `Ok(true)` on 200.
    pub(crate) fn healthy(&self, path: &str, call: &Call<'_>) -> Result<bool, RemoteError> {
        Ok(self.get(path, call)?.0 == 200)
    }

    /// The metadata of the model at `model` ([`model_path`]).
    pub(crate) fn metadata(
        &self,
        model: &str,
        call: &Call<'_>,
    ) -> Result<ModelMetadataResponse, RemoteError> {
        let (status, body) = self.get(&format!("/v2/models/{model}"), call)?;
        let m: Metadata = answer(status, &body)?;
        let tensors = |list: Vec<TensorJson>| {
            list.into_iter()
                .map(|t| TensorMetadata {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    parameters: Default::default(),
                })
                .collect()
        };
        Ok(ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: tensors(m.inputs),
            outputs: tensors(m.outputs),
            parameters: Default::default(),
        })
    }

    /// Runs one inference of the model at `model` ([`model_path`]):
    /// `body` from [`infer_body`].
    pub(crate) fn infer(
        &self,
        model: &str,
        body: &[u8],
        call: &Call<'_>,
    ) -> Result<ModelInferResponse, RemoteError> {
        let req = self
            .agent
            .post(format!("{}/v2/models/{model}/infer", self.base))
            .header("content-type", "application/json");
        let (status, body) = self.read(call.prepare(req).send(body), call.timeout)?;
        let a: InferAnswer = answer(status, &body)?;
        a.outputs
            .into_iter()
            .map(output)
            .collect::<Result<_, _>>()
            .map(|outputs| ModelInferResponse {
                outputs,
                ..ModelInferResponse::default()
            })
    }
}

/// The path of the model under `/v2/models/`, with its version when set.
pub(crate) fn model_path(model: &str, version: &str) -> String {
    match version {
        "" => model.to_owned(),
        v => format!("{model}/versions/{v}"),
    }
}

/// A 200 answer's JSON, or the server's error as a status.
fn answer<T: for<'de> Deserialize<'de>>(status: u16, body: &[u8]) -> Result<T, RemoteError> {
    if status != 200 {
        #[derive(Deserialize)]
        struct ErrorJson {
            error: String,
        }
        let message = serde_json::from_slice::<ErrorJson>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        return Err(RemoteError::Status {
            code: code(status),
            message: format!(
                "HTTP {status}: {}",
                message.chars().take(MAX_MESSAGE_CHARS).collect::<String>()
            ),
        });
    }
    serde_json::from_slice(body).map_err(|e| RemoteError::Malformed(format!("JSON: {e}")))
}

/// The gRPC code an HTTP status stands for (gRPC's own mapping), so both
/// bindings' errors are judged alike.
fn code(status: u16) -> tonic::Code {
    match status {
        400 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        429 | 502..=504 => tonic::Code::Unavailable,
        501 => tonic::Code::Unimplemented,
        _ => tonic::Code::Internal,
    }
}

fn from_ureq(e: ureq::Error, timeout: Duration) -> RemoteError {
    match e {
        ureq::Error::Timeout(_) => RemoteError::Timeout(timeout),
        ureq::Error::Rustls(tls) => RemoteError::Tls(tls_explained(&tls)),
        ureq::Error::BodyExceedsLimit(n) => {
            RemoteError::Malformed(format!("the answer is above `max_message_bytes` ({n})"))
        }
        ureq::Error::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => RemoteError::Tls(tls_explained(tls)),
            None => RemoteError::Transport(io.to_string()),
        },
        other => RemoteError::Transport(other.to_string()),
    }
}

#[derive(Deserialize)]
struct TensorJson {
    name: String,
    datatype: String,
    shape: Vec<i64>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    inputs: Vec<TensorJson>,
    #[serde(default)]
    outputs: Vec<TensorJson>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct InferAnswer {
    #[serde(default)]
    outputs: Vec<OutputJson>,
}

/// An output as the gRPC binding gives it, its elements as typed lists
/// (a nested `data` array is read in row-major order, as the protocol
/// allows); counts and types are checked by `wire::outputs`.
fn output(o: OutputJson) -> Result<InferOutputTensor, RemoteError> {
    let mut flat = Vec::new();
    flatten(&o.data, &mut flat);
    let bad = || {
        RemoteError::Malformed(format!(
            "output `{}` holds a value that is not {}",
            o.name, o.datatype
        ))
    };
    let mut c = InferTensorContents::default();
    match o.datatype.as_str() {
        "FP32" => c.fp32_contents = typed(&flat, |v| Some(v.as_f64()? as f32)).ok_or_else(bad)?,
        "INT32" => {
            c.int_contents = typed(&flat, |v| i32::try_from(v.as_i64()?).ok()).ok_or_else(bad)?
        }
        "INT64" => c.int64_contents = typed(&flat, serde_json::Value::as_i64).ok_or_else(bad)?,
        "UINT8" => {
            c.uint_contents = typed(&flat, |v| u32::try_from(v.as_u64()?).ok()).ok_or_else(bad)?
        }
        "BOOL" => c.bool_contents = typed(&flat, serde_json::Value::as_bool).ok_or_else(bad)?,
        // Another datatype: `wire::outputs` names it.
        _ => {}
    }
    Ok(InferOutputTensor {
        name: o.name,
        datatype: o.datatype,
        shape: o.shape,
        parameters: Default::default(),
        contents: Some(c),
    })
}

/// Every value read by `f`, or `None` if one is not what it should be.
fn typed<T>(
    flat: &[&serde_json::Value],
    f: impl Fn(&serde_json::Value) -> Option<T>,
) -> Option<Vec<T>> {
    flat.iter().map(|v| f(v)).collect()
}

fn flatten<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// A tensor's elements as a JSON array of numbers, read from its bytes
/// (so lent buffers serialise alike).
struct Elements<'a>(&'a Tensor);

impl Serialize for Elements<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let data = &self.0.data;
        let bytes = data.as_bytes();
        let size = data.element().size();
        let mut seq = s.serialize_seq(Some(bytes.len() / size))?;
        for b in bytes.chunks_exact(size) {
            match data.element() {
                ElementType::F32 => seq.serialize_element(&f32::from_ne_bytes(
                    b.try_into().expect("4 bytes per element"),
                ))?,
                ElementType::U8 => seq.serialize_element(&b[0])?,
                ElementType::I32 => seq.serialize_element(&i32::from_ne_bytes(
                    b.try_into().expect("4 bytes per element"),
                ))?,
                ElementType::I64 => seq.serialize_element(&i64::from_ne_bytes(
                    b.try_into().expect("8 bytes per element"),
                ))?,
            }
        }
        seq.end()
    }
}

/// The JSON body of an inference request for `input`.
pub(crate) fn infer_body(id: u64, input: &[Tensor]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Input<'a> {
        name: &'a str,
        shape: &'a [usize],
        datatype: &'static str,
        data: Elements<'a>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        id: String,
        inputs: Vec<Input<'a>>,
    }
    let body = Body {
        id: id.to_string(),
        inputs: input
            .iter()
            .map(|t| Input {
                name: &t.name,
                shape: &t.shape,
                datatype: super::wire::datatype(t.data.element()),
                data: Elements(t),
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("tensors serialise to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_body_carries_each_tensor_as_numbers() {
        let t = Tensor::f32("x", [1, 2], vec![1.5, -2.0]);
        let body: serde_json::Value = serde_json::from_slice(&infer_body(7, &[t])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"id": "7", "inputs": [
                {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.5, -2.0]}
            ]})
        );
    }

    #[test]
    fn an_answer_nested_or_flat_becomes_typed_contents_and_bad_values_are_refused() {
        let o: OutputJson = serde_json::from_value(serde_json::json!(
            {"name": "y", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
        ))
        .unwrap();
        assert_eq!(
            output(o).unwrap().contents.unwrap().int64_contents,
            [1, 2, 3, 4]
        );
        let o: OutputJson = serde_json::from_value(serde_json::json!(
            {"name": "y", "datatype": "FP32", "shape": [1], "data": ["one"]}
        ))
        .unwrap();
        assert!(matches!(output(o), Err(RemoteError::Malformed(m)) if m.contains("`y`")));
        // Out of the type's range: refused by the reader both bindings share.
        let o: OutputJson = serde_json::from_value(serde_json::json!(
            {"name": "y", "datatype": "UINT8", "shape": [1], "data": [300]}
        ))
        .unwrap();
        let answer = ModelInferResponse {
            outputs: vec![output(o).unwrap()],
            ..ModelInferResponse::default()
        };
        assert!(matches!(
            crate::remote::wire::outputs(answer, 16),
            Err(RemoteError::Malformed(_))
        ));
    }

    #[test]
    fn an_error_answer_is_a_status_with_the_servers_message() {
        let Err(e) = answer::<InferAnswer>(404, br#"{"error": "Model cls not found"}"#) else {
            panic!("a 404 read as an answer");
        };
        assert_eq!(
            e,
            RemoteError::Status {
                code: tonic::Code::NotFound,
                message: "HTTP 404: Model cls not found".into()
            }
        );
        assert!(matches!(
            answer::<InferAnswer>(200, b"not json"),
            Err(RemoteError::Malformed(_))
        ));
    }
}
