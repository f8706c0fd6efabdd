"""The baseline of `benches/remote.rs`: the Open Inference Protocol's gRPC
calls made straight from Python with MLServer's own client stubs
(`mlserver.grpc.dataplane_pb2_grpc`), on the same server, model and input
as the pool's remote group, in the same run.

Closed loop: `--concurrency` threads, each sending one ModelInfer call and
waiting for its answer before the next, for `--seconds`. Prints one JSON
object: completed calls per second, the round trip's p50 and p99 in
nanoseconds, and the client process's CPU milliseconds per call.
"""

import argparse
import json
import resource
import threading
import time

import grpc
import numpy as np
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc import dataplane_pb2_grpc as pb_grpc


def image(seed):
    """The input of `benches/remote.rs`: the same values for the same seed."""
    i = np.arange(3 * 48 * 192, dtype=np.int64)
    return (((i * 7919 + seed * 104_729) % 255).astype(np.float32) / 255.0 - 0.5).reshape(1, 3, 48, 192)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True, help="host:port of the gRPC server")
    p.add_argument("--model", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--warmup", type=int, default=20)
    a = p.parse_args()

    channel = grpc.insecure_channel(a.target)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    x = image(0)
    request = pb.ModelInferRequest(
        model_name=a.model,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=list(x.shape))],
        raw_input_contents=[x.tobytes()],
    )
    for _ in range(a.warmup):
        stub.ModelInfer(request)

    latencies = [[] for _ in range(a.concurrency)]
    start = time.perf_counter()
    deadline = start + a.seconds

    def loop(mine):
        while True:
            t = time.perf_counter_ns()
            if t / 1e9 >= deadline:
                return
            answer = stub.ModelInfer(request)
            assert len(answer.outputs) == 1
            mine.append(time.perf_counter_ns() - t)

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    cpu_before = cpu()
    threads = [threading.Thread(target=loop, args=(lat,)) for lat in latencies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu_used = cpu() - cpu_before
    all_ = sorted(v for lat in latencies for v in lat)
    n = len(all_)
    at = lambda q: all_[min(int(n * q), n - 1)]
    print(json.dumps({
        "count": n,
        "throughput_rps": round(n / elapsed, 1),
        "p50_ns": at(0.50),
        "p99_ns": at(0.99),
        "cpu_ms_per_request_here": round(cpu_used / max(n, 1) * 1e3, 2),
    }))


if __name__ == "__main__":
    main()
