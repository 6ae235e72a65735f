"""Make the benchmark's 12-megapixel camera-like frame from the bundled ssd_example.jpg.

Centre crop to 4:3, Lanczos upscale to 4032x3024, add fixed-seed sensor-like noise (so the
entropy-coded data is as dense as a real camera JPEG's, not a smooth upscale's), save as a
baseline 4:2:0 JPEG at quality 90. Deterministic for the pinned Pillow and numpy.

usage: python make_frame.py SRC.jpg OUT.jpg
"""
import sys

import numpy as np
from PIL import Image

W, H = 4032, 3024


def main(src, out):
    im = Image.open(src).convert("RGB")
    sw, sh = im.size
    cw = sh * W // H  # 4:3 crop width
    left = (sw - cw) // 2
    im = im.crop((left, 0, left + cw, sh)).resize((W, H), Image.Resampling.LANCZOS)
    a = np.asarray(im, dtype=np.int16)
    noise = np.random.default_rng(12).normal(0.0, 4.0, size=a.shape).round().astype(np.int16)
    a = np.clip(a + noise, 0, 255).astype(np.uint8)
    Image.fromarray(a, "RGB").save(out, "JPEG", quality=90, subsampling=2, optimize=False, progressive=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
