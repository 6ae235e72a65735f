"""Make the benchmark's 12-megapixel camera-like frame from the bundled ssd_example.jpg.

Centre crop to 4:3, Lanczos upscale to 4032x3024, add fixed-seed sensor-like noise (so the
entropy-coded data is as dense as a real camera JPEG's, not a smooth upscale's), save as a
baseline 4:2:0 JPEG at quality 90. Deterministic for the pinned Pillow and numpy.

With --progressive the same pixels are saved as a progressive JPEG (libjpeg's default scan
script, as `jpegtran -progressive` and most of the web's progressive JPEGs use), otherwise
with the same settings.

usage: python make_frame.py SRC.jpg OUT.jpg [--progressive]
"""
import sys

import numpy as np
from PIL import Image

W, H = 4032, 3024


def main(src, out, progressive=False):
    im = Image.open(src).convert("RGB")
    sw, sh = im.size
    cw = sh * W // H  # 4:3 crop width
    left = (sw - cw) // 2
    im = im.crop((left, 0, left + cw, sh)).resize((W, H), Image.Resampling.LANCZOS)
    a = np.asarray(im, dtype=np.int16)
    noise = np.random.default_rng(12).normal(0.0, 4.0, size=a.shape).round().astype(np.int16)
    a = np.clip(a + noise, 0, 255).astype(np.uint8)
    Image.fromarray(a, "RGB").save(out, "JPEG", quality=90, subsampling=2, optimize=False, progressive=progressive)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or len(sys.argv) == 4 and sys.argv[3] != "--progressive":
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], len(sys.argv) == 4)
