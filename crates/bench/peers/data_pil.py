#!/usr/bin/env python3
"""Python peer of `cargo xtask bench data`: the same training-clip work with PIL and numpy
(the usual PyTorch-style pipeline) on the same JPEG folders, in a process pool of the same
size. Per clip: TSN-sample 8 frames, decode, resize shorter side to 256 (bicubic), one random
resized crop (Inception) shared by the frames, resize to 224 (bilinear), flip p=0.5,
grayscale p=0.2, normalise with CLIP's mean/std to float32 [T, 3, 224, 224].

    python data_pil.py ROOT WORKERS EPOCHS  → prints {"clips_per_s": ...}
"""

import json
import math
import os
import random
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(1, 3, 1, 1)
T = 8


def tsn(n, t, rng):
    ticks = [i * n // t for i in range(t + 1)]
    return [ticks[i] + rng.randrange(max(ticks[i + 1] - ticks[i], 1)) for i in range(t)]


def crop_params(w, h, rng):
    area = w * h
    for _ in range(10):
        a = area * rng.uniform(0.08, 1.0)
        r = rng.uniform(3 / 4, 4 / 3)
        cw, ch = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if rng.random() < 0.5:
            cw, ch = ch, cw
        if cw <= w and ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    s = min(w, h)
    return (w - s) // 2, (h - s) // 2, s, s


def clip(args):
    folder, seed = args
    rng = random.Random(seed)
    names = sorted(os.listdir(folder))
    frames = [Image.open(os.path.join(folder, names[i])).convert("RGB") for i in tsn(len(names), T, rng)]
    w, h = frames[0].size
    s = 256 / min(w, h)
    frames = [f.resize((round(w * s), round(h * s)), Image.BICUBIC) for f in frames]
    x, y, cw, ch = crop_params(*frames[0].size, rng)
    flip, gray = rng.random() < 0.5, rng.random() < 0.2
    out = []
    for f in frames:
        f = f.crop((x, y, x + cw, y + ch)).resize((224, 224), Image.BILINEAR)
        if flip:
            f = f.transpose(Image.FLIP_LEFT_RIGHT)
        if gray:
            f = f.convert("L").convert("RGB")
        out.append(np.asarray(f, dtype=np.float32))
    a = np.stack(out).transpose(0, 3, 1, 2) / 255.0
    return ((a - MEAN) / STD).astype(np.float32).shape


if __name__ == "__main__":
    root, workers, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    folders = sorted(os.path.join(root, d) for d in os.listdir(root))
    jobs = [(f, e * 100003 + i) for e in range(epochs) for i, f in enumerate(folders)]
    with Pool(workers) as pool:
        pool.map(clip, jobs[: workers * 2])  # warm-up
        t = time.perf_counter()
        n = len(pool.map(clip, jobs, chunksize=4))
        took = time.perf_counter() - t
    print(json.dumps({"clips_per_s": n / took, "clips": n, "workers": workers}))
