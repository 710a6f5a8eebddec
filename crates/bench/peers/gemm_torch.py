#!/usr/bin/env python3
"""Peers of `cargo xtask bench gemm`: PyTorch's `x @ w.T` for each shape (w stored [n, k], as a
linear layer's weight; MKL on the CPU), and numpy's `x @ w` with the OpenBLAS its wheel bundles
(a maintained BLAS, as a Rust binding would call it), f32.

argv: threads shapes-json rounds. Prints one JSON line: {"gflops": [[per round] per shape],
"openblas": [[per round] per shape] or null, "torch": ..., "numpy": ...}."""

import json
import os
import sys
import time

threads = int(sys.argv[1])
# OpenBLAS reads its thread count when it loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))

import torch  # noqa: E402

try:
    import numpy as np  # noqa: E402
except ImportError:
    np = None


shapes = json.loads(sys.argv[2])
rounds = int(sys.argv[3])
torch.set_num_threads(threads)


def rates(m, k, n, product):
    for _ in range(3):
        product()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(10):
            product()
        out.append(10 * 2 * m * n * k / (time.perf_counter() - t) / 1e9)
    return out


out, blas = [], []
for m, k, n in shapes:
    x, w = torch.randn(m, k), torch.randn(n, k)
    out.append(rates(m, k, n, lambda: x @ w.t()))
    if np is not None:
        a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
        blas.append(rates(m, k, n, lambda: a @ b))
print(
    json.dumps(
        {
            "gflops": out,
            "openblas": blas if np is not None else None,
            "torch": torch.__version__,
            "numpy": np.__version__ if np is not None else None,
        }
    )
)
