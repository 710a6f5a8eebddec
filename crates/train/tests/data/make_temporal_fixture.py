#!/usr/bin/env python3
"""Reference outputs of the "Transf" temporal head (REFERENCE.md §1.2) for `tests/temporal.rs`,
written from that description in PyTorch: frame position embedding (77 × D), pre-LN blocks with
`nn.MultiheadAttention` (no mask), LayerNorm eps 1e-12, QuickGELU MLP 4×, outer residual, mean
over time. Weights from a seeded numpy generator, saved under the Rust names (the fused
`in_proj` split into q/k/v). D = 64 with 4 heads and 2 blocks keeps the file small while
exercising multi-head attention.

    /opt/t4v-ref/bin/python crates/train/tests/data/make_temporal_fixture.py
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

D, HEADS, LAYERS, B, T = 64, 4, 2, 3, 8


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D, eps=1e-12)
        self.attn = nn.MultiheadAttention(D, HEADS)
        self.ln_2 = nn.LayerNorm(D, eps=1e-12)
        self.c_fc = nn.Linear(D, 4 * D)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(4 * D, D)

    def forward(self, x):  # x: [T, B, D]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(77, D)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])

    def forward(self, x):  # x: [B, T, D]
        x_orig = x
        x = x + self.frame_position_embeddings(torch.arange(x.shape[1]))[None]
        x = x.permute(1, 0, 2)
        for b in self.blocks:
            x = b(x)
        x = x.permute(1, 0, 2) + x_orig
        return x.mean(1)


head = Head().eval()
rng = np.random.default_rng(11)
state = head.state_dict()
new = {}
for name in sorted(state):
    n = rng.standard_normal(tuple(state[name].shape)).astype(np.float32)
    if "ln_" in name and name.endswith("weight"):
        v = 1.0 + 0.1 * n
    elif name.endswith("bias"):
        v = 0.05 * n
    elif state[name].dim() == 2 and "embeddings" not in name:
        v = n / np.sqrt(state[name].shape[1])
    else:
        v = 0.3 * n
    new[name] = torch.from_numpy(v)
head.load_state_dict(new)

x = torch.from_numpy(rng.standard_normal((B, T, D)).astype(np.float32))
with torch.no_grad():
    y = head(x)

out = {"temporal.frame_position_embeddings.weight": new["frame_position_embeddings.weight"]}
for i in range(LAYERS):
    s, d = f"blocks.{i}.", f"temporal.encoder.layers.{i}."
    for k, q in enumerate("qkv"):
        out[d + f"self_attn.{q}_proj.weight"] = new[s + "attn.in_proj_weight"][k * D:(k + 1) * D]
        out[d + f"self_attn.{q}_proj.bias"] = new[s + "attn.in_proj_bias"][k * D:(k + 1) * D]
    for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                 ("c_fc", "mlp.fc1"), ("c_proj", "mlp.fc2")):
        for p in ("weight", "bias"):
            out[d + f"{b}.{p}"] = new[s + f"{a}.{p}"]
here = os.path.dirname(os.path.abspath(__file__))
save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(here, "transf_head.safetensors"))
save_file({"x": x, "y": y}, os.path.join(here, "transf_head_io.safetensors"))
print("y[0, :4]", y[0, :4].tolist())
