"""Times pymicro-wakeword (okay_nabu) on a 16 kHz mono WAV in 10 ms chunks, as its streaming
API is used: features, then the model on every feature frame (it runs the interpreter on
every third). Prints one JSON line: chunks, seconds, per-chunk latency percentiles, detections.

usage: bench.py CLIP.wav
"""
import json
import sys
import time
import wave

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

with wave.open(sys.argv[1], "rb") as w:
    pcm = w.readframes(w.getnframes())
mww = MicroWakeWord.from_builtin(Model.OKAY_NABU)
feats = MicroWakeWordFeatures()
n = len(pcm) // 320
lat = []
dets = 0
t0 = time.perf_counter()
for i in range(n):
    c0 = time.perf_counter()
    for f in feats.process_streaming(pcm[i * 320:(i + 1) * 320]):
        if mww.process_streaming(f):
            dets += 1
    lat.append(time.perf_counter() - c0)
total = time.perf_counter() - t0
lat.sort()
print(json.dumps({"chunks": n, "seconds": total, "p50": lat[n // 2], "p99": lat[int(n * 0.99)], "detections": dets}))
