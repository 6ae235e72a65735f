"""A minimal Python server doing edgehost's shipped classify and detect jobs: what a user
would write instead of edgehost. FastAPI + uvicorn (1 worker), Pillow with draft (DCT
scaling) + resize, ai-edge-litert Interpreter with num_threads=1. Decoding runs in the threadpool (Pillow releases the GIL), each
interpreter behind a lock.

usage: python litert_server.py --port N --models DIR
POST /v1/pipelines/classify, /v1/pipelines/detect, /v1/pipelines/people (the cascade of
people_chain.py: ssd, then pose per person and mobilenet per other object) (image bytes as the
body); GET /health.
"""
import argparse
import io
import os
import threading

import numpy as np
import uvicorn
from ai_edge_litert.interpreter import Interpreter
from fastapi import FastAPI, HTTPException, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool


class Model:
    def __init__(self, path, labels):
        self.it = Interpreter(model_path=path, num_threads=1)
        self.it.allocate_tensors()
        d = self.it.get_input_details()[0]
        self.inp, (_, self.h, self.w, _) = d["index"], d["shape"]
        self.out = self.it.get_output_details()
        self.labels = open(labels).read().splitlines()
        self.lock = threading.Lock()  # an Interpreter is not safe for concurrent use

    def run(self, body):
        try:
            im = Image.open(io.BytesIO(body))
            im.draft("RGB", (self.w, self.h))
            x = np.asarray(im.convert("RGB").resize((self.w, self.h), Image.Resampling.BILINEAR))[np.newaxis]
        except Exception as e:
            raise HTTPException(400, "cannot decode image: %s" % e)
        with self.lock:
            self.it.set_tensor(self.inp, x)
            self.it.invoke()
            return [self.it.get_tensor(d["index"]).copy() for d in self.out]


app = FastAPI()
models = {}


@app.get("/health")
def health():
    return {"ready": True}


@app.post("/v1/pipelines/classify")
async def classify(request: Request):
    m = models["classify"]
    (q,) = await run_in_threadpool(m.run, await request.body())
    scale, zero = m.out[0]["quantization"]
    scores = (q[0].astype(np.float32) - zero) * scale
    top = np.argsort(-scores, kind="stable")[:5]
    return {"top": [{"index": int(i), "label": m.labels[i], "score": float(scores[i])} for i in top]}


@app.post("/v1/pipelines/detect")
async def detect(request: Request):
    m = models["detect"]
    boxes, classes, scores, count = await run_in_threadpool(m.run, await request.body())
    dets = []
    for i in range(int(count.reshape(-1)[0])):
        if scores[0, i] >= 0.5:
            c = int(classes[0, i])
            label = m.labels[c + 1] if 0 <= c + 1 < len(m.labels) else ""
            dets.append({"label": label, "class": c, "score": float(scores[0, i]), "box": boxes[0, i].tolist()})
    return {"detections": dets}


people_lock = threading.Lock()


@app.post("/v1/pipelines/people")
async def people(request: Request):
    body = await request.body()

    def run():
        with people_lock:  # the chain's interpreters are not safe for concurrent use
            return models["people"].run(body)

    try:
        return await run_in_threadpool(run)
    except OSError as e:
        raise HTTPException(400, "cannot decode image: %s" % e)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    j = lambda f: os.path.join(a.models, f)
    models["classify"] = Model(j("mobilenet_quant_v1_224.tflite"), j("mobilenet_labels.txt"))
    models["detect"] = Model(j("ssd_detect.tflite"), j("ssd_labelmap.txt"))
    if os.path.exists(j("pose_landmark_full.tflite")):
        import sys

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from people_chain import Chain

        models["people"] = Chain(a.models)
    uvicorn.run(app, host="127.0.0.1", port=a.port, workers=1, log_level="warning", access_log=False)
