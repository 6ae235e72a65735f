"""Unmodified tritonclient against edgehost's wakeword pipeline (sequences, issue 26):
tritonclient.grpc start_stream / async_stream_infer with sequence_id, and tritonclient.http
infer with sequence_id, stream a 16 kHz mono WAV in 10 ms chunks; every chunk gets one answer,
in order, and the detections are those `edgehost run` and pymicro-wakeword report (when the
reference file beside the clip exists). A chunk for a sequence that was never started is
refused (HTTP 400 / gRPC error message).

usage: triton_sequence_check.py HTTP_ADDR GRPC_ADDR CLIP.wav
"""
import json
import os
import queue
import sys
import wave

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

http_addr, grpc_addr, clip = sys.argv[1:4]
with wave.open(clip, "rb") as w:
    assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
    pcm = w.readframes(w.getnframes())
chunks = [pcm[i * 320:(i + 1) * 320] for i in range(len(pcm) // 320)]
want = None
ref = clip[:-4] + ".ref.jsonl"
if os.path.exists(ref):
    want = [json.loads(l)["chunk"] for l in open(ref) if json.loads(l)["detected"]]


def detections(results):
    got = []
    for r in results:
        b = r.as_numpy("result")[0]
        if b:
            got.append(json.loads(b)["chunk"])
    return got


# gRPC bidirectional stream, one sequence.
answers = queue.Queue()
g = grpcclient.InferenceServerClient(grpc_addr)
g.start_stream(callback=lambda result, error: answers.put((result, error)))
for i, c in enumerate(chunks):
    inp = grpcclient.InferInput("input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([c], dtype=np.object_))
    g.async_stream_infer("wakeword", [inp], request_id=str(i), sequence_id=4242,
                         sequence_start=i == 0, sequence_end=i == len(chunks) - 1)
results = []
for i in range(len(chunks)):
    result, error = answers.get(timeout=60)
    assert error is None, f"chunk {i}: {error}"
    assert result.get_response().id == str(i), f"answer {i} has id {result.get_response().id}: out of order"
    results.append(result)
g.stop_stream()
got = detections(results)
assert want is None or got == want, f"gRPC stream detections at chunks {got}, reference {want}"
print(f"tritonclient.grpc stream: {len(chunks)} chunks answered in order; detections at chunks {got}")

# An unknown sequence on a stream: the callback gets the error, the stream goes on.
g.start_stream(callback=lambda result, error: answers.put((result, error)))
inp = grpcclient.InferInput("input", [1], "BYTES")
inp.set_data_from_numpy(np.array([chunks[0]], dtype=np.object_))
g.async_stream_infer("wakeword", [inp], sequence_id=777, sequence_start=False)
result, error = answers.get(timeout=60)
assert error is not None and "not live" in str(error), f"unknown sequence on a stream: {result} {error}"
g.stop_stream()
print(f"tritonclient.grpc stream: unknown sequence refused: {error}")

# HTTP, a string sequence id, the first 3 s.
h = httpclient.InferenceServerClient(http_addr)
n = min(len(chunks), 300)
results = []
for i in range(n):
    inp = httpclient.InferInput("input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([chunks[i]], dtype=np.object_), binary_data=True)
    results.append(h.infer("wakeword", [inp], sequence_id="http-seq", sequence_start=i == 0, sequence_end=i == n - 1))
got = detections(results)
assert want is None or got == [c for c in want if c <= n], f"HTTP detections {got}, reference {want}"
print(f"tritonclient.http: {n} chunks; detections at chunks {got}")
try:
    inp = httpclient.InferInput("input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([chunks[0]], dtype=np.object_), binary_data=True)
    h.infer("wakeword", [inp], sequence_id="http-seq")
    raise SystemExit("a chunk after sequence_end was accepted")
except InferenceServerException as e:
    assert e.status() == "400", e
    print(f"tritonclient.http: chunk after the end refused: {e.status()} {e.message()}")
