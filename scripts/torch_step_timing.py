#!/usr/bin/env python3
"""Training throughput of the reference model in plain torch, for scripts/gpu-check.sh.

The model is the plain-torch port of the reference UGMAE in make_parity_fixture.py, at the paper
configuration (256 x 256, patch 8, encoder 128 x 12 with 16 heads, decoder 64 x 8 with 8 heads).
One step is what the reference's training loop does: forward with the ROI-only masking (the
masked patches are dropped from the encoder), both masked losses, backward and an AdamW step.
Prints one line per batch size: `torch batch B: S slices/s (N steps, T s)`.

Usage: python3 scripts/torch_step_timing.py --device cuda --batch 10 --batch 64 [--masked 96]
       (needs torch 2 and numpy; `--masked` is the number of masked patches per slice, 75 % of a
       typical slice's ROI patches)
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from make_parity_fixture import UGMAE  # noqa: E402

PAPER = dict(img_size=256, patch_size=8, embed_dim=128, depth=12, num_heads=16,
             decoder_embed_dim=64, decoder_depth=8, decoder_num_heads=8, mlp_ratio=4.0)


def time_batch(model, optimizer, batch, masked, steps, device):
    side = PAPER["img_size"]
    patches = (side // PAPER["patch_size"]) ** 2
    images = torch.rand(batch, 1, side, side, device=device)
    roi = torch.zeros(batch, 1, side, side, device=device)
    roi[:, :, :, 112:144] = 1.0
    len_keep = patches - masked

    def step():
        ids_shuffle = torch.argsort(torch.rand(batch, patches, device=device), dim=1)
        _, _, _, rec_loss, edge_loss = model(images, roi, ids_shuffle, len_keep)
        loss = rec_loss + edge_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(3):  # warm-up: kernels, allocator
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return batch * steps / seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, action="append", required=True)
    parser.add_argument("--masked", type=int, default=96)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    # The port makes its mask with a bare torch.ones: every tensor is made on the device.
    torch.set_default_device(device)
    torch.manual_seed(0)
    model = UGMAE(**PAPER).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    for batch in args.batch:
        rate, seconds = time_batch(model, optimizer, batch, args.masked, args.steps, device)
        print(f"torch batch {batch}: {rate:.1f} slices/s ({args.steps} steps, {seconds:.2f} s)")


if __name__ == "__main__":
    main()
