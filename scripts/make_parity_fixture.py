#!/usr/bin/env python3
"""Writes the parity fixture of crates/u2ad-model: a small reference model's state_dict and the
outputs of the reference forward pass and loss for a fixed input, mask and ROI.

The model re-implements the reference UGMAE (zhibaishouheilab/U2AD, model/UGMAE.py) in plain
torch with timm 0.6.5 `Block` semantics and the same parameter names (pre-norm, qkv bias,
exact GELU, nn.LayerNorm eps 1e-5, no dropout/drop-path/layer scale), MAE's 2-D sin-cos position
embeddings and initialisation, and the reference's ids_shuffle/ids_restore masking mechanics.
Its unused `rec_blocks`/`edge_blocks` and a Sobel `operator` are kept so that their keys appear
in the state_dict, as in real reference checkpoints. Every parameter is perturbed after the
MAE initialisation so that zero biases or unit LayerNorm weights cannot hide a mapping error.

Outputs (crates/u2ad-model/tests/fixtures/):
  parity_state_dict.pth  torch.save(model.state_dict())
  parity_io.pth          dict of tensors: images [2,1,32,32], roi [2,1,32,32], mask [2,16]
                         (1 = masked), image_patches / edge_patches [2,16,64] (rec and edge
                         heads), rec_loss, edge_loss (reference loss terms, epoch >= 1)

Usage: python3 scripts/make_parity_fixture.py   (needs torch and numpy)
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 2025
CONFIG = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
              decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "u2ad-model", "tests", "fixtures")


# --- MAE util/pos_embed.py -------------------------------------------------------------------
def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    pos_embed = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed


# --- timm 0.6.5 vision_transformer ------------------------------------------------------------
class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Sobel(nn.Module):
    """min(1, sqrt(Gx^2 + Gy^2)) with replicate padding (parameters frozen)."""

    def __init__(self):
        super().__init__()
        gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        gy = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
        self.conv = nn.Conv2d(1, 2, 3, bias=False)
        self.conv.weight = nn.Parameter(torch.stack([gx, gy]).unsqueeze(1), requires_grad=False)

    def forward(self, x):
        g = self.conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        return torch.clamp(torch.sqrt(g[:, :1] ** 2 + g[:, 1:] ** 2), max=1.0)


# --- the reference UGMAE (forward pass and losses) ---------------------------------------------
class UGMAE(nn.Module):
    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, decoder_embed_dim,
                 decoder_depth, decoder_num_heads, mlp_ratio, rec_depth=3, edge_depth=3):
        super().__init__()
        norm_layer = nn.LayerNorm
        self.patch_embed = PatchEmbed(img_size, patch_size, 1, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.H = self.W = img_size // patch_size
        self.patch_size = patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(decoder_depth)])
        self.rec_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(rec_depth)])
        self.edge_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(edge_depth)])
        self.rec_norm = norm_layer(decoder_embed_dim)
        self.rec_pred = nn.Linear(decoder_embed_dim, patch_size ** 2, bias=True)
        self.edge_norm = norm_layer(decoder_embed_dim)
        self.edge_pred = nn.Linear(decoder_embed_dim, patch_size ** 2, bias=True)
        self.operator = Sobel()
        self.initialize_weights()

    def initialize_weights(self):
        g = int(self.patch_embed.num_patches ** 0.5)
        self.pos_embed.data.copy_(torch.from_numpy(get_2d_sincos_pos_embed(self.pos_embed.shape[-1], g, cls_token=True)).float().unsqueeze(0))
        self.decoder_pos_embed.data.copy_(torch.from_numpy(get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], g, cls_token=True)).float().unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        torch.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        torch.nn.init.normal_(self.cls_token, std=0.02)
        torch.nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def patchify(self, imgs):
        p = self.patch_size
        h = w = imgs.shape[2] // p
        x = imgs.reshape(shape=(imgs.shape[0], 1, h, p, w, p))
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(shape=(imgs.shape[0], h * w, p ** 2))

    def forward_encoder(self, x, ids_shuffle, len_keep):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        N, L, D = x.shape
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L])
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x_rec = torch.sigmoid(self.rec_pred(self.rec_norm(x)))
        x_edge = torch.sigmoid(self.edge_pred(self.edge_norm(x)))
        return x_edge[:, 1:, :], x_rec[:, 1:, :]

    def structure_loss(self, mask):
        # The reference's `epoch > 0.5 * epoch` branch, i.e. any epoch >= 1.
        weit = mask.reshape(mask.shape[0], self.H, self.W)
        weit = 1 + torch.abs(F.avg_pool2d(weit, kernel_size=3, stride=1, padding=1))
        weit = weit.repeat_interleave(self.patch_size, dim=1).repeat_interleave(self.patch_size, dim=2)
        return weit.unsqueeze(1)

    def masked_loss(self, target, pred, mask, weit):
        loss = ((pred - target) ** 2) * self.patchify(weit)
        loss = loss.mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, label, ids_shuffle, len_keep):
        M = self.patchify(label)
        target = self.patchify(imgs)
        latent, mask, ids_restore = self.forward_encoder(imgs, ids_shuffle, len_keep)
        x_edge, x_rec = self.forward_decoder(latent, ids_restore)
        edge_target = self.patchify(self.operator(imgs))
        x_edge_b = x_edge * M + edge_target * (1 - M)
        x_rec_b = x_rec * M + target * (1 - M)
        weit = self.structure_loss(mask)
        rec_loss = self.masked_loss(target, x_rec_b, mask, weit)
        edge_loss = self.masked_loss(edge_target, x_edge_b, mask, weit)
        return x_rec, x_edge, mask, rec_loss, edge_loss


def main():
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    model = UGMAE(**CONFIG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))

    n, side = 2, CONFIG["img_size"]
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(xx / 3.0) * torch.cos(yy / 5.0)
    images = torch.stack([base, base.flip(1) * 0.8 + 0.1]).unsqueeze(1)
    images = (images + 0.05 * torch.rand(images.shape)).clamp(0, 1)
    roi = torch.zeros(n, 1, side, side)
    roi[0, 0, 4:28, 10:22] = 1.0   # grid columns 1..2, all rows: 8 ROI patches
    roi[1, 0, 2:30, 6:26] = 1.0    # grid columns 0..3, all rows: 16 ROI patches

    # The same number masked in both images (the reference keeps one count per batch),
    # different patches; visible tokens enter the encoder in a shuffled order.
    L = (side // CONFIG["patch_size"]) ** 2
    masked = [[1, 2, 5, 6, 9, 13], [0, 3, 7, 10, 12, 15]]
    mask_in = torch.zeros(n, L)
    for b, ids in enumerate(masked):
        mask_in[b, ids] = 1.0
    noise = torch.rand(n, L)
    ids_shuffle = torch.argsort(mask_in * 2.0 + noise, dim=1)
    len_keep = L - len(masked[0])

    with torch.no_grad():
        x_rec, x_edge, mask, rec_loss, edge_loss = model(images, roi, ids_shuffle, len_keep)
    assert torch.equal(mask, mask_in)

    os.makedirs(OUT, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(OUT, "parity_state_dict.pth"))
    io = {
        "images": images.contiguous(),
        "roi": roi.contiguous(),
        "mask": mask_in.contiguous(),
        "image_patches": x_rec.contiguous(),
        "edge_patches": x_edge.contiguous(),
        "rec_loss": rec_loss.reshape(1),
        "edge_loss": edge_loss.reshape(1),
    }
    torch.save(io, os.path.join(OUT, "parity_io.pth"))
    print(f"rec_loss {rec_loss.item():.8f} edge_loss {edge_loss.item():.8f}")
    print("state_dict keys:", len(model.state_dict()))


if __name__ == "__main__":
    main()
