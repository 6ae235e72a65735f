"""Runs pymicro-wakeword (okay_nabu) over each WAV clip in 10 ms chunks, as its own
streaming API is used, and writes per chunk what edgehost's wakeword pipeline reports with
report = "all": the quantised feature frame, whether the model ran, its raw uint8 output,
the windowed probability and the detection (CLIP.ref.jsonl beside CLIP.wav).

usage: reference.py DIR
"""
import glob
import json
import sys
import wave

import numpy as np
from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

for path in sorted(glob.glob(sys.argv[1] + "/*.wav")):
    with wave.open(path, "rb") as w:
        pcm = w.readframes(w.getnframes())
    mww = MicroWakeWord.from_builtin(Model.OKAY_NABU)
    feats = MicroWakeWordFeatures()
    lines = []
    for i in range(len(pcm) // 320):
        rec = {"chunk": i + 1, "feature": False, "inferred": False, "output": -1, "probability": None,
               "detected": False, "features": []}
        for f in feats.process_streaming(pcm[i * 320:(i + 1) * 320]):
            assert not rec["feature"], "two feature frames from one 10 ms chunk"
            q = np.round(f / mww.input_scale + mww.input_zero_point).astype(mww.input_dtype)
            before = len(mww._probabilities)
            prob = mww.process_streaming_prob(f)
            inferred = len(mww._features) == 0
            rec.update(feature=True, inferred=inferred, probability=prob, detected=prob > mww.probability_cutoff,
                       features=[int(v) for v in q.reshape(-1)])
            if inferred:
                p = mww._probabilities[-1]
                rec["output"] = int(round(p / mww.output_scale + mww.output_zero_point))
                assert len(mww._probabilities) >= min(before + 1, mww.sliding_window_size)
        lines.append(json.dumps(rec))
    with open(path[:-4] + ".ref.jsonl", "w") as out:
        out.write("\n".join(lines) + "\n")
    print(path, sum(json.loads(l)["detected"] for l in lines), "detections")
