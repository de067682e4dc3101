#!/usr/bin/env python3
"""A teacher made in PyTorch for the round-trip test (tests/cli/pytorch_roundtrip_test.cpp).

Builds a small convolutional classifier (seeded), trains it for a few steps on the image folder
the C++ test wrote (PNG files read with Python's zlib, no other dependency), and saves it with
`torch.jit.save` as TorchScript. It follows metadistill's tap convention for multi-layer
distillation: a method `features(x) -> Dict[str, Tensor]` (exported with @torch.jit.export)
returning named intermediate outputs in forward order.

It also writes the same random logits two ways, `sample_logits.pt` (torch.save) and
`sample_logits.npy` (numpy.save, float32), so that the C++ side checks that it reads what
Python's torch.save and numpy produce.

Usage: /usr/bin/python3 scripts/pytorch_teacher.py --out-dir DIR --input-shape 1,28,28 --classes 2
           [--train-folder ROOT/train] [--steps 20]
"""
import argparse
import os
import struct
import zlib
from typing import Dict

import numpy as np
import torch
from torch import nn


class Teacher(nn.Module):
    def __init__(self, channels: int, height: int, width: int, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * (height // 4) * (width // 4), classes)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        h1 = torch.relu(torch.max_pool2d(self.conv1(x), 2))
        h2 = torch.relu(torch.max_pool2d(self.conv2(h1), 2))
        return {"conv1": h1, "conv2": h2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)["conv2"]
        return self.fc(torch.flatten(h, 1))


def read_grey_png(path: str) -> np.ndarray:
    """An 8-bit grey, non-interlaced PNG (what the C++ test writes) as [H, W] uint8."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour == 0, f"{path}: expected 8-bit grey"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    out = np.zeros((height, width), dtype=np.int32)
    prev = np.zeros(width, dtype=np.int32)
    for y in range(height):
        row = raw[y * (width + 1):(y + 1) * (width + 1)]
        kind, line = row[0], np.frombuffer(row[1:], dtype=np.uint8).astype(np.int32)
        cur = np.zeros(width, dtype=np.int32)
        for x in range(width):
            a = cur[x - 1] if x > 0 else 0
            b = prev[x]
            c = prev[x - 1] if x > 0 else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:  # Paeth
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.astype(np.uint8)


def load_folder(root: str):
    classes = sorted(os.listdir(root))
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, name))):
            xs.append(read_grey_png(os.path.join(root, name, f)))
            ys.append(label)
    x = torch.tensor(np.stack(xs), dtype=torch.float32).unsqueeze(1) / 255.0
    return (x - x.mean()) / x.std(), torch.tensor(ys)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--input-shape", default="1,28,28")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--train-folder", default="")
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    c, h, w = (int(v) for v in a.input_shape.split(","))
    torch.manual_seed(0)
    model = Teacher(c, h, w, a.classes)
    if a.train_folder:
        x, y = load_folder(a.train_folder)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(a.steps):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        acc = (model(x).argmax(1) == y).float().mean().item()
        print(f"teacher trained {a.steps} steps: train loss {loss.item():.4f}, accuracy {acc:.3f}")
    model.eval()
    os.makedirs(a.out_dir, exist_ok=True)
    torch.jit.save(torch.jit.script(model), os.path.join(a.out_dir, "teacher.pt"))
    logits = torch.randn(7, a.classes)
    torch.save(logits, os.path.join(a.out_dir, "sample_logits.pt"))
    np.save(os.path.join(a.out_dir, "sample_logits.npy"), logits.numpy())
    print(f"wrote {a.out_dir}/teacher.pt, sample_logits.pt, sample_logits.npy")


if __name__ == "__main__":
    main()
