#!/usr/bin/python3
"""Runs the fuzz targets (build/fuzz/bin/fuzz_<target>) one after the other and prints what
each did: executions, seconds, executions per second, coverage (libFuzzer's cov: edges and
ft: features), corpus size, and crashes. A crash, leak or sanitizer report fails the run; its
input is in BUILD/crashes/. Modes: --runs N (each target), --seconds S (in all, split evenly),
--merge (fuzz/corpus/<target> becomes the smallest set of it and of what BUILD/corpus/<target>
found that keeps every feature, leaving out inputs that carry a key, a line of one, or a
certificate)."""

import argparse
import glob
import math
import os
import re
import shutil
import subprocess
import sys
import time

from corpus_check import carries_secret

HERE = os.path.dirname(os.path.abspath(__file__))
COMMITTED = os.path.join(HERE, "corpus")

# Inputs larger than a target needs only slow it down: handshakes with RSA chains and client
# certificates run to 5 KiB, a PEM chain with its key and an OCSP response to 4 KiB.
MAX_LEN = {"handshake": 16384, "certs": 8192, "x509": 8192, "policy": 1024}


def fuzzer_args(build, target, corpus):
    dirs = [corpus, os.path.join(COMMITTED, target), os.path.join(build, "seeds", target)]
    crashes = os.path.join(build, "crashes")
    os.makedirs(crashes, exist_ok=True)
    return [os.path.join(build, "bin", "fuzz_" + target),
            "-max_len=%d" % MAX_LEN.get(target, 4096), "-timeout=30", "-rss_limit_mb=3072",
            "-print_final_stats=1", "-artifact_prefix=%s/%s-" % (crashes, target)] \
        + [d for d in dirs if os.path.isdir(d)]


def env():
    # symbolised reports; leaks count as findings (libFuzzer's default, said here)
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    sym = shutil.which("llvm-symbolizer-14") or shutil.which("llvm-symbolizer")
    if sym:
        e.setdefault("ASAN_SYMBOLIZER_PATH", sym)
    return e


def figures(log):
    """The totals of one libFuzzer log: executions, exec/s, last cov/ft/corpus line."""
    execs = [int(x) for x in re.findall(r"stat::number_of_executed_units: (\d+)", log)]
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/(\d+)(b|Kb|Mb)", log)
    return sum(execs), cov[-1] if cov else None


def run_target(build, target, extra, jobs):
    corpus = os.path.join(build, "corpus", target)
    os.makedirs(corpus, exist_ok=True)
    logdir = os.path.join(build, "logs", target)
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    args = fuzzer_args(build, target, corpus) + extra
    start = time.time()
    if jobs > 1:
        # libFuzzer's own parallel mode: each job a process of its own, sharing the corpus
        p = subprocess.run(args + ["-jobs=%d" % jobs, "-workers=%d" % jobs], cwd=logdir,
                           env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        log = "".join(open(f, errors="replace").read()
                      for f in sorted(glob.glob(os.path.join(logdir, "fuzz-*.log"))))
    else:
        # into the file as it goes, for `tail -f` during a long run
        with open(os.path.join(logdir, "fuzz-0.log"), "w") as f:
            p = subprocess.run(args, cwd=logdir, env=env(), stdout=f, stderr=subprocess.STDOUT)
        log = open(os.path.join(logdir, "fuzz-0.log"), errors="replace").read()
    secs = time.time() - start
    execs, cov = figures(log)
    crashed = p.returncode != 0 or "ERROR: " in log or "==ERROR" in log
    return {"target": target, "execs": execs, "secs": secs, "cov": cov,
            "corpus": len(os.listdir(corpus)), "crashed": crashed, "log": log, "logdir": logdir}


def report(r):
    cov = "cov %s ft %s (corpus %s units, %s%s in memory)" % r["cov"] if r["cov"] else "cov ?"
    print("fuzz: %-9s %11d execs %8.1f s %9.0f exec/s  %s  %d units in build/fuzz/corpus"
          % (r["target"], r["execs"], r["secs"], r["execs"] / max(r["secs"], 0.001), cov,
             r["corpus"]))
    if r["crashed"]:
        tail = [l for l in r["log"].splitlines() if l.strip()][-40:]
        print("\n".join("    " + l for l in tail))
        print("fuzz: %s FAILED (log in %s, inputs in build/fuzz/crashes/)" % (r["target"],
                                                                              r["logdir"]))


def key_lines(build):
    """The base64 lines of the run's keys: an input that kept one (a key whose label a mutation
    changed, so that it no longer says PRIVATE KEY) is a piece of a key all the same."""
    lines = set()
    for path in glob.glob(os.path.join(build, "certs", "*.key")):
        with open(path, "rb") as f:
            lines.update(l.strip() for l in f if len(l.strip()) >= 40 and b"-----" not in l)
    return lines


def merge(build, target):
    """libFuzzer's -merge=1 of the committed corpus and what the runs found into a fresh
    directory, which then replaces fuzz/corpus/<target>, less the inputs with a key or a
    certificate. The smallest inputs that keep every edge (-use_counters=0): keeping every
    hit count too would commit a few MB where a run finds the counts again in seconds."""
    committed = os.path.join(COMMITTED, target)
    os.makedirs(committed, exist_ok=True)
    merged = os.path.join(build, "merge", target)
    shutil.rmtree(merged, ignore_errors=True)
    os.makedirs(merged)
    found = os.path.join(build, "corpus", target)
    args = [os.path.join(build, "bin", "fuzz_" + target), "-merge=1", "-use_counters=0",
            "-max_len=%d" % MAX_LEN.get(target, 4096), merged, committed] \
        + ([found] if os.path.isdir(found) else [])
    p = subprocess.run(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        print(p.stdout.decode(errors="replace")[-3000:])
        sys.exit("fuzz: merging %s failed" % target)
    keys = key_lines(build)
    before = len(os.listdir(committed))
    kept, skipped = [], 0
    for name in sorted(os.listdir(merged)):
        with open(os.path.join(merged, name), "rb") as f:
            data = f.read()
        if carries_secret(data) or any(line in data for line in keys):
            skipped += 1
        else:
            kept.append(name)
    shutil.rmtree(committed)
    os.makedirs(committed)
    for name in kept:
        shutil.copy(os.path.join(merged, name), os.path.join(committed, name))
    size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(committed, "*")))
    print("fuzz: %-9s merged: fuzz/corpus/%s now %d files (was %d), %d bytes; %d left out "
          "(key or certificate)" % (target, target, len(kept), before, size, skipped))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--jobs", type=int, default=1)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--runs", type=int)
    mode.add_argument("--seconds", type=int)
    mode.add_argument("--merge", action="store_true")
    ap.add_argument("--until", type=int, help="with --runs: stop after this many seconds anyway")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    targets = args.targets.split()
    if args.merge:
        for t in targets:
            merge(args.build, t)
        return
    failed = []
    for t in targets:
        if args.runs:
            extra = ["-runs=%d" % math.ceil(args.runs / args.jobs)]
            if args.until:
                extra.append("-max_total_time=%d" % args.until)
        else:
            extra = ["-max_total_time=%d" % max(1, args.seconds // len(targets))]
        r = run_target(args.build, t, extra, args.jobs)
        report(r)
        if r["crashed"]:
            failed.append(t)
    if failed:
        sys.exit("fuzz: crashes in %s" % " ".join(failed))


if __name__ == "__main__":
    main()
