#!/usr/bin/env python3
"""Mutation testing: applies each mutation of scripts/mutations.tsv, one at a time, to a scratch
copy of the repository, rebuilds only what changed, runs the tests of the mutation's label and
reports which mutations survived (the tests still passed) and which were killed.

The scratch copy (default /tmp/metadistill-mutate, or $MUTATE_DIR) holds the tracked files and its
own build folder; it is reused, so a second call rebuilds only what changed. The repository
itself is never modified.

Usage: scripts/mutate.sh [--only REGEX] [--jobs N]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, cwd, log=None, timeout=None):
    with open(log or os.devnull, "w") as out:
        return subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout).returncode


def read_mutations(path):
    out = []
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("#") or not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 5:
            sys.exit(f"{path}:{n}: expected 5 tab-separated fields, found {len(fields)}")
        out.append(dict(zip(("file", "label", "search", "replace", "what"), fields), line=n))
    return out


def check(mutations, path):
    """Each search text must occur exactly once in the repository's file: a refactor that moves
    the code a mutation targets must move the mutation too. Returns the exit status."""
    stale = 0
    for m in mutations:
        f = os.path.join(ROOT, m["file"])
        n = open(f, encoding="utf-8").read().count(m["search"]) if os.path.isfile(f) else -1
        if n != 1:
            stale += 1
            where = "the file is missing" if n < 0 else f"the search text occurs {n} times"
            print(f"{path}:{m['line']}: {m['file']}: {where} ({m['what']})")
    print(f"{len(mutations) - stale} of {len(mutations)} mutations match the code")
    return 1 if stale else 0


def sync(scratch):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    src = os.path.join(scratch, "src")
    for f in files:
        if not f or f.startswith("results/"):
            continue
        a, b = os.path.join(ROOT, f), os.path.join(src, f)
        if not os.path.isfile(a):
            continue
        if os.path.exists(b) and open(a, "rb").read() == open(b, "rb").read():
            continue  # unchanged: keep its mtime so the build stays incremental
        os.makedirs(os.path.dirname(b), exist_ok=True)
        shutil.copy2(a, b)
    return src


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="run the mutations whose file or description matches REGEX")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--list", default=os.path.join(ROOT, "scripts", "mutations.tsv"))
    ap.add_argument("--check", action="store_true",
                    help="only check that every search text occurs once in its file (a ctest)")
    args = ap.parse_args()
    mutations = read_mutations(args.list)
    if args.check:
        sys.exit(check(mutations, args.list))
    if args.only:
        mutations = [m for m in mutations if re.search(args.only, m["file"] + " " + m["what"])]
    scratch = os.environ.get("MUTATE_DIR", "/tmp/metadistill-mutate")
    os.makedirs(scratch, exist_ok=True)
    src = sync(scratch)
    build = os.path.join(scratch, "build")
    log = os.path.join(scratch, "last.log")
    for m in mutations:
        text = open(os.path.join(src, m["file"]), encoding="utf-8").read()
        if text.count(m["search"]) != 1:
            sys.exit(f"{args.list}:{m['line']}: the search text occurs {text.count(m['search'])} "
                     f"times in {m['file']} (expected once): update the mutation")
    print(f"scratch copy {src}; building the unmutated code (first time: the whole project)...",
          flush=True)
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        if run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                "-DMETADISTILL_BUILD_BENCHMARKS=OFF"], scratch, log):
            sys.exit(f"configure failed; see {log}")
    labels = sorted({m["label"] for m in mutations})
    # Only the test programs of the labels in play (and what they depend on) are built: a
    # mutation relinks one test program, not all of them.
    targets = [f"{label}_tests" for label in labels]
    if run(["cmake", "--build", build, "-j", str(args.jobs), "--target", *targets], scratch, log):
        sys.exit(f"the unmutated code does not build; see {log}")
    for label in labels:
        if run(["ctest", "-L", label, "-j", str(args.jobs), "--timeout", "600"], build, log):
            sys.exit(f"the unmutated code fails tests of label {label}; see {log}")
    rows = []
    for i, m in enumerate(mutations, 1):
        path = os.path.join(src, m["file"])
        original = open(path, encoding="utf-8").read()
        t0 = time.time()
        try:
            open(path, "w", encoding="utf-8").write(original.replace(m["search"], m["replace"]))
            if run(["cmake", "--build", build, "-j", str(args.jobs), "--target", f"{m['label']}_tests"],
                   scratch, log):
                result = "killed (does not compile)"
            elif run(["ctest", "-L", m["label"], "-j", str(args.jobs), "--timeout", "600",
                      "--stop-on-failure"], build, log):
                result = "killed"
            else:
                result = "SURVIVED"
        finally:
            open(path, "w", encoding="utf-8").write(original)
        rows.append((m, result, time.time() - t0))
        print(f"[{i}/{len(mutations)}] {result:<26} {m['file']}: {m['what']} ({time.time() - t0:.0f} s)",
              flush=True)
    # Rebuild the unmutated code so that the scratch build is clean for the next call.
    run(["cmake", "--build", build, "-j", str(args.jobs), "--target", *targets], scratch, log)
    survived = [r for r in rows if r[1] == "SURVIVED"]
    report = ["| # | file | bug | label | result |", "|---|---|---|---|---|"]
    for i, (m, result, _) in enumerate(rows, 1):
        report.append(f"| {i} | {m['file']} | {m['what']} | {m['label']} | {result} |")
    report.append("")
    report.append(f"{len(survived)} of {len(rows)} mutations survived "
                  f"({100.0 * len(survived) / max(1, len(rows)):.0f}%).")
    text = "\n".join(report) + "\n"
    open(os.path.join(scratch, "mutations.md"), "w").write(text)
    print()
    print(text)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
