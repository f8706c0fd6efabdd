//! Tensors to and from the protocol's messages: a request's tensors travel
//! as raw little-endian bytes (`raw_input_contents`); an answer may come
//! raw or as typed lists, and is checked before it becomes tensors (names,
//! element types, shapes against the bytes given).

#![forbid(unsafe_code)]

use bytes::Bytes;

use super::proto::{model_infer_request, ModelInferRequest, ModelInferResponse};
use super::RemoteError;
use crate::tensor::{element_count, ElementType, Tensor, TensorData, Tensors};

/// The protocol's name of an element type.
pub(crate) fn datatype(e: ElementType) -> &'static str {
    match e {
        ElementType::F32 => "FP32",
        ElementType::U8 => "UINT8",
        ElementType::I32 => "INT32",
        ElementType::I64 => "INT64",
    }
}

/// The element type a protocol datatype is read as, if the group reads it.
pub(crate) fn element(datatype: &str) -> Option<ElementType> {
    Some(match datatype {
        "FP32" => ElementType::F32,
        "UINT8" | "BOOL" => ElementType::U8,
        "INT32" => ElementType::I32,
        "INT64" => ElementType::I64,
        _ => return None,
    })
}

/// The elements' bytes, little-endian as the protocol wants them.
fn le_bytes(data: &TensorData) -> Bytes {
    #[cfg(target_endian = "little")]
    {
        Bytes::copy_from_slice(data.as_bytes())
    }
    #[cfg(target_endian = "big")]
    {
        let size = data.element().size();
        let mut out = data.as_bytes().to_vec();
        for e in out.chunks_exact_mut(size) {
            e.reverse();
        }
        Bytes::from(out)
    }
}

/// The inference request for `input` (checked at submit already).
pub(crate) fn request(model: &str, version: &str, id: u64, input: &[Tensor]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.to_owned(),
        model_version: version.to_owned(),
        id: id.to_string(),
        parameters: Default::default(),
        inputs: input
            .iter()
            .map(|t| model_infer_request::InferInputTensor {
                name: t.name.clone(),
                datatype: datatype(t.data.element()).to_owned(),
                shape: t.shape.iter().map(|&d| d as i64).collect(),
                parameters: Default::default(),
                contents: None,
            })
            .collect(),
        outputs: Vec::new(),
        raw_input_contents: input.iter().map(|t| le_bytes(&t.data)).collect(),
    }
}

/// The tensors of an answer, or why it is not one: every output names a
/// datatype the group reads and a shape of at most `max_elements`, and
/// brings exactly as many elements as its shape holds.
pub(crate) fn outputs(r: ModelInferResponse, max_elements: usize) -> Result<Tensors, RemoteError> {
    let bad = |what: String| RemoteError::Malformed(what);
    if !r.raw_output_contents.is_empty() && r.raw_output_contents.len() != r.outputs.len() {
        return Err(bad(format!(
            "{} outputs but {} raw contents",
            r.outputs.len(),
            r.raw_output_contents.len()
        )));
    }
    let mut raw = r.raw_output_contents.into_iter();
    r.outputs
        .into_iter()
        .map(|o| {
            let e = element(&o.datatype).ok_or_else(|| {
                bad(format!(
                    "output `{}` has datatype `{}`, which the group does not read",
                    o.name, o.datatype
                ))
            })?;
            let shape: Vec<usize> = o
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<_, _>>()
                .map_err(|_| bad(format!("output `{}` has shape {:?}", o.name, o.shape)))?;
            let n = element_count(&shape, max_elements).ok_or_else(|| {
                bad(format!(
                    "output `{}` has shape {shape:?}, above `max_tensor_elements`",
                    o.name
                ))
            })?;
            let data = match raw.next() {
                Some(bytes) => from_le(e, &bytes, n),
                None => from_typed(e, o.contents.unwrap_or_default(), n),
            }
            .ok_or_else(|| {
                bad(format!(
                    "output `{}` does not hold the {n} elements of shape {shape:?}",
                    o.name
                ))
            })?;
            Ok(Tensor::new(o.name, shape, data))
        })
        .collect()
}

/// `n` elements of `e` from little-endian bytes.
fn from_le(e: ElementType, b: &[u8], n: usize) -> Option<TensorData> {
    if b.len() != n.checked_mul(e.size())? {
        return None;
    }
    Some(match e {
        ElementType::F32 => TensorData::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        ElementType::U8 => TensorData::U8(b.to_vec()),
        ElementType::I32 => TensorData::I32(
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        ElementType::I64 => TensorData::I64(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
    })
}

/// `n` elements of `e` from the typed lists.
fn from_typed(
    e: ElementType,
    c: super::proto::InferTensorContents,
    n: usize,
) -> Option<TensorData> {
    let data = match e {
        ElementType::F32 => TensorData::F32(c.fp32_contents),
        ElementType::U8 if !c.bool_contents.is_empty() => {
            TensorData::U8(c.bool_contents.into_iter().map(u8::from).collect())
        }
        ElementType::U8 => TensorData::U8(
            c.uint_contents
                .into_iter()
                .map(u8::try_from)
                .collect::<Result<_, _>>()
                .ok()?,
        ),
        ElementType::I32 => TensorData::I32(c.int_contents),
        ElementType::I64 => TensorData::I64(c.int64_contents),
    };
    (data.len() == n).then_some(data)
}

/// Keeps the generated output type's name in one place for the tests.
#[cfg(test)]
pub(crate) type Output = super::proto::model_infer_response::InferOutputTensor;

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(outputs: Vec<Output>, raw: Vec<Bytes>) -> ModelInferResponse {
        ModelInferResponse {
            outputs,
            raw_output_contents: raw,
            ..Default::default()
        }
    }

    fn out(name: &str, datatype: &str, shape: &[i64]) -> Output {
        Output {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_carries_each_tensor_raw_and_little_endian() {
        let t = Tensor::f32("x", [1, 2], vec![1.0, -2.5]);
        let r = request("cls", "", 7, std::slice::from_ref(&t));
        assert_eq!((r.model_name.as_str(), r.id.as_str()), ("cls", "7"));
        assert_eq!(r.inputs[0].datatype, "FP32");
        assert_eq!(r.inputs[0].shape, [1, 2]);
        let want: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(&r.raw_input_contents[0][..], &want[..]);
    }

    #[test]
    fn raw_and_typed_answers_read_alike() {
        let raw: Vec<u8> = [0.25f32, 0.75]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let a = outputs(
            answer(vec![out("y", "FP32", &[1, 2])], vec![Bytes::from(raw)]),
            100,
        )
        .unwrap();
        let mut typed = out("y", "FP32", &[1, 2]);
        typed.contents = Some(super::super::proto::InferTensorContents {
            fp32_contents: vec![0.25, 0.75],
            ..Default::default()
        });
        let b = outputs(answer(vec![typed], vec![]), 100).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].data.as_f32(), Some(&[0.25f32, 0.75][..]));
    }

    #[test]
    fn a_malformed_answer_is_an_error_not_a_panic() {
        let cases = [
            answer(
                vec![out("y", "FP32", &[1, 2])],
                vec![Bytes::from_static(&[0; 7])],
            ),
            answer(vec![out("y", "FP32", &[-1, 2])], vec![]),
            answer(vec![out("y", "FP16", &[1])], vec![]),
            answer(vec![out("y", "FP32", &[1 << 40, 1 << 40])], vec![]),
            answer(vec![out("y", "FP32", &[2])], vec![]),
            answer(
                vec![out("a", "FP32", &[1]), out("b", "FP32", &[1])],
                vec![Bytes::new()],
            ),
        ];
        for c in cases {
            let e = outputs(c, 1 << 20).unwrap_err();
            assert!(matches!(e, RemoteError::Malformed(_)), "{e}");
        }
    }
}
