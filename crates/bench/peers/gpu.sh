#!/usr/bin/env bash
# The compute issue's GPU measurements as one prepared command, for a machine with an NVIDIA GPU,
# PyTorch in its Python and no Rust toolchain (the device hosts some sessions are lent):
#
#   here:   CARGO_TARGET_DIR=target-cuda cargo build --release --locked -p xtask --features cuda
#   there:  bash crates/bench/peers/gpu.sh            (from the repository root, target-cuda/release/xtask
#                                               carried; about 5 minutes on an H200)
#
# It prints the CUDA tiny-configuration loss against the CPU's (1e-4), the fused kernels' CUDA
# path against the decomposed one, and ViT-B/16 8-frame training throughput in f32, bf16 and
# with checkpointing against PyTorch AMP (bf16), with peak memory and MFU; a copy goes to
# $OUT/gpu-bench.txt when $OUT is set.
set -euo pipefail
xtask=${T4V_XTASK:-target-cuda/release/xtask}
[[ -x $xtask ]] || { echo "no CUDA build at $xtask (build it with --features cuda first)" >&2; exit 2; }
export T4V_PYTHON=${T4V_PYTHON:-$(command -v python3)}
export T4V_BENCH_ROUNDS=${T4V_BENCH_ROUNDS:-3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$T4V_PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
out=${OUT:-.}/gpu-bench.txt
{ date -u +%FT%TZ; timeout 450 "$xtask" bench train; } 2>&1 | tee "$out"
