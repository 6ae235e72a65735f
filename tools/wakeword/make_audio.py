"""Makes the wake-word test clips, reproducibly: espeak-ng (Debian 1.51) speaks a phrase in a
voice at a speed (22,050 Hz), numpy resamples it once to 16 kHz (a fixed windowed-sinc
filter), pads it with silence and adds seeded Gaussian noise at a level. Each clip is
written as 16 kHz mono s16le WAV; edgehost and pymicro-wakeword both read that same file.

usage: make_audio.py ESPEAK_NG ESPEAK_DATA OUT_DIR
"""
import os
import subprocess
import sys
import wave

import numpy as np

WAKE = "okay nabu. what is the weather. okay nabu"
OTHER = "turn on the kitchen lights and play some music"
# (name, text, voice, words per minute, noise level as a fraction of full scale)
CLIPS = [
    ("nabu-en-us-120", WAKE, "en-us", 120, 0.0),
    ("nabu-en-gb-120", WAKE, "en-gb", 120, 0.0),
    ("nabu-en-us-f3-120", WAKE, "en-us+f3", 120, 0.0),
    ("nabu-en-us-150", WAKE, "en-us", 150, 0.0),
    ("nabu-en-us-120-noise1", WAKE, "en-us", 120, 0.01),
    ("nabu-en-gb-120-noise3", WAKE, "en-gb", 120, 0.03),
    ("other-en-us-120", OTHER, "en-us", 120, 0.0),
    ("other-en-us-120-noise3", OTHER, "en-us", 120, 0.03),
    ("silence-noise1", "", "", 0, 0.01),
]


def resample(x, src, dst, half=32):
    """Windowed-sinc resampling of float64 samples from src Hz to dst Hz."""
    n_out = int(len(x) * dst // src)
    cutoff = min(1.0, dst / src) * 0.95
    t = np.arange(n_out, dtype=np.float64) * (src / dst)
    base = np.floor(t).astype(np.int64)
    out = np.zeros(n_out)
    for k in range(-half + 1, half + 1):
        idx = base + k
        d = t - idx
        h = cutoff * np.sinc(cutoff * d) * (0.5 + 0.5 * np.cos(np.pi * d / half))
        ok = (idx >= 0) & (idx < len(x))
        out[ok] += x[idx[ok]] * h[ok]
    return out


def speak(espeak, data, text, voice, wpm, tmp):
    env = dict(os.environ)
    subprocess.run([espeak, "--path=" + data, "-v", voice, "-s", str(wpm), "-w", tmp, text], check=True, env=env)
    with wave.open(tmp, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "espeak-ng wrote an unexpected format"
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return resample(pcm, rate, 16000)


def main():
    espeak, data, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    for i, (name, text, voice, wpm, noise) in enumerate(CLIPS):
        x = speak(espeak, data, text, voice, wpm, os.path.join(out, "tmp.wav")) if text else np.zeros(3 * 16000)
        x = np.concatenate([np.zeros(8000), x, np.zeros(16000)])
        if noise:
            x = x + np.random.default_rng(1000 + i).normal(0.0, noise * 32767.0, len(x))
        pcm = np.clip(np.round(x), -32768, 32767).astype("<i2")
        with wave.open(os.path.join(out, name + ".wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm.tobytes())
    os.remove(os.path.join(out, "tmp.wav"))


main()
