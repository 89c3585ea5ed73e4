#!/usr/bin/env python3
"""Side-by-side CPU of two recorder builds on the same traffic (run as root).

    python3 bench/compare.py OTHER_RECORDER [--rounds N] [--qps Q] [--seconds S]

Builds nothing: compares target/release/dnsq-recorder (this tree, after
`make build`) with OTHER_RECORDER (another checkout's build), in one network
namespace with one dnsmasq, alternating which goes first each round (ABBA).
Each run: a fresh database, dnsperf at Q queries/s for S seconds, and the
recorder's user+system CPU from 1 s after it is ready to its exit (it drains
and commits everything), over the messages it stored; a run that stored fewer
messages than dnsperf's traffic, or lost events, is reported as such. The
kernel programs' own time is not counted: compare builds with the same probes.

With --probes dns (or iperf), the kernel programs are compared instead: each
build's recorder runs with `kernel.bpf_stats_enabled=1` under the same dnsperf
traffic (or a 10 s iperf3 transfer, for what every other packet pays), and each
program's run time per run is printed for both builds with the ratio of their
medians.

On a shared machine the absolute figures move from hour to hour; the ratio of
the two builds measured side by side is what to quote.
"""

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (the harness: namespace, dnsmasq, dnsperf, recorder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other dnsq-recorder binary")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--qps", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--probes", choices=("dns", "iperf"),
                        help="compare the kernel programs' time per run instead")
    args = parser.parse_args()
    if not args.other.is_file():
        sys.exit(f"no recorder at {args.other}")
    if not all((R.RELEASE / name).is_file() for name in ("dnsq-recorder", "dnsq-bench")):
        sys.exit("build this tree first (make build; cargo build --release -p dnsq-bench)")

    R.BIN.mkdir(parents=True, exist_ok=True)
    # dnsq-bench counts the stored messages (`tally`).
    for binary in (R.RECORDER, R.DNSQ, R.GENERATOR):
        shutil.copy2(R.RELEASE / binary.name, binary)
    builds = {"this": R.RECORDER, "other": R.BIN / "dnsq-recorder-other"}
    shutil.copy2(args.other, builds["other"])
    R.remove_leftovers()
    others = R.other_recorders()
    if others:
        sys.exit("dnsq probes are already attached by "
                 + ", ".join(f"pid {pid} ({comm})" for pid, comm in sorted(others.items()))
                 + ": both recorders would be measured. Stop it first.")

    if args.probes:
        compare_probes(builds, args)
        return
    us = {name: [] for name in builds}
    with R.Host() as host:
        for round_, name in R.interleaved(args.rounds, "other", "this"):
            R.RECORDER = builds[name]
            run = R.cpu_recorder(host, args.seconds, args.qps)
            stored, expected, lost = run["messages"], run["expected"], run["lost"]
            complete = stored == expected and not lost
            per_message = 1e6 * run["user_s"] / stored if stored else float("nan")
            if complete:
                us[name].append(per_message)
            print(f"round {round_ + 1} {name}: {stored:,} of {expected:,} messages stored, "
                  f"lost {lost}, {per_message:.2f} µs/message"
                  + ("" if complete else " (incomplete: not counted)"), flush=True)

    if not all(us.values()):
        sys.exit("a build has no complete run")
    medians = {name: statistics.median(values) for name, values in us.items()}
    for name, values in us.items():
        print(f"{name}: median {medians[name]:.2f} µs/message, runs "
              + ", ".join(f"{v:.2f}" for v in values))
    pairs = [t / o for t, o in zip(us["this"], us["other"])]
    print(f"this / other: {medians['this'] / medians['other']:.3f} (medians); pairwise "
          + ", ".join(f"{p:.3f}" for p in pairs))


def compare_probes(builds, args):
    """Each program's ns per run, both builds alternating, under the same load."""
    per_run = {name: {} for name in builds}
    with R.Host() as host, R.bpf_stats_enabled("compare"):
        for round_, name in R.interleaved(args.rounds, "other", "this"):
            R.RECORDER = builds[name]
            with R.Recorder("compare", host) as rec:
                time.sleep(1)
                before = R.bpf_programs("compare", rec.prog_ids)
                if args.probes == "iperf":
                    R.iperf(host)
                else:
                    host.dnsperf("compare", args.seconds, args.qps)
                after = R.bpf_programs("compare", rec.prog_ids)
            for program, (ns, runs) in after.items():
                ns0, runs0 = before.get(program, (0, 0))
                if runs - runs0 >= 1000:
                    per_run[name].setdefault(program, []).append((ns - ns0) / (runs - runs0))
            print(f"round {round_ + 1} {name}: "
                  + ", ".join(f"{p} {v[-1]:.0f} ns" for p, v in sorted(per_run[name].items())),
                  flush=True)
    for program in sorted(per_run["this"]):
        this, other = per_run["this"][program], per_run["other"].get(program)
        if not other:
            continue
        ratio = statistics.median(this) / statistics.median(other)
        print(f"{program}: this {statistics.median(this):.0f} ns a run, other "
              f"{statistics.median(other):.0f}; this / other {ratio:.2f} (medians of "
              f"{len(this)} and {len(other)} runs)")


if __name__ == "__main__":
    main()
