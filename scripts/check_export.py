#!/usr/bin/env python3
"""Checks a student exported by `metadistill export` from Python (the round-trip test,
tests/cli/pytorch_roundtrip_test.cpp).

Loads the export three ways — the generated module (`Model()` + `load_state_dict` of the file
`torch.load` reads), and the TorchScript file (`torch.jit.load`) — runs them in eval mode on the
inputs the C++ side wrote and compares with the C++ student's logits. Exits 1 when any
difference exceeds the tolerance, or a file does not load.

Usage: /usr/bin/python3 scripts/check_export.py EXPORT_DIR INPUTS.npy LOGITS.npy [--tol 1e-5]
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("inputs")
    ap.add_argument("logits")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.export_dir, "export.json")))
    x = torch.from_numpy(np.load(a.inputs))
    expected = torch.from_numpy(np.load(a.logits))
    assert x.dtype == torch.float32 and expected.dtype == torch.float32
    assert tuple(x.shape[1:]) == tuple(manifest["input_shape"]), (x.shape, manifest)

    spec = importlib.util.spec_from_file_location(
        "student_model", os.path.join(a.export_dir, manifest["python_module"]))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    state = torch.load(os.path.join(a.export_dir, manifest["state_dict"]))
    # strict: every parameter and buffer of the module is in the file and nothing else.
    model.load_state_dict(state, strict=True)
    model.eval()
    scripted = torch.jit.load(os.path.join(a.export_dir, manifest["torchscript"]))
    scripted.eval()

    failed = False
    with torch.no_grad():
        for name, m in [("python module", model), ("torchscript", scripted)]:
            got = m(x)
            if got.shape != expected.shape:
                print(f"{name}: logits shape {tuple(got.shape)}, C++ {tuple(expected.shape)}")
                failed = True
                continue
            diff = (got - expected).abs().max().item()
            ok = diff <= a.tol
            failed |= not ok
            print(f"{name}: {manifest['model']} on {x.shape[0]} samples, max abs diff {diff:.3g}"
                  f" {'<=' if ok else '>'} {a.tol:g}")
        # The comparison can fail: the same logits moved by 1e-3 must be refused.
        moved = (model(x) - (expected + 1e-3)).abs().max().item()
        if moved <= a.tol:
            print(f"self-check: logits moved by 1e-3 pass the tolerance (max abs diff {moved:.3g})")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
