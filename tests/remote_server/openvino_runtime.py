"""An MLServer model runtime that runs a model with OpenVINO's Python API.

The remote-group tests serve the PP-OCR classifier through it, so the server
side of the Open Inference Protocol runs real inference on the same model as
the local OpenVINO group. The model file is the model settings' `uri`;
inference runs in f32 on the CPU, as the local group in the tests does, so
outputs agree to float tolerance.
"""

import asyncio

import numpy as np
import openvino as ov
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor

# numpy dtypes as the protocol names them.
DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}


def describe(port):
    """A model port as protocol metadata (-1 for a dynamic dimension)."""
    shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
    dtype = np.dtype(port.get_element_type().to_dtype())
    return MetadataTensor(name=port.get_any_name(), datatype=DATATYPES[dtype], shape=shape)


class OpenVinoRuntime(MLModel):
    async def load(self) -> bool:
        core = ov.Core()
        self._compiled = core.compile_model(
            self.settings.parameters.uri, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        self._lock = asyncio.Lock()
        self._request = self._compiled.create_infer_request()
        self.inputs = [describe(p) for p in self._compiled.inputs]
        self.outputs = [describe(p) for p in self._compiled.outputs]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        async with self._lock:
            result = self._request.infer(feeds)
            outputs = [
                NumpyCodec.encode_output(name=port.get_any_name(), payload=np.array(value))
                for port, value in result.items()
            ]
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)
