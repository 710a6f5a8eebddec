#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench clip`: the CLIP image tower (transformers `CLIPModel`,
ViT-B/32 config, random weights) on a batch of 8 images of 224², fp32, CPU, with the thread
count given. Prints one JSON line: {"ms_per_image": ..., "threads": ..., "torch": ...}."""

import json
import sys
import time

import torch
from transformers import CLIPConfig, CLIPModel

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 3
batch = 8
torch.set_num_threads(threads)
torch.manual_seed(0)
model = CLIPModel(CLIPConfig()).eval()  # defaults = openai/clip-vit-base-patch32 shapes
pixels = torch.randn(batch, 3, 224, 224)
with torch.no_grad():
    model.get_image_features(pixel_values=pixels)  # warm-up
    t = time.perf_counter()
    for _ in range(iters):
        model.get_image_features(pixel_values=pixels)
    took = time.perf_counter() - t
print(json.dumps({"ms_per_image": 1000 * took / (iters * batch), "threads": threads,
                  "torch": torch.__version__}))
