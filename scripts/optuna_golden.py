#!/usr/bin/env python3
"""Golden values of Optuna's TPE for the C++ parity tests (tests/search/tpe_test.cpp, search_test.cpp).

Runs the TPE of Optuna 3.1 (Debian: python3-optuna) and writes tests/search/golden/tpe_optuna.json:

- `gamma`, `weights`: the good/bad split sizes (hyperopt and Optuna rules) and the linear-forgetting
  weights;
- `truncnorm`: log Φ, log mass, quantiles of the truncated normal;
- `split`: the good/bad split of mixed complete and pruned trials;
- `estimators`: for given observations, the split and both Parzen estimators l and g (weights,
  means, widths), their log densities on a grid and the TPE choice among 24 candidates drawn with
  a given numpy seed;
- `trajectories`: whole studies (a 2-D quadratic, Branin) where the samplers' generators are
  reseeded before every trial with the per-trial seed metadistill uses (`trial_seed` below), so
  that the C++ samplers must make the same proposals;
- `mixed`: whole studies, reseeded per trial likewise, whose history interleaves failed and
  pruned trials (with and without intermediate values) with complete ones, minimizing and
  maximizing: Optuna leaves failed trials out and ranks pruned ones by their last step, so the
  C++ sampler must pick each scored trial's own parameters;
- `comparison`: best values of Optuna's own TPE and random search (its usual seeding) over 30
  seeds, the reference for the C++ closed-form comparison.

Optuna 3.1 leaves −log σ out of each kernel's log density (optuna issue #5109, fixed by PR #5110
in later releases); TPE as published normalizes its kernels. Values marked `normalized` come from
Optuna with that fix applied (the C++ default); the others from Optuna 3.1 as installed.

Usage: /usr/bin/python3 scripts/optuna_golden.py [--only SECTION,...] [OUT.json]   (a minute)

`--only mixed` recomputes the named sections and keeps the others as stored in OUT.json: a full
regeneration on another machine changes the last digits of some stored values (libm), and a
log-space mean of 2.2e-16 may become 0, which a relative parity check reads as a large change.
"""
import contextlib
import json
import math
import os
import sys

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.samplers._tpe import _truncnorm
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import (
    _split_observation_pairs,
    default_gamma,
    default_weights,
    hyperopt_default_gamma,
)

N_TRIALS = 40
N_SEEDS = 30
N_FULL = 5  # seeds whose whole trajectory is stored
MASK64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def trial_seed(seed, number):
    """metadistill's per-trial seed (src/search/sampler.cpp)."""
    return splitmix64((splitmix64(seed) + number) & MASK64) & 0xFFFFFFFF


_raw_logpdf = _truncnorm.logpdf


def _normalized_logpdf(x, a, b, loc=0, scale=1):
    return _raw_logpdf(x, a, b, loc, scale) - np.log(scale)


@contextlib.contextmanager
def kernels(normalized):
    _truncnorm.logpdf = _normalized_logpdf if normalized else _raw_logpdf
    try:
        yield
    finally:
        _truncnorm.logpdf = _raw_logpdf


PARAMS = _ParzenEstimatorParameters(
    consider_prior=True,
    prior_weight=1.0,
    consider_magic_clip=True,
    consider_endpoints=False,
    weights=default_weights,
    multivariate=False,
)
GAMMA = {"optuna": default_gamma, "hyperopt": hyperopt_default_gamma}


def quadratic(lambda1, temperature):
    return (lambda1 - 0.3) ** 2 + (math.log10(temperature) - 0.5) ** 2


def branin(x, y):
    b = 5.1 / (4 * math.pi * math.pi)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


OBJECTIVES = {
    "quadratic": (quadratic, [("lambda1", 0.0, 1.0, False), ("temperature", 0.1, 10.0, True)]),
    "branin": (branin, [("x", -5.0, 10.0, False), ("y", 0.0, 15.0, False)]),
}


def section_truncnorm():
    out = {"log_ndtr": [], "cases": []}
    for a in [-45.0, -25.0, -20.5, -8.0, -1.5, 0.0, 0.7, 3.0, 6.5, 12.0]:
        out["log_ndtr"].append([a, float(_truncnorm._log_ndtr(np.asarray([a]))[0])])
    ab = [(-1.0, 1.0), (-30.0, -25.0), (25.0, 30.0), (-0.5, 40.0), (-50.0, 0.3), (0.2, 0.9),
          (-3.0, -2.0), (-45.0, -21.0), (-2.0, 0.0), (0.0, 2.5)]
    for a, b in ab:
        mass = float(_truncnorm._log_gauss_mass(np.asarray([a]), np.asarray([b]))[0])
        for q in [0.001, 0.3, 0.5, 0.9, 0.999]:
            x = float(_truncnorm.ppf(np.asarray([q]), a, b)[0])
            out["cases"].append({"a": a, "b": b, "q": q, "log_mass": mass, "ppf": x})
    return out


def enc(x):
    """JSON has no infinities: ±inf become the strings "inf" and "-inf"."""
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def section_split():
    inf = float("inf")
    # complete (−inf, v); pruned at step s with last value v: (−s, v); pruned with no value: (1, 0)
    scores = [(-inf, [0.5]), (-3.0, [0.1]), (-inf, [0.2]), (1.0, [0.0]), (-5.0, [0.9]),
              (-inf, [0.2]), (-5.0, [0.4]), (-inf, [-1.0]), (-3.0, [0.05])]
    cases = []
    for n_below in range(len(scores) + 1):
        below, above = _split_observation_pairs(scores, n_below, None)
        cases.append({"n_below": n_below, "below": below.tolist(), "above": above.tolist()})
    return {"scores": [[enc(s), v[0]] for s, v in scores], "cases": cases}


def estimator_dict(est):
    return {"weights": est._weights.tolist(), "mus": est._mus["x"].tolist(),
            "sigmas": est._sigmas["x"].tolist()}


def section_estimators():
    cases = []
    spaces = [("uniform", -5.0, 10.0, False), ("log", 0.1, 10.0, True)]
    for kind, low, high, log in spaces:
        dist = FloatDistribution(low, high, log=log)
        for n in [0, 1, 4, 13, 40]:
            for rule in ["optuna", "hyperopt"]:
                seed = 1000 + 7 * n + (0 if rule == "optuna" else 1) + (0 if not log else 500)
                rng = np.random.RandomState(seed)
                lo, hi = (math.log(low), math.log(high)) if log else (low, high)
                values = [math.exp(u) if log else u for u in rng.uniform(lo, hi, size=n)]
                values = [min(max(v, low), high) for v in values]
                losses = rng.normal(size=n).tolist()
                scores = [(-float("inf"), [v]) for v in losses]
                n_below = GAMMA[rule](n)
                below, above = _split_observation_pairs(scores, n_below, None)
                vals = np.asarray(values, dtype=float)
                grid_internal = np.linspace(lo, hi, 21)
                grid = np.exp(grid_internal) if log else grid_internal
                grid[0], grid[-1] = low, high
                case = {"space": kind, "low": low, "high": high, "log": log, "n": n,
                        "rule": rule, "values": values, "losses": losses,
                        "below": below.tolist(), "above": above.tolist(), "grid": grid.tolist()}
                for normalized in [True, False]:
                    with kernels(normalized):
                        l = _ParzenEstimator({"x": vals[below]}, {"x": dist}, PARAMS)
                        g = _ParzenEstimator({"x": vals[above]}, {"x": dist}, PARAMS)
                        key = "normalized" if normalized else "optuna31"
                        case[key] = {
                            "l": estimator_dict(l),
                            "g": estimator_dict(g),
                            "log_l": l.log_pdf({"x": grid}).tolist(),
                            "log_g": g.log_pdf({"x": grid}).tolist(),
                        }
                        sample_seed = 4242 + n
                        cands = l.sample(np.random.RandomState(sample_seed), 24)
                        log_l = l.log_pdf(cands)
                        log_g = g.log_pdf(cands)
                        best = int(np.argmax(log_l - log_g))
                        case[key]["sample_seed"] = sample_seed
                        case[key]["candidates"] = cands["x"].tolist()
                        case[key]["score"] = (log_l - log_g).tolist()
                        case[key]["best"] = best
                cases.append(case)
    return cases


def make_sampler(variant, seed):
    if variant == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    gamma = hyperopt_default_gamma if variant == "tpe-hyperopt" else default_gamma
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, gamma=gamma)


def reseed(sampler, s):
    if isinstance(sampler, optuna.samplers.TPESampler):
        sampler._rng = np.random.RandomState(s)
        sampler._random_sampler._rng = np.random.RandomState(s)
    else:
        sampler._rng = np.random.RandomState(s)


def run_study(objective_name, variant, seed, per_trial_seeds):
    objective, space = OBJECTIVES[objective_name]
    sampler = make_sampler(variant, seed)
    study = optuna.create_study(sampler=sampler)
    trials = []
    for k in range(N_TRIALS):
        if per_trial_seeds:
            reseed(sampler, trial_seed(seed, k))
        trial = study.ask()
        x = [trial.suggest_float(name, lo, hi, log=log) for name, lo, hi, log in space]
        v = objective(*x)
        study.tell(trial, v)
        trials.append({"params": x, "value": v})
    return trials


def summary(bests):
    b = np.asarray(bests)
    return {"bests": bests, "median": float(np.median(b)),
            "q25": float(np.percentile(b, 25)), "q75": float(np.percentile(b, 75))}


def section_trajectories():
    out = {}
    variants = {"tpe-optuna": True, "tpe-hyperopt": True, "tpe-optuna31": False, "random": True}
    for name in OBJECTIVES:
        out[name] = {}
        for variant, normalized in variants.items():
            full, bests = [], []
            with kernels(normalized):
                for seed in range(N_SEEDS):
                    trials = run_study(name, variant, seed, per_trial_seeds=True)
                    bests.append(min(t["value"] for t in trials))
                    if seed < N_FULL:
                        full.append(trials)
            entry = summary(bests)
            entry["trials"] = full
            out[name][variant] = entry
            print(f"  trajectories {name} {variant}: median best {entry['median']:.6g}",
                  file=sys.stderr)
    return out


N_MIXED_SEEDS = 3


def mixed_fate(k):
    """What becomes of trial k in the `mixed` studies: ("complete",), ("fail",), or ("prune", m)
    after reporting steps 1..m (m = 0: pruned before any report). The first failure comes before
    the start-up trials end, so that the scored trials' positions differ from the history's."""
    if k % 6 == 1:
        return ("fail",)
    if k % 6 == 4:
        return ("prune", (k // 6) % 4)
    return ("complete",)


def run_mixed(direction, seed):
    objective, space = OBJECTIVES["quadratic"]
    sign = 1.0 if direction == "minimize" else -1.0
    sampler = make_sampler("tpe-optuna", seed)
    study = optuna.create_study(sampler=sampler, direction=direction)
    trials = []
    for k in range(N_TRIALS):
        reseed(sampler, trial_seed(seed, k))
        trial = study.ask()
        x = [trial.suggest_float(name, lo, hi, log=log) for name, lo, hi, log in space]
        v = sign * objective(*x)
        fate = mixed_fate(k)
        record = {"params": x, "state": fate[0], "intermediate": []}
        if fate[0] == "fail":
            study.tell(trial, state=TrialState.FAIL)
        elif fate[0] == "prune":
            for step in range(1, fate[1] + 1):
                iv = v + sign * 0.5 / step  # a learning curve approaching the final value
                trial.report(iv, step)
                record["intermediate"].append([step, iv])
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, v)
            record["value"] = v
        trials.append(record)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.FAIL) == sum(t["state"] == "fail" for t in trials)
    return trials


def section_mixed():
    out = {}
    with kernels(True):
        for direction in ["minimize", "maximize"]:
            out[direction] = [run_mixed(direction, seed) for seed in range(N_MIXED_SEEDS)]
    return out


def section_comparison():
    out = {}
    for name in OBJECTIVES:
        out[name] = {}
        for variant in ["tpe-optuna", "random"]:
            bests = []
            for seed in range(N_SEEDS):
                trials = run_study(name, variant, seed, per_trial_seeds=False)
                bests.append(min(t["value"] for t in trials))
            out[name][variant] = summary(bests)
            print(f"  comparison {name} {variant}: median best {out[name][variant]['median']:.6g}",
                  file=sys.stderr)
    return out


SECTIONS = {
    "truncnorm": section_truncnorm,
    "split": section_split,
    "estimators": section_estimators,
    "trajectories": section_trajectories,
    "mixed": section_mixed,
    "comparison": section_comparison,
}


def main():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    only = None
    if args and args[0] == "--only":
        only = args[1].split(",")
        unknown = [s for s in only if s not in SECTIONS]
        if unknown:
            sys.exit(f"--only {args[1]}: unknown section(s) {unknown}; expected {list(SECTIONS)}")
        args = args[2:]
    out_path = args[0] if args else os.path.join(
        here, "..", "tests", "meta", "golden", "tpe_optuna.json")
    if only is not None:
        with open(out_path) as f:
            golden = json.load(f)
    else:
        golden = {}
    golden.update({
        "generator": "scripts/optuna_golden.py",
        "optuna_version": optuna.__version__,
        "numpy_version": np.__version__,
        "n_trials": N_TRIALS,
        "n_seeds": N_SEEDS,
        "spaces": {k: [list(p) for p in v[1]] for k, v in OBJECTIVES.items()},
        "gamma": {rule: [int(f(n)) for n in range(121)] for rule, f in GAMMA.items()},
        "weights": {str(m): default_weights(m).tolist() for m in [0, 1, 5, 24, 25, 26, 30, 40, 61]},
    })
    for name, section in SECTIONS.items():
        if only is None or name in only:
            golden[name] = section()
            print(f"{name} done", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(golden, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
