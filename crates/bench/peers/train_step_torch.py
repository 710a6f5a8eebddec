#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench train`: one training step of the paper's video classifier
on the CPU, as the reference code builds it — a CLIP ViT-B/16 image tower (transformers
`CLIPVisionModel` shapes, random weights) on every frame, the visual projection, the Transf
temporal head (6 pre-LN blocks of width 512, 8 heads, QuickGELU MLP, LayerNorm eps 1e-12,
77 frame positions, outer residual, mean over time), and a frozen cosine classifier over 400
classes with the learnable logit scale; cross-entropy, backward, AdamW step.

argv: threads steps batch frames [cuda]. With `cuda`, on the GPU with autocast to bf16 (AMP).
Prints one JSON line: {"clips_per_s": [per step], "peak_gb": ..., "threads": ..., "torch": ...}."""

import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPConfig, CLIPModel

from transf_torch import Transf


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    frames = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    cuda = len(sys.argv) > 5 and sys.argv[5] == "cuda"
    dev = torch.device("cuda" if cuda else "cpu")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = CLIPConfig()
    cfg.vision_config.patch_size = 16
    clip = CLIPModel(cfg)
    vision, proj = clip.vision_model, clip.visual_projection
    d = cfg.projection_dim
    head = Transf(d)
    vision, proj, head = vision.to(dev), proj.to(dev), head.to(dev)
    w = F.normalize(torch.randn(400, d, device=dev), dim=-1)  # frozen W
    logit_scale = nn.Parameter(torch.tensor(100.0, device=dev).log())
    params = list(vision.parameters()) + list(proj.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(
        [{"params": params}, {"params": [logit_scale]}], lr=5e-6, weight_decay=0.2
    )
    x = torch.randn(batch, frames, 3, 224, 224, device=dev)
    y = torch.arange(batch, device=dev) % 400

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            feats = proj(vision(pixel_values=x.flatten(0, 1)).pooler_output)
            v = head(feats.view(batch, frames, d))
            logits = logit_scale.exp() * F.normalize(v.float(), dim=-1) @ w.t()
            loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        rates.append(batch / (time.perf_counter() - t))
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
    print(json.dumps({"clips_per_s": rates, "peak_gb": peak, "threads": threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
