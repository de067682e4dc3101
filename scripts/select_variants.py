#!/usr/bin/env python3
"""Chooses each group's setting from an experiment's selection runs on the validation split.

Reads <experiment>/runs/<variant>/seed<k>/metrics.csv (the last row: final validation accuracy
and cross-entropy) for every variant, groups the variants by name (ce-, fixed-*-t2,
fixed-*-stepnorm, fixed-, greedy*, online-), and prints each group sorted by final validation accuracy (ties: lower
validation cross-entropy), marking the chosen one. Test accuracy is printed for the record but
never used to choose.

Usage: scripts/select_variants.py EXPERIMENT_DIR [--json OUT]
"""
import csv
import json
import os
import sys


def group_of(name):
    if name.startswith("ce-"):
        return "cross-entropy learning rate"
    if name.startswith("fixed-") and name.endswith("-t2"):
        return "fixed (lambda1, T), kd_scale t_squared"
    if name.startswith("fixed-") and name.endswith("-stepnorm"):
        return "fixed (lambda1, T), step_norm ce"
    if name.startswith("fixed-"):
        return "fixed (lambda1, T), kd_scale none"
    if name.startswith("online-"):
        return "online hypergradient"
    if name.startswith("greedy"):
        return "greedy hypergradient"
    return name


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    runs_dir = os.path.join(root, "runs")
    rows = []
    for name in sorted(os.listdir(runs_dir)):
        for seed_dir in sorted(os.listdir(os.path.join(runs_dir, name))):
            path = os.path.join(runs_dir, name, seed_dir, "metrics.csv")
            if not os.path.exists(os.path.join(runs_dir, name, seed_dir, "result.json")):
                continue
            with open(path) as f:
                last = list(csv.DictReader(f))[-1]
            if not last.get("val_accuracy"):
                continue  # trained on D_train ∪ D_val: nothing to select on
            rows.append({"variant": name, "seed": seed_dir, "val_accuracy": float(last["val_accuracy"]),
                         "val_loss": float(last["val_loss"]), "test_accuracy": float(last["test_accuracy"]),
                         "lambda1": float(last["lambda1"]), "temperature": float(last["temperature"])})
    groups = {}
    for r in rows:
        groups.setdefault(group_of(r["variant"]), []).append(r)
    chosen = {}
    for g, rs in groups.items():
        rs.sort(key=lambda r: (-r["val_accuracy"], r["val_loss"]))
        chosen[g] = rs[0]["variant"]
        print(f"## {g}")
        print("| variant | val acc | val CE | final lambda1 | final T | (test acc, not used) |")
        print("|---|---|---|---|---|---|")
        for r in rs:
            mark = " **chosen**" if r is rs[0] else ""
            print(f"| {r['variant']}{mark} | {r['val_accuracy']:.4f} | {r['val_loss']:.4f} | "
                  f"{r['lambda1']:.3f} | {r['temperature']:.3f} | {r['test_accuracy']:.4f} |")
        print()
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(chosen, f, indent=1)


if __name__ == "__main__":
    main()
