"""The camera loop a user writes without edgehost (make bench-stream's competitor).

A grabber thread reads the camera's multipart MJPEG and keeps only the newest frame (so a
slow model never makes frames queue: the same newest-first rule edgehost applies; a naive
cv2.VideoCapture loop would queue them); the main loop decodes it with Pillow (draft mode:
DCT-domain downscaling, the fast path a tuned user takes), resizes it to the model input,
runs LiteRT, turns SSD outputs into JSON detections and publishes them with paho-mqtt
(QoS 0). It prints one JSON line: frames received, processed and dropped over the measured
window, capture->result latency p50/p99 and CPU seconds per processed frame.

usage: stream_loop.py URL MODEL BROKER_HOST:PORT TOPIC WARMUP_S SECONDS THREADS
"""
import http.client
import io
import json
import os
import sys
import threading
import time
import urllib.parse

import numpy as np
import paho.mqtt.client as mqtt
from PIL import Image
from ai_edge_litert.interpreter import Interpreter

url, model, broker, topic = sys.argv[1:5]
warmup, seconds, threads = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])

latest = None  # (seq, capture time, jpeg bytes)
cond = threading.Condition()
received = dropped = 0


def grab():
    global latest, received, dropped
    u = urllib.parse.urlsplit(url)
    while True:
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            c.request("GET", u.path)
            r = c.getresponse()
            seq = 0
            while True:
                line = r.readline()
                if not line:
                    break
                if not line.startswith(b"--"):
                    continue
                n = None
                while True:
                    h = r.readline().strip()
                    if not h:
                        break
                    k, _, v = h.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                if n is None:
                    break
                data = r.read(n)
                t = time.monotonic()
                seq += 1
                with cond:
                    received += 1
                    if latest is not None:
                        dropped += 1
                    latest = (seq, t, data)
                    cond.notify()
        except OSError:
            time.sleep(0.1)


threading.Thread(target=grab, daemon=True).start()
it = Interpreter(model_path=model, num_threads=threads)
it.allocate_tensors()
inp = it.get_input_details()[0]
outs = it.get_output_details()
H, W = inp["shape"][1], inp["shape"][2]
host, _, port = broker.partition(":")
mq = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="python-loop")
mq.connect(host, int(port))
mq.loop_start()

lat = []
processed = 0
start = time.monotonic()
measuring = False
r0 = d0 = 0
cpu0 = 0.0
while True:
    with cond:
        while latest is None:
            cond.wait()
        seq, t_cap, data = latest
        latest = None
    now = time.monotonic()
    if not measuring and now - start >= warmup:
        measuring = True
        with cond:
            r0, d0 = received, dropped
        tm = os.times()
        cpu0 = tm.user + tm.system
        m0 = now
    if measuring and now - m0 >= seconds:
        break
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (W, H))
    img = img.convert("RGB")
    ow, oh = img.size
    x = np.asarray(img.resize((W, H), Image.BILINEAR), dtype=np.uint8)[None]
    it.set_tensor(inp["index"], x)
    it.invoke()
    boxes, classes, scores, count = (it.get_tensor(o["index"]) for o in outs[:4])
    dets = []
    for i in range(int(count[0])):
        if scores[0][i] >= 0.5:
            y0, x0, y1, x1 = boxes[0][i]
            dets.append({"class": int(classes[0][i]) + 1, "score": float(scores[0][i]),
                         "box": [float(x0) * ow, float(y0) * oh, float(x1) * ow, float(y1) * oh]})
    payload = json.dumps({"seq": seq, "detections": dets})
    mq.publish(topic, payload, qos=0)
    if measuring:
        lat.append(time.monotonic() - t_cap)
        processed += 1
tm = os.times()
cpu = tm.user + tm.system - cpu0
with cond:
    rec, drop = received - r0, dropped - d0
lat.sort()
print(json.dumps({"seconds": seconds, "received": rec, "processed": processed, "dropped": drop,
                  "p50_ms": 1000 * lat[len(lat) // 2] if lat else 0,
                  "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0,
                  "cpu_s": cpu}))
mq.loop_stop()
os._exit(0)
