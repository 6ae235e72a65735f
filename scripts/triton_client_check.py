"""Checks that an unmodified Triton/KServe HTTP client (tritonclient.http) works against a
running edgehost: health, metadata, and inference on a pipeline (BYTES in, BYTES out, JSON and
binary) and on a bare model (UINT8 tensor in, UINT8 tensor out).

    python3 scripts/triton_client_check.py 127.0.0.1:8080 .deps/models/peacock.png
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient


def main(url, image_path):
    c = httpclient.InferenceServerClient(url=url)
    assert c.is_server_live(), "server not live"
    assert c.is_server_ready(), "server not ready"
    assert c.is_model_ready("classify"), "classify not ready"
    meta = c.get_model_metadata("classify")
    assert meta["inputs"][0]["datatype"] == "BYTES", meta

    image = open(image_path, "rb").read()
    for binary in (False, True):
        if binary:  # the image as one BYTES element, binary tensor data extension
            inp = httpclient.InferInput("input", [1], "BYTES")
            inp.set_data_from_numpy(np.array([image], dtype=np.object_), binary_data=True)
        else:  # JSON tensors: the image bytes as a UINT8 array
            inp = httpclient.InferInput("input", [len(image)], "UINT8")
            inp.set_data_from_numpy(np.frombuffer(image, dtype=np.uint8), binary_data=False)
        out = httpclient.InferRequestedOutput("result", binary_data=binary)
        res = c.infer("classify", [inp], outputs=[out])
        result = res.as_numpy("result")[0]
        if isinstance(result, bytes):
            result = result.decode()
        top = json.loads(result)["top"][0]["label"]
        assert top == "peacock", result
        print(f"classify binary={binary}: top-1 {top}")

    # Bare model: the raw 224x224 RGB tensor.
    tensor = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    inp = httpclient.InferInput("Placeholder", list(tensor.shape), "UINT8")
    inp.set_data_from_numpy(tensor, binary_data=True)
    res = c.infer("mobilenet", [inp])
    scores = res.as_numpy("MobilenetV1/Predictions/Softmax")
    assert scores.shape == (1, 1001), scores.shape
    print(f"mobilenet bare: output {scores.shape} {scores.dtype}")
    print("tritonclient: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
