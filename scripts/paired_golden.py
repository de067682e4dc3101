#!/usr/bin/env python3
"""Golden values of the paired comparison for the C++ test (tests/experiment/statistics_test.cpp).

For each case, SciPy's paired t-test `scipy.stats.ttest_rel(a, b)` (Debian: python3-scipy) gives
the two-sided p-value, and the 95% interval of the mean difference is
mean(a − b) ± t.ppf(0.975, n − 1) · sd(a − b) / √n with SciPy's Student t quantile. Writes
tests/experiment/golden/paired_scipy.json. The cases look like the accuracies of paired seeds
(four decimals), from 2 to 10 pairs.

Usage: /usr/bin/python3 scripts/paired_golden.py [OUT.json]
"""
import json
import os
import sys

import numpy as np
import scipy
from scipy import stats

# name, pairs, mean of a, mean difference, sd of a, sd of the difference, numpy seed
DRAWN = [
    ("2 pairs", 2, 0.87, 0.004, 0.003, 0.002, 1),
    ("3 pairs, clear gain", 3, 0.86, 0.010, 0.004, 0.002, 2),
    ("5 pairs, small gain", 5, 0.88, 0.002, 0.003, 0.003, 3),
    ("5 pairs, loss", 5, 0.85, -0.006, 0.002, 0.004, 4),
    ("7 pairs, no difference", 7, 0.80, 0.000, 0.010, 0.005, 5),
    ("10 pairs", 10, 0.57, 0.012, 0.010, 0.015, 6),
]


def case(name, a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    n = len(d)
    r = stats.ttest_rel(a, b)
    half = float(stats.t.ppf(0.975, n - 1) * np.std(d, ddof=1) / np.sqrt(n))
    return {"name": name, "a": a.tolist(), "b": b.tolist(), "mean": float(d.mean()),
            "low": float(d.mean()) - half, "high": float(d.mean()) + half, "p": float(r.pvalue)}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "tests", "experiment", "golden", "paired_scipy.json")
    cases = []
    for name, n, mean_a, mean_d, sd_a, sd_d, seed in DRAWN:
        rng = np.random.RandomState(seed)
        a = np.round(rng.normal(mean_a, sd_a, n), 4)
        b = np.round(a - rng.normal(mean_d, sd_d, n), 4)
        cases.append(case(name, a, b))
    with open(out, "w") as f:
        json.dump({"scipy_version": scipy.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
