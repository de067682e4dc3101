#!/usr/bin/env python3
"""Golden values of Welch's t-test for the C++ test (tests/experiment/statistics_test.cpp).

Runs SciPy's `scipy.stats.ttest_ind(a, b, equal_var=False)` (Debian: python3-scipy) on a table of
sample pairs and writes tests/experiment/golden/welch_scipy.json: for each case the two samples,
Welch's t, the Welch–Satterthwaite degrees of freedom and SciPy's two-sided p-value.

The cases have unequal sizes and variances (3 vs 10, 10 vs 3, 2 vs 7, ...), where pooled degrees
of freedom n_a + n_b − 2 would give a different p-value, and p-values from 4e-8 to 0.84, most of
them in the moderate range 0.01–0.5 that decides a table's significance marks. The samples look
like the accuracies the experiment tables compare (four decimals).

SciPy 1.10 does not return the degrees of freedom; they are computed here from the formula and
checked against SciPy's p-value through its Student t distribution.

Usage: /usr/bin/python3 scripts/welch_golden.py [OUT.json]   (a second)
"""
import json
import math
import os
import sys

import numpy as np
import scipy
from scipy import stats

# name, (n, mean, sd) of a, (n, mean, sd) of b, numpy seed
DRAWN = [
    ("3 vs 10, wide small sample", (3, 0.700, 0.030), (10, 0.740, 0.004), 1),
    ("3 vs 10, narrow small sample", (3, 0.745, 0.002), (10, 0.740, 0.015), 2),
    ("2 vs 7", (2, 0.810, 0.020), (7, 0.790, 0.006), 3),
    ("4 vs 12", (4, 0.620, 0.040), (12, 0.690, 0.010), 4),
    ("5 vs 5, unequal spread", (5, 0.880, 0.002), (5, 0.869, 0.012), 5),
    ("6 vs 15", (6, 0.910, 0.008), (15, 0.901, 0.003), 6),
    ("3 vs 5, same spread", (3, 0.500, 0.010), (5, 0.520, 0.010), 7),
    ("8 vs 3", (8, 0.7700, 0.0050), (3, 0.7620, 0.0100), 8),
    ("30 vs 40", (30, 0.650, 0.020), (40, 0.665, 0.030), 9),
    ("20 vs 25, far apart", (20, 0.700, 0.010), (25, 0.728, 0.012), 12),
    ("3 vs 10, far apart", (3, 0.630, 0.004), (10, 0.770, 0.006), 10),
    ("4 vs 4, nearly equal means", (4, 0.720, 0.010), (4, 0.7195, 0.012), 11),
]

# Hand-written pairs: the smallest samples, and tied values in one sample.
WRITTEN = [
    ("2 vs 2", [0.71, 0.74], [0.69, 0.695]),
    ("3 vs 4, tied values", [0.80, 0.80, 0.81], [0.78, 0.79, 0.77, 0.80]),
]


def welch_df(a, b):
    va = np.var(a, ddof=1) / len(a)
    vb = np.var(b, ddof=1) / len(b)
    return (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))


def case(name, a, b):
    r = stats.ttest_ind(a, b, equal_var=False)
    t, p = float(r.statistic), float(r.pvalue)
    df = float(welch_df(np.asarray(a), np.asarray(b)))
    check = float(2 * stats.t.sf(abs(t), df))
    assert math.isclose(check, p, rel_tol=1e-9), (name, p, check)
    return {"name": name, "a": a, "b": b, "t": t, "df": df, "p": p}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "tests", "experiment", "golden", "welch_scipy.json")
    cases = []
    for name, (na, ma, sa), (nb, mb, sb), seed in DRAWN:
        rng = np.random.RandomState(seed)
        a = [round(float(x), 4) for x in rng.normal(ma, sa, size=na)]
        b = [round(float(x), 4) for x in rng.normal(mb, sb, size=nb)]
        cases.append(case(name, a, b))
    # The first case mirrored: t changes sign, p stays.
    cases.insert(1, case("10 vs 3, the first case swapped", cases[0]["b"], cases[0]["a"]))
    for name, a, b in WRITTEN:
        cases.append(case(name, a, b))
    print(f"{'case':<44} {'n_a':>3} {'n_b':>3} {'t':>10} {'df':>8} {'p':>12}", file=sys.stderr)
    for c in cases:
        print(f"{c['name']:<44} {len(c['a']):>3} {len(c['b']):>3} {c['t']:>10.4f} {c['df']:>8.3f} "
              f"{c['p']:>12.6g}", file=sys.stderr)
    golden = {"generator": "scripts/welch_golden.py", "scipy_version": scipy.__version__,
              "numpy_version": np.__version__, "cases": cases}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(golden, f, allow_nan=False, indent=1)
        f.write("\n")
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
