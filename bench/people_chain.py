"""The `people` cascade written as a user would in Python: Pillow decode and crops, ai-edge-litert
interpreters (num_threads=1). The reference edgehost's people pipeline is tested against
(host/engine/people_test.go) and benchmarked against (make bench).

ssd -> each "person" scoring >= threshold: a square crop (side = 1.25 x the box's longer side,
centred, padded black) -> pose_landmark_full (float32 0..1) -> 33 keypoints in the image's
pixels; every other object: the box cropped -> mobilenet -> top-1 label.

usage: python people_chain.py --models DIR IMAGE            (prints the JSON answer)
       python people_chain.py --models DIR --worker IMAGE   (bench/ehcascade: one line "run" in,
                                                             one JSON line of timings out, per request)
"""
import argparse
import io
import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


class Chain:
    def __init__(self, models, threshold=0.5, scale=1.25):
        def load(name):
            it = Interpreter(model_path=os.path.join(models, name), num_threads=1)
            it.allocate_tensors()
            return it

        self.ssd, self.pose, self.cls = load("ssd_detect.tflite"), load("pose_landmark_full.tflite"), load("mobilenet_quant_v1_224.tflite")
        self.labels = open(os.path.join(models, "ssd_labelmap.txt")).read().splitlines()
        self.clabels = open(os.path.join(models, "mobilenet_labels.txt")).read().splitlines()
        self.threshold, self.scale = threshold, scale
        self.invoke_s = 0.0  # time inside invoke, for the non-invoke share

    def _run(self, it, x):
        import time

        it.set_tensor(it.get_input_details()[0]["index"], x)
        t0 = time.perf_counter()
        it.invoke()
        self.invoke_s += time.perf_counter() - t0
        return [it.get_tensor(d["index"]) for d in it.get_output_details()]

    def run(self, body):
        im = Image.open(io.BytesIO(body)).convert("RGB")
        W, H = im.size
        _, h, w, _ = self.ssd.get_input_details()[0]["shape"]
        boxes, classes, scores, count = self._run(self.ssd, np.asarray(im.resize((w, h), Image.Resampling.BILINEAR))[np.newaxis])
        objects = []
        for i in range(int(count[0])):
            s = float(scores[0][i])
            if s < self.threshold:
                continue
            ymin, xmin, ymax, xmax = [float(min(max(v, 0.0), 1.0)) for v in boxes[0][i]]
            b = [ymin * H, xmin * W, ymax * H, xmax * W]
            if not (b[2] > b[0] and b[3] > b[1]):
                continue
            c = int(classes[0][i]) + 1
            o = {"label": self.labels[c] if 0 <= c < len(self.labels) else "", "score": s, "box": b}
            if o["label"] == "person":
                cx, cy = (b[1] + b[3]) / 2, (b[0] + b[2]) / 2
                side = max(b[3] - b[1], b[2] - b[0]) * self.scale
                x0, y0 = cx - side / 2, cy - side / 2
                _, ph, pw, _ = self.pose.get_input_details()[0]["shape"]
                crop = im.crop((round(x0), round(y0), round(x0 + side), round(y0 + side))).resize((pw, ph), Image.Resampling.BILINEAR)
                lm = self._run(self.pose, (np.asarray(crop, dtype=np.float32) / 255.0)[np.newaxis])[0].reshape(-1, 5)
                o["keypoints"] = [[x0 + float(p[0]) / pw * side, y0 + float(p[1]) / ph * side] for p in lm[:33]]
            else:
                _, ch, cw, _ = self.cls.get_input_details()[0]["shape"]
                crop = im.crop((round(b[1]), round(b[0]), round(b[3]), round(b[2]))).resize((cw, ch), Image.Resampling.BILINEAR)
                (q,) = self._run(self.cls, np.asarray(crop, dtype=np.uint8)[np.newaxis])
                k = int(np.argmax(q[0]))
                o["class"] = self.clabels[k] if k < len(self.clabels) else ""
            objects.append(o)
        return {"image": {"width": W, "height": H}, "objects": objects}


if __name__ == "__main__":
    import sys
    import time

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("image")
    a = ap.parse_args()
    chain, body = Chain(a.models), open(a.image, "rb").read()
    if not a.worker:
        print(json.dumps(chain.run(body)))
        sys.exit(0)
    for line in sys.stdin:
        chain.invoke_s = 0.0
        t0 = time.perf_counter()
        out = chain.run(body)
        wall = time.perf_counter() - t0
        print(json.dumps({"wall_ms": wall * 1e3, "invoke_ms": chain.invoke_s * 1e3, "objects": len(out["objects"])}), flush=True)
