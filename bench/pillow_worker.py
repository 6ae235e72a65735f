"""The competitor in-process: Pillow pre-processing and ai-edge-litert inference, driven by
bench/ehbench over stdin/stdout so that its rounds interleave with the Go measurements.

Protocol: one JSON object per line each way. The first line in is the setup:
  {"cases": [{"image": PATH, "model": PATH, "w": W, "h": H, "float": BOOL, "post": "classify"|"ssd"|""}]}
answered by {"ok": true}. Then per request:
  {"op": "run", "case": I, "invoke": BOOL}  -> {"pre_ns", "pre_cpu_ns", "inv_ns", "inv_cpu_ns"}
  {"op": "dump", "case": I, "path": P}      -> writes the pre-processed tensor (raw) to P
  {"op": "quit"}
"""
import io
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


def pre(data, w, h, as_float):
    """What a user would write: decode with DCT scaling (draft), resize, normalise."""
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (w, h))
    im = im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    if as_float:
        a = (a.astype(np.float32) - 127.5) / 127.5
    return a[np.newaxis]


def classify(it, out, k=5):
    d = out[0]
    q = it.get_tensor(d["index"])[0]
    scale, zero = d["quantization"]
    scores = (q.astype(np.float32) - zero) * scale if scale else q.astype(np.float32)
    top = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in top]


def ssd(it, out, threshold=0.5):
    boxes, classes, scores, count = (it.get_tensor(d["index"]) for d in out[:4])
    n = int(count.reshape(-1)[0])
    return [(int(classes[0, i]), float(scores[0, i]), boxes[0, i].tolist())
            for i in range(n) if scores[0, i] >= threshold]


class Case:
    def __init__(self, c):
        with open(c["image"], "rb") as f:
            self.data = f.read()
        self.w, self.h, self.float = c["w"], c["h"], c["float"]
        self.post = c.get("post", "")
        self.it = Interpreter(model_path=c["model"], num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()

    def run(self, invoke):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        x = pre(self.data, self.w, self.h, self.float)
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        if invoke:
            self.it.set_tensor(self.inp, x)
            self.it.invoke()
            if self.post == "classify":
                classify(self.it, self.out)
            elif self.post == "ssd":
                ssd(self.it, self.out)
        t2, c2 = time.perf_counter_ns(), time.thread_time_ns()
        return {"pre_ns": t1 - t0, "pre_cpu_ns": c1 - c0, "inv_ns": t2 - t1, "inv_cpu_ns": c2 - c1}


def main():
    out = sys.stdout
    setup = json.loads(sys.stdin.readline())
    cases = [Case(c) for c in setup["cases"]]
    out.write(json.dumps({"ok": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        if op == "quit":
            break
        c = cases[req["case"]]
        if op == "run":
            resp = c.run(req.get("invoke", False))
        elif op == "dump":
            with open(req["path"], "wb") as f:
                f.write(pre(c.data, c.w, c.h, c.float).tobytes())
            resp = {"ok": True}
        else:
            resp = {"error": "unknown op %r" % op}
        out.write(json.dumps(resp) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
