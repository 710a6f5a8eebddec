#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench probe`: one probe run of the paper's head on cached frame
features — the Transf head (6 pre-LN blocks of width 64 with 1 head, QuickGELU MLP, LayerNorm
eps 1e-12, frame positions, outer residual, mean over time) and a frozen cosine classifier of
48 classes, trained 30 epochs on 1,152 videos × 8 frames in batches of 256 with AdamW,
validated on 384 videos after every epoch — on the CPU.

argv: threads runs. Prints one JSON line: {"s_per_run": [per run], "torch": ...}."""

import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from transf_torch import Transf


def one_run(seed):
    torch.manual_seed(seed)
    n, t, d, c, test = 1152, 8, 64, 48, 384
    x, y = torch.randn(n, t, d), torch.randint(0, c, (n,))
    xt, yt = torch.randn(test, t, d), torch.randint(0, c, (test,))
    head = Transf(d)
    w = F.normalize(torch.randn(c, d), dim=-1)
    scale = nn.Parameter(torch.tensor(100.0).log())
    opt = torch.optim.AdamW(list(head.parameters()) + [scale], lr=1e-3, weight_decay=0.2)
    for epoch in range(30):
        order = torch.randperm(n)
        for i in range(0, n, 256):
            idx = order[i : i + 256]
            logits = scale.exp() * F.normalize(head(x[idx]), dim=-1) @ w.t()
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (F.normalize(head(xt), dim=-1) @ w.t()).argmax(1).eq(yt).float().mean()
    return acc.item()


threads = int(sys.argv[1])
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
torch.set_num_threads(threads)
times = []
for r in range(runs):
    t0 = time.perf_counter()
    one_run(r)
    times.append(time.perf_counter() - t0)
print(json.dumps({"s_per_run": times, "torch": torch.__version__}))
