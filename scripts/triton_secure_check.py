"""Checks unmodified Triton clients (tritonclient.http and tritonclient.grpc) against an
edgehost serving TLS with client certificates (mTLS) and bearer tokens:

    python3 scripts/triton_secure_check.py HTTP_HOST:PORT GRPC_HOST:PORT DIR IMAGE

DIR holds ca.pem, client.pem, client.key, other.pem, other.key (a client certificate from
another CA) and token (a token with the infer and observe scopes).
"""
import json
import os
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def classify_http(c, image, headers):
    inp = httpclient.InferInput("input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([image], dtype=np.object_), binary_data=True)
    res = c.infer("classify", [inp], outputs=[httpclient.InferRequestedOutput("result", binary_data=True)], headers=headers)
    return json.loads(res.as_numpy("result")[0])["top"][0]["label"]


def classify_grpc(c, image, headers):
    inp = grpcclient.InferInput("input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([image], dtype=np.object_))
    res = c.infer("classify", [inp], outputs=[grpcclient.InferRequestedOutput("result")], headers=headers)
    return json.loads(res.as_numpy("result")[0])["top"][0]["label"]


def main(http_url, grpc_url, d, image_path):
    p = lambda n: os.path.join(d, n)
    token = open(p("token")).read().strip()
    auth = {"Authorization": "Bearer " + token}
    image = open(image_path, "rb").read()

    h = httpclient.InferenceServerClient(url=http_url, ssl=True,
                                         ssl_options={"ca_certs": p("ca.pem"), "certfile": p("client.pem"), "keyfile": p("client.key")})
    assert h.is_server_live(), "not live"
    assert h.get_model_metadata("classify", headers=auth)["inputs"][0]["datatype"] == "BYTES"
    assert classify_http(h, image, auth) == "peacock"
    print("tritonclient.http over mTLS with a token: top-1 peacock")
    for hdr, what in (({}, "no token"), ({"Authorization": "Bearer wrong-token-0123456789"}, "a wrong token")):
        try:
            classify_http(h, image, hdr)
            raise SystemExit(f"http: {what} was accepted")
        except InferenceServerException as e:
            assert "unauthorized" in str(e), e
            print(f"tritonclient.http, {what}: refused ({e.status()})")

    g = grpcclient.InferenceServerClient(url=grpc_url, ssl=True, root_certificates=p("ca.pem"),
                                         private_key=p("client.key"), certificate_chain=p("client.pem"))
    assert g.is_server_live(), "grpc not live"
    assert classify_grpc(g, image, {"authorization": "Bearer " + token}) == "peacock"
    print("tritonclient.grpc over mTLS with a token: top-1 peacock")
    try:
        classify_grpc(g, image, {})
        raise SystemExit("grpc: no token was accepted")
    except InferenceServerException as e:
        assert "UNAUTHENTICATED" in str(e.status()), e
        print(f"tritonclient.grpc, no token: refused ({e.status()})")

    # A client certificate from another CA: the handshake fails.
    bad = grpcclient.InferenceServerClient(url=grpc_url, ssl=True, root_certificates=p("ca.pem"),
                                           private_key=p("other.key"), certificate_chain=p("other.pem"))
    try:
        bad.is_server_live()
        raise SystemExit("grpc: a client certificate from another CA was accepted")
    except InferenceServerException as e:
        print(f"tritonclient.grpc, client certificate from another CA: refused ({e.status()})")
    print("tritonclient secure: ok")


if __name__ == "__main__":
    main(*sys.argv[1:5])
