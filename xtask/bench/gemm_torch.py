#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench gemm`: `x @ w.T` for each shape (w stored [n, k], as a
linear layer's weight), f32, CPU (MKL).

argv: threads shapes-json rounds. Prints one JSON line: {"gflops": [[per round] per shape],
"torch": ...}."""

import json
import sys
import time

import torch

threads = int(sys.argv[1])
shapes = json.loads(sys.argv[2])
rounds = int(sys.argv[3])
torch.set_num_threads(threads)
out = []
for m, k, n in shapes:
    x, w = torch.randn(m, k), torch.randn(n, k)
    for _ in range(3):
        x @ w.t()
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(10):
            x @ w.t()
        rates.append(10 * 2 * m * n * k / (time.perf_counter() - t) / 1e9)
    out.append(rates)
print(json.dumps({"gflops": out, "torch": torch.__version__}))
