"""Checks that an unmodified Triton/KServe gRPC client (tritonclient.grpc) works against a
running edgehost's KServe v2 gRPC service: health, metadata, inference on a pipeline (BYTES
in, BYTES out; UINT8 in) and on a bare model (UINT8 tensor in and out), and bad input
answered with INVALID_ARGUMENT and an unknown model with NOT_FOUND.

    python3 scripts/triton_grpc_check.py 127.0.0.1:8001 .deps/models/peacock.png
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def expect_error(status, fn, *args):
    try:
        fn(*args)
    except InferenceServerException as e:
        assert e.status() == status, (e.status(), e.message())
        return e.message()
    raise AssertionError(f"{fn.__name__}{args}: no error, want {status}")


def main(url, image_path):
    c = grpcclient.InferenceServerClient(url=url)
    assert c.is_server_live(), "server not live"
    assert c.is_server_ready(), "server not ready"
    assert c.is_model_ready("classify"), "classify not ready"
    assert c.get_server_metadata().name == "edgehost"
    meta = c.get_model_metadata("classify")
    assert meta.inputs[0].datatype == "BYTES", meta

    image = open(image_path, "rb").read()
    for dtype in ("BYTES", "UINT8"):
        if dtype == "BYTES":  # the image as one BYTES element
            inp = grpcclient.InferInput("input", [1], "BYTES")
            inp.set_data_from_numpy(np.array([image], dtype=np.object_))
        else:  # the image bytes as a UINT8 vector
            inp = grpcclient.InferInput("input", [len(image)], "UINT8")
            inp.set_data_from_numpy(np.frombuffer(image, dtype=np.uint8))
        res = c.infer("classify", [inp], outputs=[grpcclient.InferRequestedOutput("result")], request_id="r-" + dtype)
        assert res.get_response().id == "r-" + dtype
        top = json.loads(res.as_numpy("result")[0])["top"][0]["label"]
        assert top == "peacock", res.as_numpy("result")
        print(f"grpc classify {dtype}: top-1 {top}")

    # Bare model: the raw 224x224 RGB tensor.
    inp = grpcclient.InferInput("Placeholder", [1, 224, 224, 3], "UINT8")
    inp.set_data_from_numpy(np.zeros((1, 224, 224, 3), dtype=np.uint8))
    scores = c.infer("mobilenet", [inp]).as_numpy("MobilenetV1/Predictions/Softmax")
    assert scores.shape == (1, 1001) and scores.dtype == np.uint8, (scores.shape, scores.dtype)
    print(f"grpc mobilenet bare: output {scores.shape} {scores.dtype}")

    bad = grpcclient.InferInput("input", [1], "FP32")
    bad.set_data_from_numpy(np.zeros([1], dtype=np.float32))
    msg = expect_error("StatusCode.INVALID_ARGUMENT", c.infer, "classify", [bad])
    print(f"grpc bad input: INVALID_ARGUMENT ({msg})")
    msg = expect_error("StatusCode.NOT_FOUND", c.get_model_metadata, "nope")
    print(f"grpc unknown model: NOT_FOUND ({msg})")
    print("tritonclient.grpc: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
