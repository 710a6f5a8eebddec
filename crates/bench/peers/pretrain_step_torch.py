#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench pretrain`: the quickstart's pretraining step — a
transformers `CLIPModel` of the given config (2 blocks of width 64 per tower, 32² images in
4-pixel patches, 16-token captions), random weights, 96 caption/video pairs of 2 frames (a
video is the mean of its frames' embeddings), CLIP's symmetric InfoNCE with the learnable
temperature clamped at 100, AdamW — on the CPU.

argv: threads config-dir rounds steps. Prints one JSON line: {"ms_per_step": [per round],
"torch": ...}."""

import json
import sys
import time

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel

threads = int(sys.argv[1])
config = CLIPConfig.from_pretrained(sys.argv[2])
rounds, steps = int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = CLIPModel(config)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1, eps=1e-8)
n, frames = 96, 2
pixels = torch.randn(n * frames, 3, 32, 32)
ids = torch.zeros(n, 16, dtype=torch.long)
for i in range(n):
    words = 3 + i % 4
    row = [2] + [4 + (i * 7 + w * 5) % 24 for w in range(words)] + [3]
    ids[i, : len(row)] = torch.tensor(row)
y = torch.arange(n)
max_scale = torch.tensor(100.0).log()


def step():
    v = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    v = v.view(n, frames, -1).mean(1)
    t = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    v, t = F.normalize(v, dim=-1), F.normalize(t, dim=-1)
    logits = model.logit_scale.clamp(max=max_scale).exp() * v @ t.t()
    loss = (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y)) / 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


step()  # warm-up
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    times.append(1000 * (time.perf_counter() - t0) / steps)
print(json.dumps({"ms_per_step": times, "torch": torch.__version__}))
