"""The reference's Transf temporal head in PyTorch, shared by the peers of `bench train` and
`bench probe`: 6 pre-LN blocks (CLIP's ResidualAttentionBlock: LayerNorm eps 1e-12, attention
with width / 64 heads, at least one, QuickGELU MLP), 77 frame positions, an outer residual and
the mean over time."""

import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d, eps=1e-12)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), QuickGELU(), nn.Linear(4 * d, d))
        self.ln_2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transf(nn.Module):
    def __init__(self, d, layers=6):
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(77, d)
        self.blocks = nn.Sequential(*[Block(d, max(d // 64, 1)) for _ in range(layers)])

    def forward(self, x):  # [B, T, D]
        pos = self.frame_position_embeddings(torch.arange(x.shape[1], device=x.device))
        h = (x + pos).permute(1, 0, 2)  # [T, B, D], as nn.MultiheadAttention takes it
        h = self.blocks(h).permute(1, 0, 2)
        return (h + x).mean(dim=1)
