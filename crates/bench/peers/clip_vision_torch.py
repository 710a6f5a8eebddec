#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench clip`: the CLIP image tower (transformers `CLIPModel`,
ViT-B/32 config, random weights) on a batch of 8 images of 224², fp32, CPU.

argv: threads rounds. Prints one JSON line: {"ms_per_image": [one per round], "threads": ...,
"torch": ...}."""

import json
import sys
import time

import torch
from transformers import CLIPConfig, CLIPModel

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
batch = 8
torch.set_num_threads(threads)
torch.manual_seed(0)
model = CLIPModel(CLIPConfig()).eval()  # defaults = openai/clip-vit-base-patch32 shapes
pixels = torch.randn(batch, 3, 224, 224)
times = []
with torch.no_grad():
    def encode():
        return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)

    encode()  # warm-up
    for _ in range(rounds):
        t = time.perf_counter()
        encode()
        times.append(1000 * (time.perf_counter() - t) / batch)
print(json.dumps({"ms_per_image": times, "threads": threads, "torch": torch.__version__}))
