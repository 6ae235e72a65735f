"""A minimal Python server doing edgehost's shipped classify and detect jobs: what a user
would write instead of edgehost. FastAPI + uvicorn, Pillow with draft (DCT scaling) +
resize, ai-edge-litert Interpreter. Decoding runs in the threadpool (Pillow releases the
GIL, and so does invoke); each interpreter is used by one request at a time.

Three ways a user would tune it (bench/ehbench runs each as its own server):
  --threads 1 --pool 1 --procs 1   the default: one 1-thread interpreter per model behind a lock
  --threads N                      latency: one interpreter with N threads (N = cores)
  --pool N                         throughput: N interpreters per model (1 thread each), one per request
  --procs N                        throughput: N uvicorn worker processes, each with its own interpreters

usage: python litert_server.py --port N --models DIR [--threads N] [--pool N] [--procs N]
POST /v1/pipelines/classify, /v1/pipelines/detect, /v1/pipelines/people (the cascade of
people_chain.py: ssd, then pose per person and mobilenet per other object) (image bytes as the
body); GET /health.
"""
import argparse
import io
import json
import os
import queue
import sys
import threading
import time

import numpy as np
import uvicorn
from ai_edge_litert.interpreter import Interpreter
from fastapi import FastAPI, HTTPException, Request, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool


class Model:
    def __init__(self, path, labels, threads=1, pool=1):
        # A pool of interpreters (an Interpreter is not safe for concurrent use): a request
        # takes one, or waits for one.
        self.free = queue.Queue()
        for _ in range(pool):
            it = Interpreter(model_path=path, num_threads=threads)
            it.allocate_tensors()
            self.free.put(it)
        d = it.get_input_details()[0]
        self.inp, (_, self.h, self.w, _) = d["index"], d["shape"]
        self.out = it.get_output_details()
        self.labels = open(labels).read().splitlines()

    def run(self, body):
        try:
            im = Image.open(io.BytesIO(body))
            im.draft("RGB", (self.w, self.h))
            x = np.asarray(im.convert("RGB").resize((self.w, self.h), Image.Resampling.BILINEAR))[np.newaxis]
        except Exception as e:
            raise HTTPException(400, "cannot decode image: %s" % e)
        it = self.free.get()
        try:
            it.set_tensor(self.inp, x)
            it.invoke()
            return [it.get_tensor(d["index"]).copy() for d in self.out]
        finally:
            self.free.put(it)


app = FastAPI()


def timing(response, t0):
    # The request's time in the server once its body is read, to the result (edgehost's
    # edgehost_stage_seconds{stage="total"}): the client's latency minus this is what HTTP adds.
    response.headers["Server-Timing"] = "total;dur=%.3f" % ((time.perf_counter() - t0) * 1000)


models = {}


@app.get("/health")
def health():
    return {"ready": True}


@app.post("/v1/pipelines/classify")
async def classify(request: Request, response: Response):
    m = models["classify"]
    body = await request.body()
    t0 = time.perf_counter()
    (q,) = await run_in_threadpool(m.run, body)
    scale, zero = m.out[0]["quantization"]
    scores = (q[0].astype(np.float32) - zero) * scale
    top = np.argsort(-scores, kind="stable")[:5]
    timing(response, t0)
    return {"top": [{"index": int(i), "label": m.labels[i], "score": float(scores[i])} for i in top]}


@app.post("/v1/pipelines/detect")
async def detect(request: Request, response: Response):
    m = models["detect"]
    body = await request.body()
    t0 = time.perf_counter()
    boxes, classes, scores, count = await run_in_threadpool(m.run, body)
    dets = []
    for i in range(int(count.reshape(-1)[0])):
        if scores[0, i] >= 0.5:
            c = int(classes[0, i])
            label = m.labels[c + 1] if 0 <= c + 1 < len(m.labels) else ""
            dets.append({"label": label, "class": c, "score": float(scores[0, i]), "box": boxes[0, i].tolist()})
    timing(response, t0)
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


def load(models_dir, threads, pool, people):
    j = lambda f: os.path.join(models_dir, f)
    models["classify"] = Model(j("mobilenet_quant_v1_224.tflite"), j("mobilenet_labels.txt"), threads, pool)
    models["detect"] = Model(j("ssd_detect.tflite"), j("ssd_labelmap.txt"), threads, pool)
    if people and os.path.exists(j("pose_landmark_full.tflite")):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from people_chain import Chain

        models["people"] = Chain(models_dir)


# A worker process started by uvicorn (--procs > 1) imports this module by name: it loads
# its own models from what the parent passed in the environment.
if __name__ != "__main__" and os.environ.get("LITERT_SERVER_ARGS"):
    load(*json.loads(os.environ["LITERT_SERVER_ARGS"]))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--threads", type=int, default=1, help="num_threads of each interpreter")
    ap.add_argument("--pool", type=int, default=1, help="interpreters per model")
    ap.add_argument("--procs", type=int, default=1, help="uvicorn worker processes")
    a = ap.parse_args()
    if a.procs > 1:
        os.environ["LITERT_SERVER_ARGS"] = json.dumps([a.models, a.threads, a.pool, False])
        uvicorn.run("litert_server:app", app_dir=os.path.dirname(os.path.abspath(__file__)), host="127.0.0.1",
                    port=a.port, workers=a.procs, log_level="warning", access_log=False)
    else:
        load(a.models, a.threads, a.pool, True)
        uvicorn.run(app, host="127.0.0.1", port=a.port, workers=1, log_level="warning", access_log=False)
