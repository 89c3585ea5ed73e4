"""The table and BENCHMARKS.md from bench/run.py's results (also kept as
$BENCH_DIR/results.json; `python3 bench/report.py RESULTS.json` rewrites the report
from them without measuring again, `--output FILE` writes it elsewhere)."""

import functools
import json
import math
import random
import statistics
import sys
from pathlib import Path

import run  # bench/run.py: the goals' settings

MB = 1e6  # the goals are in decimal megabytes


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values, fmt):
    """'median (min–max)' of a list."""
    return f"{fmt(median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def verdict(ok, edge=False):
    """`edge`: met, but by less than the figure moves between runs of `make bench`
    on this machine; its analysis is printed as for a missed goal."""
    if not ok:
        return "**missed**"
    return "met, at the edge" if edge else "met"


def paired_verdict(ratios, goal):
    """The verdict on a median of pair ratios that must be at least `goal`,
    with the median's 95 % interval (`median_interval`): met or missed when the
    interval is on one side of the goal; met at the edge, or not shown, when
    the goal lies within it (the median could as well have fallen on its other
    side). Either of the last two gets its analysis printed."""
    ok = median(ratios) >= goal
    interval = median_interval(ratios)
    if interval is None or not interval[0] < goal <= interval[1]:
        return verdict(ok)
    return verdict(ok, edge=True) if ok else "**not shown**: the goal is within the noise"


# How close to its goal a met figure still counts as at the edge: the CPU ratio
# (against tshark -T fields, the only tshark arm then)
# measured 0.09-0.12 and iperf3's 0.925-1.000 in four `make bench` runs of the
# same code (2026-11-26/27).
CPU_EDGE = 0.085
# Fewer pairs than this get no bootstrap interval: with 2 or 3 the resampled
# medians are little more than the pairs themselves.
MIN_PAIRS_FOR_INTERVAL = 5


def troubles(runs, key="recorder_trouble", who="the recorder"):
    """Notes for runs whose recorder (or `who`) had to be killed or failed."""
    notes = [f"Run {i}: {who} {run[key]}." for i, run in enumerate(runs, 1)
             if run.get(key)]
    return ["", *notes] if notes else []


# --- one function per figure: (row of the table, detail section) ------------


def steal_of_lossy_runs(r):
    """A sentence on the steal during this run's loss runs that lost events."""
    lossy = [(i, run) for i, run in enumerate(r.get("loss", []), 1)
             if run.get("counters", {}).get("lost_ringbuf_full") and
             run.get("steal_pct") is not None]
    if not lossy:
        return ""
    return " In this run: " + "; ".join(
        f"run {i} lost {run['counters']['lost_ringbuf_full']:,} events with steal at "
        f"{run['steal_pct']:.1f} % over the run and up to {run['steal_max_pct']:.0f} % "
        "in a second" for i, run in lossy) + "."


def loss(r):
    runs = r["loss"]
    ratios = [run["ratio"] for run in runs]
    kernel_lost = [run["counters"].get("lost_ringbuf_full", 0)
                   + run["counters"].get("lost_load_failed", 0)
                   + run["counters"].get("lost_parse_failed", 0)
                   for run in runs if run["counters"]] or [0]
    store_dropped = [run["counters"].get("store_dropped", 0)
                     for run in runs if run["counters"]] or [0]
    # Results from before 2026-11-28 ran dnsperf ("perf"), not the replay.
    replayed = all("traffic" in run for run in runs)
    traffic = [run.get("traffic") or run["perf"] for run in runs]
    achieved = [t["qps"] for t in traffic]
    ok = min(ratios) >= 1.0 and max(kernel_lost) == 0 and max(store_dropped) == 0
    # Nothing lost says little if the traffic came well under the asked rate.
    full_rate = median(achieved) >= 0.97 * 50_000
    seconds = r.get("config", {}).get("loss_seconds", 30)
    counted = [run for run in runs if run["counters"]]
    if counted:
        losses = (f"kernel lost {int(median(kernel_lost)):,}, recorder dropped "
                  f"{int(median(store_dropped)):,} (medians of the runs with counters)")
    else:
        losses = "no counters row (the recorder was killed)"
    sender = "the replay" if replayed else "dnsperf"
    steal = [run["steal_pct"] for run in runs if run.get("steal_pct") is not None]
    steal_note = (f"; the hypervisor's steal {median(steal):.1f} % of the machine's CPU "
                  f"(the most in a second: {max(run['steal_max_pct'] or 0 for run in runs):.0f} %)"
                  if steal else "")
    row = (f"Messages in the database / messages sent, 50k queries/s for {seconds} s",
           "100.00 %, nothing lost",
           f"{100 * median(ratios):.2f} % (runs {', '.join(f'{100 * x:.2f}' for x in ratios)}); "
           f"{losses}; {sender} reached {median(achieved) / 1e3:.1f}k q/s{steal_note}",
           verdict(ok) if full_rate or not ok else
           f"met at the {median(achieved) / 1e3:.0f}k q/s {sender} reached; 50k not reached")
    if replayed:
        cores = [t["cpu_s"] / t["seconds"] for t in traffic]
        lines = [
            "Each run: a fresh database, `dnsq-recorder --db` started and ready, then "
            f"`dnsq-bench replay` (bench/src/replay.rs) sends the query list at {50_000:,} "
            f"q/s for {seconds} s from 4 UDP sockets to a server of its own on "
            "127.0.0.2:53 in the namespace, which answers each question with the answer "
            "dnsmasq gave it once at the start, under the query's ID; 3 s later the "
            "recorder is stopped (SIGINT: it drains the ring buffer and commits "
            "everything) and the messages of the run's zone are counted (`dnsq-bench "
            "tally`: they are packed in chunks). dnsperf against dnsmasq, the other "
            "figures' traffic, tops out near half that rate on this machine (see "
            "*dnsperf's highest rate*, whose runs also count what the recorder lost "
            "flat out); the replay puts the same messages on the same loopback "
            "sockets for a fraction of the CPU: sendmmsg/recvmmsg in batches, a hash "
            f"lookup and a copy a query (its own CPU, the loopback stack's work "
            f"included: {median(cores):.2f} of the machine's 2 cores, median). "
            "Expected messages = each query and answer at the socket that sent it and "
            "the one that received it (sent + server received + server sent + answered), "
            "plus datagrams the kernel dropped for a full receive buffer "
            "(`RcvbufErrors`: the ingress program sees them first) and the questions "
            "asked of dnsmasq at the start with their answers, twice each. *steal*: "
            "the share of the machine's CPU time (/proc/stat, sampled every 250 ms "
            "over the run) the hypervisor gave to other guests; *most a second*: its "
            "largest share over a second. Counters are the recorder's last `counters` row.",
            "",
            "| run | queries sent | answered | q/s reached | traffic CPU, cores | steal "
            "| steal, most a second | expected | in database | ratio | kernel: delivered "
            "| lost, ring buffer full | lost, load/parse | recorder dropped |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines = [
            "Each run: a fresh database, `dnsq-recorder --db` started and ready, then dnsperf "
            f"at `-Q {50_000}` for {seconds} s against dnsmasq; 3 s later the recorder is "
            "stopped and the messages of the run's zone are counted. Expected messages = "
            "2 × *Queries sent* + 2 × *Queries completed*. Counters are the recorder's "
            "last `counters` row.",
            "",
            "| run | dnsperf sent | completed | q/s reached | expected | in database | ratio "
            "| kernel: delivered | lost, ring buffer full | lost, load/parse | recorder dropped |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for i, (run, t) in enumerate(zip(runs, traffic), 1):
        c = run["counters"]
        cells = [f"{i}", f"{t['sent']:,}", f"{t['completed']:,}", f"{t['qps']:,.0f}"]
        if replayed:
            cells += [f"{t['cpu_s'] / t['seconds']:.2f}",
                      "–" if run.get("steal_pct") is None else f"{run['steal_pct']:.1f} %",
                      "–" if run.get("steal_max_pct") is None
                      else f"{run['steal_max_pct']:.0f} %"]
        cells += [f"{run['expected']:,}", f"{run['stored']:,}", f"{100 * run['ratio']:.3f} %"]
        if c:
            cells += [f"{c.get('delivered', 0):,}", f"{c.get('lost_ringbuf_full', 0):,}",
                      f"{c.get('lost_load_failed', 0) + c.get('lost_parse_failed', 0):,}",
                      f"{c.get('store_dropped', 0):,}"]
        else:
            cells += ["no counters row", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return row, lines + troubles(runs)


def contention(r):
    runs = r["contention"]
    seconds = r.get("config", {}).get("contention_seconds", 10)

    def arm(name):
        arm_runs = runs[name]
        ratios = [run["ratio"] for run in arm_runs]
        each = ", ".join(f"{100 * x:.2f}" for x in ratios)
        lost = ", ".join(f"{run['counters'].get('lost_ringbuf_full', 0):,}"
                         for run in arm_runs if run["counters"]) or "no counters row"
        qps = median([run["traffic"]["qps"] for run in arm_runs])
        return (f"{100 * median(ratios):.2f} % (runs {each}), events lost {lost}; the "
                f"replay reached {qps / 1e3:.1f}k q/s")
    row = (f"Messages in the database / messages sent, 50k queries/s for {seconds} s with "
           "both CPUs kept busy by two busy loops", "no goal",
           f"the recorder at its default priority (`--nice -5`): {arm('default')}; at "
           f"nice 0: {arm('nice0')}", "informational")
    lines = [
        f"The loss figure's traffic (`dnsq-bench replay`, 50k q/s, {seconds} s) while two "
        "busy loops (`python3`, nice 0, ending by themselves) keep the machine's 2 CPUs "
        "busy, as a host's other work does; the recorder at its default `--nice -5` (it "
        "lowers its nice value to -5 at start; the systemd unit sets `Nice=-5`) and at "
        "`--nice 0`, interleaved (the order reversed every other round). At nice 0 the "
        "recorder waits its turn behind the loops while the kernel fills its 8 MiB ring "
        "buffer; at -5 it runs first, and what it takes from the rest is bounded by the "
        "DNS traffic it records. Expected messages as in the loss figure.",
        "",
        "| run | recorder | queries sent | q/s reached | expected | in database | ratio "
        "| lost, ring buffer full | recorder CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = [(i, name, run) for name in ("default", "nice0")
             for i, run in enumerate(runs[name], 1)]
    for i, name, run in sorted(order, key=lambda x: x[0]):
        c, t = run["counters"], run["traffic"]
        lost = f"{c.get('lost_ringbuf_full', 0):,}" if c else "no counters row"
        lines.append(
            f"| {i} | {'nice -5 (default)' if name == 'default' else 'nice 0'} | "
            f"{t['sent']:,} | {t['qps']:,.0f} | {run['expected']:,} | {run['stored']:,} | "
            f"{100 * run['ratio']:.3f} % | "
            f"{lost} | "
            f"{run['recorder_cpu_s']:.2f} |")
    return row, lines + troubles(runs["default"] + runs["nice0"])


def memory(r):
    runs = r["loss"]
    steady = [run["rss_steady_mib"] * 1024 * 1024 / MB for run in runs]
    peak = [run["hwm_mib"] * 1024 * 1024 / MB for run in runs]
    ok = median(steady) <= 50
    row = ("Recorder resident memory, steady (during the 50k q/s runs)", "≤ 50 MB",
           f"{median(steady):.0f} MB median VmRSS over the last two thirds of the runs "
           f"(VmHWM {median(peak):.0f} MB)", verdict(ok))
    lines = [
        "VmRSS of the recorder sampled every 250 ms from /proc/PID/status during the "
        "loss runs; *steady* is the median of the samples from a third of the way in to "
        "the end of the traffic's 30 s. VmHWM is read just before the recorder is stopped.",
        "",
        "| run | steady VmRSS | max VmRSS | VmHWM |", "|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        lines.append(f"| {i} | {run['rss_steady_mib'] * 1.048576:.0f} MB | "
                     f"{run['rss_max_mib'] * 1.048576:.0f} MB | "
                     f"{run['hwm_mib'] * 1.048576:.0f} MB |")
    return row, lines


def recorder_us(r, part):
    """The median µs a message of the recorder's `part` ("kernel_s" or "user_s") in
    this run's CPU figure, if it has one."""
    runs = r.get("cpu", {}).get("recorder", [])
    return median([1e6 * x[part] / x["messages"] for x in runs]) if runs else None


def store_placement(runs):
    """Where the recorder's store ran in these runs (results since 2026-11-27)."""
    placed = {x.get("store_own_thread") for x in runs} - {None}
    if placed == {False}:
        return (" The recorder's store committed on its pipeline's thread "
                "(`--store-thread auto` on this machine's 2 CPUs).")
    if placed == {True}:
        return " The recorder's store committed on a thread of its own."
    return ""


def counted_runs(n):
    """'round' or 'N rounds'."""
    return "round" if n == 1 else f"{n} rounds"


def per_message_and_query(runs):
    """The medians of a CPU arm's runs: (µs a message or packet, µs a query)."""
    return (median([x["us_per_message"] for x in runs]),
            median([x["us_per_query"] for x in runs]))


def tshark_arms(r):
    """The CPU figure's tshark runs, cheapest decoding first: (label, runs, µs a
    packet, µs a query). Its default output (results since 2026-11-27) and
    `-T fields`."""
    arms = [("default output", r["cpu"].get("tshark_summary", [])),
            ("`-T fields`", r["cpu"]["tshark"])]
    return [(label, runs, *per_message_and_query(runs)) for label, runs in arms if runs]


def cpu(r):
    rec = r["cpu"]["recorder"]
    arms = tshark_arms(r)
    rec_us, rec_query = per_message_and_query(rec)
    # The goal is judged against the cheapest way tshark decodes the traffic to a
    # file: `-T fields` builds every packet's whole protocol tree, which flatters
    # the recorder by ~3 ×.
    label, _, tsh_us, tsh_query = arms[0]
    # Per DNS message on the wire (a query or an answer: what tshark captures once,
    # a packet), from the cost of the same queries. On loopback the recorder sees
    # each message at both its sockets and stores it twice (4 records a query):
    # dividing its cost by its records and tshark's by its packets would halve
    # the recorder's side of the ratio.
    ratio = rec_query / tsh_query
    kernel_us, user_us = recorder_us(r, "kernel_s"), recorder_us(r, "user_s")
    against = [f"tshark's {label} {tsh_query / 2:.2f} µs"]
    for other, _, _, other_query in arms[1:]:
        against.append(f"against tshark's {other} ({other_query / 2:.2f} µs) "
                       f"{rec_query / other_query:.3f} ×")
    row = ("CPU per DNS message, kernel programs + recorder, at 20k q/s",
           "≤ 0.1 × tshark",
           # Three decimals: at the goal, two would print 0.10 for a miss.
           f"{ratio:.3f} × tshark, per DNS message (a query or an answer; the same "
           f"queries' CPU): recorder {rec_query / 2:.2f} µs (each message seen and stored "
           f"at both its loopback sockets: {rec_us:.2f} µs a stored copy, kernel "
           f"{kernel_us:.2f} + user {user_us:.2f}), " + "; ".join(against)
           + f"; a stored copy against a packet {rec_us / tsh_us:.3f} ×",
           verdict(ratio <= 0.1, edge=ratio > CPU_EDGE))
    summary = ("tshark, each way interleaved with the recorder's runs: the same dnsperf "
               "run with `tshark -i lo -n -f 'port 53'` in the same namespace, stdout to "
               "a file, ")
    if len(arms) > 1:
        times = arms[1][2] / tsh_us
        summary += ("(a) as it is, its default output: a line a packet with the question, "
                    "its type, the rcode and the answers with their CNAME chain, the "
                    "cheapest way tshark decodes DNS to a file, and (b) with `-T fields` "
                    + (f"(in the first {counted_runs(len(arms[1][1]))} only) "
                       if len(arms[1][1]) < len(arms[0][1]) else "")
                    + "and 15 `-e` fields (addresses, ports, id, question, rcode and each "
                    "answer type's data: what the recorder stores), which builds every "
                    f"packet's whole protocol tree and cost {times:.1f} × as much here (it "
                    "also falls behind at 40k packets a second, one core busy, and catches "
                    "up after dnsperf stops: its CPU is counted to its exit). The goal is "
                    "judged against (a): the issue puts tshark at about 15 µs a packet, "
                    "which is (a)'s order here, not (b)'s; `make bench` compared with (b) "
                    f"alone until 2026-11-27, which made the ratio look {times:.1f} × "
                    "better. For each, ")
    else:
        summary += "`-T fields …`; "
    summary += ("utime+stime of tshark and its dumpcap from 1 s after it reports "
                "capturing to its exit (SIGINT 3 s after dnsperf ends), divided by the DNS "
                "packets it wrote (each loopback packet is captured once, so 2 per query).")
    lines = [
        "Interleaved, alternating which goes first. Recorder: `kernel.bpf_stats_enabled=1`; "
        "`run_time_ns` of the recorder's own programs (their ids from /proc/PID/fdinfo) "
        "from `bpftool prog show -j`, read 1 s after it is ready and 3 s after dnsperf's "
        "10 s at 20k q/s, plus the recorder's utime+stime from /proc/PID/stat at the "
        "first reading to its exit (getrusage; SIGINT 3 s after dnsperf ends, so a "
        "backlog drained at exit is counted), divided by the run's messages in the "
        "database (4 per query). " + summary + " The goal's ratio compares the two on the "
        "same traffic: the recorder's CPU a query against tshark's (a DNS message "
        "each is half of it); a stored copy against a packet, as `make bench` put it "
        "until 2026-11-27, counted each loopback message twice for the recorder. "
        "tshark's kernel-side capture cost (AF_PACKET copies in softirq) is not in its "
        "/proc times; the recorder's kernel programs are counted."
        + store_placement(rec),
        "",
        "| run | recorder messages | kernel s | user s | µs/message | µs/query | "
        + " | ".join(f"tshark {label}: packets | CPU s | µs/packet | µs/query | VmHWM"
                     for label, *_ in arms) + " |",
        "|---|---|---|---|---|---|" + "---|---|---|---|---|" * len(arms),
    ]
    for i, a in enumerate(rec, 1):
        cells = [f"{i}", f"{a['messages']:,}", f"{a['kernel_s']:.2f}", f"{a['user_s']:.2f}",
                 f"{a['us_per_message']:.2f}", f"{a['us_per_query']:.2f}"]
        for _, runs, *_ in arms:
            if i <= len(runs):
                b = runs[i - 1]
                cells += [f"{b['packets']:,}", f"{b['cpu_s']:.2f}", f"{b['us_per_message']:.2f}",
                          f"{b['us_per_query']:.2f}", f"{b['hwm_mib'] * 1.048576:.0f} MB"]
            else:
                cells += [""] * 5
        lines.append("| " + " | ".join(cells) + " |")
    return row, lines + troubles(rec)


def quiet(r):
    """The recorder's and tshark's CPU on a quiet host (results since 2026-11-27)."""
    q = r["quiet"]
    recorder = {x["qps"]: x for x in q["recorder"]}
    tshark = {x["qps"]: x for x in q["tshark_summary"]}

    def cpu_s(x):
        # The recorder's kernel programs with its threads; tshark has none.
        return x["cpu_s"] + x.get("kernel_s", 0)

    def share(x):
        return 100 * cpu_s(x) / x["seconds"]

    def per_message(x):
        # A DNS message: a query or its answer (as in the CPU figure).
        return 1e6 * cpu_s(x) / (2 * x["queries"])

    parts = []
    for qps in sorted(recorder):
        a, b = recorder[qps], tshark.get(qps)
        if b is None:
            continue
        label = "no DNS traffic" if qps == 0 else f"{qps:,} q/s"
        text = f"{label}: {share(a):.2f} % of a core against tshark's {share(b):.2f} %"
        if qps:
            text += f" ({per_message(a) / per_message(b):.1f} ×)"
        parts.append(text)
    row = ("CPU on a quiet host, kernel programs + recorder, against tshark's default "
           "output", "no goal", "; ".join(parts), "informational")
    seconds = q["recorder"][0]["seconds"] if q["recorder"] else 0
    lines = [
        "One recorder (`kernel.bpf_stats_enabled=1`), then one tshark (its default "
        "output, as in the CPU figure), each in a cgroup v2 of its own (its `cpu.stat`: "
        "every thread's CPU in µs, tshark's dumpcap included). Each first sees dnsperf "
        "go through the query list once (5k q/s for 1 s) and 6 s pass: a host that "
        "asks names it asked before (a recorder interns a name and its facts the first "
        f"time). Then, one after the other and a second apart, windows of "
        f"{seconds:.0f} s ({seconds - 1:.0f} s of dnsperf at the rate and 1 s after): "
        "no DNS traffic from the harness, then each rate. The recorder's CPU is its "
        "threads' plus its kernel programs' (bpf_stats); *wakeups* are voluntary context switches of the "
        "process's threads (tshark's and dumpcap's). µs a DNS message: a query or its "
        "answer, as in the CPU figure.",
        "",
        "| traffic | recorder: kernel programs s | CPU s | % of a core | µs a DNS message | "
        "wakeups/s | tshark: CPU s | % of a core | µs a DNS message | wakeups/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for qps in sorted(recorder):
        a, b = recorder[qps], tshark.get(qps, {})
        label = "none" if qps == 0 else f"{qps:,} q/s"
        cells = [label, f"{a['kernel_s']:.3f}", f"{a['cpu_s']:.3f}", f"{share(a):.2f}",
                 f"{per_message(a):.1f}" if qps else "–",
                 f"{a['wakeups'] / a['seconds']:.0f}"]
        if b:
            cells += [f"{b['cpu_s']:.3f}", f"{share(b):.2f}",
                      f"{per_message(b):.1f}" if qps else "–",
                      f"{b['wakeups'] / b['seconds']:.0f}"]
        else:
            cells += [""] * 4
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "At low rates most of the recorder's CPU is not the messages but keeping "
        "`who`, `by-process` and `name` fast: callgrind on the recorder at 100 q/s "
        "(this harness's traffic, after the same priming; 2026-11-27 on 1eab11f) "
        "counted 52.7M instructions in the window, of which 43 % the fact upserts "
        "(`lookups` and `resolutions` rows: the 2,150 names of the query list come "
        "back only every 21 s at 100 q/s, so every query's facts are written "
        "again with each commit instead of merging as under load), 24 % decoding, pairing and attributing the messages, 9 % "
        "packing and deflating the message chunks and the rest SQLite's commits. "
        "Until 2026-11-27 it also woke ~50 times a second while events came (the "
        "rings polled every 20 ms), and each wakeup cost more than the events it "
        "read: polling every 100 ms halved its CPU at 100 q/s (~100 wakeups in the "
        "window instead of ~445; dumpcap wakes ~6 times a second). With no DNS "
        "traffic both sleep.",
    ]
    # cpu.stat's system_usec (results since 2026-11-27 12:00): how much of the
    # threads' CPU was the kernel working for them (syscalls, page cache writes).
    in_kernel = []
    for qps in sorted(recorder):
        a, b = recorder[qps], tshark.get(qps, {})
        if qps and "system_s" in a and a["cpu_s"] and b.get("cpu_s"):
            in_kernel.append(f"{100 * a['system_s'] / a['cpu_s']:.0f} % of the recorder's "
                             f"and {100 * b['system_s'] / b['cpu_s']:.0f} % of tshark's "
                             f"at {qps:,} q/s")
    if in_kernel:
        lines += ["", "Of each one's threads' CPU, the kernel working for them (syscalls, "
                  "writing the page cache; cpu.stat's system time) took "
                  + "; ".join(in_kernel) + ": the rest is their own code."]
    return row, lines + troubles(q["recorder"][:1])


def pair_ratios(without, with_):
    """with / without of each interleaved pair (run back to back)."""
    return [b / a for a, b in zip(without, with_)]


def paired(without, with_):
    """The median of the pairs' ratios, and the ratio of the two medians. The
    machine's speed drifts over a figure's minutes; a pair shares its moment, the
    two medians need not."""
    return median(pair_ratios(without, with_)), median(with_) / median(without)


def median_interval(values):
    """A 95 % interval for the median of `values` (percentile bootstrap: the
    median of `resamples` draws of len(values) with replacement, seeded so that
    a report renders the same twice). The pairs' ratios on this machine spread
    far wider than the goals' margins: the interval says whether a median on
    one side of a goal could as well have fallen on the other. None with fewer
    than MIN_PAIRS_FOR_INTERVAL values."""
    values = tuple(v for v in values if v is not None)
    if len(values) < MIN_PAIRS_FOR_INTERVAL:
        return None
    return bootstrap_median_interval(values)


# The row's text, its verdict and its analysis each ask for the same pairs' interval.
@functools.cache
def bootstrap_median_interval(values, resamples=10_000):
    """`median_interval`'s bootstrap, once for each tuple of values."""
    draw = random.Random(0x646e7371)
    medians = sorted(statistics.median(draw.choices(values, k=len(values)))
                     for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def interval_text(values, digits):
    """'; 95 % interval of the median a–b' (empty without an interval)."""
    interval = median_interval(values)
    if interval is None:
        return ""
    lo, hi = interval
    return f"; 95 % interval of the median {lo:.{digits}f}–{hi:.{digits}f}"


def pairs_for_half_width(ratios, half_width):
    """Pairs a mean ratio would need for a 95 % interval of ±`half_width` at the
    pairs' spread here (1.96 standard errors)."""
    if len(ratios) < 2:
        return None
    return math.ceil((1.96 * statistics.stdev(ratios) / half_width) ** 2)


def count(n):
    """A count for a table cell; `?` where the run could not tell."""
    return "?" if n is None else f"{n:,}"


def rate_measured(runs):
    """The rate figure's text (the median ratio with/without, and probes-only's),
    and the pairs' ratios with/without."""
    with_ = [x["qps"] for x in runs["with"]]
    without = [x["qps"] for x in runs["without"]]
    probes = [x["qps"] for x in runs.get("probes", [])]
    w, wo = median(with_), median(without)
    ratios = pair_ratios(without, with_)
    measured = (f"{median(ratios):.2f}, median of {len(with_)} interleaved pairs"
                f"{interval_text(ratios, 2)} (ratio of the medians "
                f"{w / wo:.2f}: {w / 1e3:.1f}k / {wo / 1e3:.1f}k q/s)")
    if probes:
        alone, _ = paired(without, probes)
        measured += f"; with only its kernel programs attached: {alone:.2f}"
    return measured, ratios


def rate(r):
    measured, ratios = rate_measured(r["rate"])
    row = ("dnsperf's highest rate with the recorder running / without", "≥ 0.95",
           measured, paired_verdict(ratios, 0.95))
    seconds = r.get("config", {}).get("rate_seconds", 10)
    lines = [
        f"dnsperf without `-Q` for {seconds} s (`-c 4 -q 100`): without the recorder, "
        "with only its kernel programs (`dnsq-bench probes-only`: the recorder's "
        "probes attached, their events read every 100 ms and dropped), and with the "
        "recorder running (storing to a fresh database), interleaved, the order "
        "reversed every other round; the figure is the median of the runs' ratios "
        "with/without. Events lost while dnsperf ran flat out are in the last "
        "columns.",
        "",
    ]
    return row, lines + rate_table(r["rate"])


def rate_spare(r):
    measured, _ = rate_measured(r["rate_spare"])
    row = ("dnsperf's highest rate with the recorder on a core of its own (dnsperf and "
           "dnsmasq on CPU 0, the recorder on CPU 1) / without", "no goal", measured,
           "informational")
    lines = [
        "The three arms of *dnsperf's highest rate*, with the traffic and the recorder "
        "kept apart: dnsperf (`taskset -c 0`) and dnsmasq (`taskset -a -p -c 0`, for "
        "this figure only) on CPU 0, the recorder or `dnsq-bench probes-only` "
        "(`taskset -c 1`) on CPU 1; its kernel programs run where the packets are "
        "sent and received, on CPU 0. This is a host with a core to spare for the "
        "recorder, as a server with more than two is: the ratio with the recorder is "
        "what its whole cost takes from the traffic when its threads do not compete "
        "with it for a core.",
        "",
    ]
    return row, lines + rate_table(r["rate_spare"])


def rate_table(runs):
    """The per-run table of a rate figure, and its runs' troubles."""
    with_, without = runs["with"], runs["without"]
    probes = runs.get("probes", [])
    # The probes-only arm is missing from results of before 2026-11-26.
    arms = ([("probes only", probes)] if probes else []) + [("with", with_)]
    lines = ["| run | without: q/s | "
              + " | ".join(f"{name}: q/s | ratio" for name, _ in arms) + " | "
              + " | ".join(f"{name}: events lost" for name, _ in arms) + " |",
              "|---" * (2 + 3 * len(arms)) + "|"]
    for i, (a, *others) in enumerate(zip(without, *(runs for _, runs in arms)), 1):
        cells = [str(i), f"{a['qps']:,.0f}"]
        cells += [cell for b in others for cell in (f"{b['qps']:,.0f}",
                                                    f"{b['qps'] / a['qps']:.3f}")]
        cells += [count(b.get("lost_events", 0)) for b in others]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + troubles(with_) + troubles(probes, who="`dnsq-bench probes-only`")


def iperf_stats_arm(r):
    """The arm whose runs had bpf_stats on and read the probes' run time: its
    own since the figure's runs went without it, before that the runs with the
    probes."""
    return "stats" if "stats" in r["iperf"] else "with"


def iperf_probe_share(r):
    """The probes' run time over the CPU iperf3's client and server used in the
    runs that measured it (None where none did)."""
    arm = iperf_stats_arm(r)
    probes = r["iperf"].get(f"{arm}_probes_s")
    cpu = r["iperf"].get(f"{arm}_iperf_cpu_s")
    if not probes or not cpu or not sum(cpu):
        return None
    return sum(probes) / sum(cpu)


def iperf(r):
    with_, without = r["iperf"]["with"], r["iperf"]["without"]
    stats = r["iperf"].get("stats", [])
    ratio, of_medians = paired(without, with_)
    ratios = pair_ratios(without, with_)
    share = iperf_probe_share(r)
    row = ("Loopback TCP throughput (iperf3) with the probes attached / without", "≥ 0.98",
           f"{ratio:.3f}, median of {len(with_)} interleaved pairs"
           f"{interval_text(ratios, 3)} (ratio of the medians "
           f"{of_medians:.3f}: {median(with_) / 1e9:.1f} / {median(without) / 1e9:.1f} "
           "Gbit/s)"
           + (f"; with `kernel.bpf_stats_enabled` on as well: {paired(without, stats)[0]:.3f}"
              + (f" ({len(stats)} pairs)" if len(stats) < len(with_) else "")
              if stats else "")
           + (f"; the probes ran {100 * share:.2f} % of iperf3's CPU time"
              if share is not None else ""),
           paired_verdict(ratios, 0.98))
    seconds = r.get("config", {}).get("iperf_seconds", 10)
    if stats:
        how = (f"`iperf3 -c 127.0.0.1 -t {seconds}` against `iperf3 -s -1` in the namespace, "
               "received throughput, without the recorder, with it running (all its programs "
               "attached), and with it running and "
               "`kernel.bpf_stats_enabled` on, interleaved (the order reversed every other "
               "round); the figure is the median of the runs' ratios with/without. "
               "bpf_stats is the instrument that measures the probes' run time: it adds two "
               "clock reads to every program run, so it is on only in the third arm, where "
               "the programs' `run_time_ns` is read around the transfer"
               + (f" (in the first {counted_runs(len(stats))} only)"
                  if len(stats) < len(with_) else "")
               + ". iperf3's CPU is its "
               "client's and server's `cpu_utilization_percent` (user and system) over the "
               "transfer.")
        header = ["| run | without | with | ratio | with bpf_stats | ratio | iperf3 CPU "
                  "without | with | with bpf_stats | probes' run time |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
    else:
        how = (f"`iperf3 -c 127.0.0.1 -t {seconds}` against `iperf3 -s -1` in the namespace, "
               "received throughput, with the recorder running (all its programs attached) and "
               "without, interleaved ABBA-style; the figure is the "
               "median of the runs' ratios. In the runs with the probes "
               "`kernel.bpf_stats_enabled` is on (its clock reads count against the probes) "
               "and their programs' `run_time_ns` is read around the transfer; iperf3's CPU "
               "is its client's and server's `cpu_utilization_percent` (user and system) "
               "over the transfer.")
        header = ["| run | without | with | ratio | iperf3 CPU without | with | probes' run "
                  "time |", "|---|---|---|---|---|---|---|"]
    lines = [how, "", *header]
    cpu_without = r["iperf"].get("without_iperf_cpu_s", [])
    cpu_with = r["iperf"].get("with_iperf_cpu_s", [])
    cpu_stats = r["iperf"].get("stats_iperf_cpu_s", [])
    probes = r["iperf"].get(f"{iperf_stats_arm(r)}_probes_s", [])

    def at(values, i, unit, scale=1.0, digits=2):
        """Run i's value (from 0), or a dash where the run did not measure it."""
        return f"{values[i] * scale:.{digits}f} {unit}" if i < len(values) else "–"

    for i, (a, b) in enumerate(zip(without, with_)):
        cells = [str(i + 1), f"{a / 1e9:.2f} Gbit/s", f"{b / 1e9:.2f} Gbit/s", f"{b / a:.3f}"]
        if stats:
            cells += [at(stats, i, "Gbit/s", 1e-9),
                      f"{stats[i] / a:.3f}" if i < len(stats) else "–"]
        cells += [at(cpu_without, i, "s"), at(cpu_with, i, "s")]
        if stats:
            cells.append(at(cpu_stats, i, "s"))
        cells.append(at(probes, i, "ms", 1e3, 1))
        lines.append("| " + " | ".join(cells) + " |")
    return row, lines


def libc(r):
    with_, without = r["libc"]["with"], r["libc"]["without"]
    probes = r["libc"].get("with_probes_ns", [])
    extra = [b - a for a, b in zip(without, with_)]
    row = ("A getaddrinfo call (glibc, a name in /etc/hosts) with the recorder running "
           "/ without", "no goal",
           f"+{median(extra) / 1e3:.1f} µs a call, median of {len(extra)} interleaved "
           f"pairs ({median(with_) / 1e3:.1f} / {median(without) / 1e3:.1f} µs)"
           + (f"; the getaddrinfo programs ran {median(probes) / 1e3:.1f} µs of it"
              if probes else ""),
           "informational")
    lines = [
        f"A C loop of {r.get('config', {}).get('gai_calls', 20000):,} `getaddrinfo` "
        "calls (AF_UNSPEC, service \"80\") for a name the namespace's /etc/hosts holds "
        "(`hosts: files`: glibc asks no DNS server, as when a daemon answers from its "
        "cache), in nanoseconds a call, with the recorder running (its uprobe at the "
        "call and uretprobe at the return, which reads the addresses returned) and "
        "without, interleaved ABBA-style; with it, `kernel.bpf_stats_enabled` is on and "
        "the two getaddrinfo programs' `run_time_ns` is read around the loop. What the "
        "probes cost beyond their run time is the breakpoint traps and the recorder's "
        "own CPU, which the loop shares the machine with.",
        "",
        "| run | without | with | extra a call | getaddrinfo programs a call |",
        "|---|---|---|---|---|",
    ]
    for i, (a, b) in enumerate(zip(without, with_)):
        p = f"{probes[i] / 1e3:.2f} µs" if i < len(probes) else "–"
        lines.append(f"| {i + 1} | {a / 1e3:.1f} µs | {b / 1e3:.1f} µs | "
                     f"{(b - a) / 1e3:+.1f} µs | {p} |")
    return row, lines


def valid_cold(entry, key="cold"):
    """A query's cold-cache timing (`key`: on the history as written, or
    "cold_compacted" on its compacted copy), unless its history kept its pages
    through the eviction (tmpfs: those runs were warm)."""
    cold = entry.get(key)
    if cold and cold.get("resident_after_eviction", 0) > 1 << 20:
        return None
    return cold


def queries(r):
    q = r["queries"]
    rows = []
    for label in ("who", "by-process", "name"):
        entry = q[label]
        cold = valid_cold(entry)
        # Judged warm, as a query repeated in an investigation runs; the first one
        # after the history left the page cache is shown beside it (results since
        # 2026-11-27).
        if cold:
            cold_text = (f"; page cache cold: {cold['median_ms']:.1f} ms median "
                         f"({cold['runs']} runs, max {cold['max_ms']:.1f})"
                         + (", over the goal" if cold["median_ms"] > 50 else ""))
        elif entry.get("cold"):
            cold_text = ("; page cache cold: not measured (the history's filesystem kept "
                         "its pages through the eviction)")
        else:
            cold_text = ""
        compacted = valid_cold(entry, "cold_compacted")
        if cold and compacted:
            cold_text += (f"; cold after `dnsq-recorder compact`: "
                          f"{compacted['median_ms']:.1f} ms median")
        rows.append((f"`dnsq {' '.join(entry['args'])}` on the history", "≤ 50 ms",
                     f"{entry['median_ms']:.1f} ms median ({entry['runs']} runs, "
                     f"{entry['rows']} rows out){cold_text}",
                     verdict(entry["median_ms"] <= 50)))
    has_cold = any(valid_cold(entry) for entry in q.values())
    has_compacted = has_cold and any(valid_cold(entry, "cold_compacted")
                                     for entry in q.values())
    compact = r.get("compact")
    lines = [
        "hyperfine (`-N --warmup 2`, at least 5 and at most 30 runs, about 3 s each), "
        "page cache warm, on the whole 30 days (no `--since`), default `--limit 100`. The "
        "targets are the busiest of the history: the address most answered to clients, "
        "the command that sent most queries, the most asked name. `stats` and `top processes` "
        "(no goal in the table above) read the whole history too."
        + (" *Cold*: the same commands, each run after the history's pages were "
           "dropped from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)` on the "
           "database and its -wal and -shm files, hyperfine `--prepare`; no warm-up): "
           "the first query of an investigation on a host whose page cache has moved "
           "on. The dnsq binary stays cached." if has_cold else "")
        + (" *Compacted*: the cold runs again on a copy of the history that "
           "`dnsq-recorder --db COPY compact` rewrote (SQLite's VACUUM, as in a "
           f"maintenance window: {compact['seconds']:.1f} s, "
           f"{compact['bytes_before'] / 1e6:.0f} MB to {compact['bytes_after'] / 1e6:.0f} MB). "
           "A month of fact rows upserted by name, hour after hour, scatters each "
           "table's pages through the file, which a cold query then reads one by one; "
           "the recorder itself never compacts (VACUUM holds the write lock for the "
           "whole rewrite)." if has_compacted and compact else ""),
        "",
        "| command | median | min | max | runs | rows | exit |"
        + (" cold: median | min | max | runs |" if has_cold else "")
        + (" compacted, cold: median | max |" if has_compacted else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|---|---|" if has_cold else "")
        + ("---|---|" if has_compacted else ""),
    ]
    for label, entry in q.items():
        line = (f"| `dnsq {' '.join(entry['args'])}` | {entry['median_ms']:.1f} ms | "
                f"{entry['min_ms']:.1f} ms | {entry['max_ms']:.1f} ms | {entry['runs']} | "
                f"{entry['rows']} | {entry['exit']} |")
        if has_cold:
            cold = valid_cold(entry)
            line += (f" {cold['median_ms']:.1f} ms | {cold['min_ms']:.1f} ms | "
                     f"{cold['max_ms']:.1f} ms | {cold['runs']} |" if cold else "  |  |  |  |")
        if has_compacted:
            compacted = valid_cold(entry, "cold_compacted")
            line += (f" {compacted['median_ms']:.1f} ms | {compacted['max_ms']:.1f} ms |"
                     if compacted else "  |  |")
        lines.append(line)
    if has_cold:
        lines += [
            "",
            "Where a cold query's time goes (2026-11-27, strace of `by-process firefox` on "
            "this history, schema 18): 819 page reads of 4 KiB, one after another: "
            "`delegations` 236 (each shown row's local resolver and clients), `lookups` and "
            "`lookups_process` 289 (the newest rows, then each row added up over the window), "
            "`resolutions_name` 125 (each row's answers), `names` and `rdata` 120 (the text "
            "shown), `processes` 39. The same 819 reads replayed with pread took 91 ms on one "
            "thread and 32 ms on 8, but the reads of a query depend on each other: tried, "
            "running each shown row's lookups first on 8 threads with connections of their "
            "own (to bring their pages in) took cold `by-process` from 119 to 102 ms, and "
            "warm `by-process` from 22 to 41 ms and warm `name` from 33 to 66 ms (the lookups "
            "ran twice, on 2 CPUs); not kept. `PRAGMA mmap_size` made the cold runs 6 to 9 "
            "times slower (a page fault reads 128 KiB around the page).",
        ]
    return rows, lines


def export(r):
    e = r["export"]
    big, small = e.get("1000000") or e.get(1_000_000), e.get("100000") or e.get(100_000)
    if not big or not small:
        return (("`dnsq export` of 1 million rows", "≤ 3 s, constant memory",
                 "not measured: the history has fewer than 1,000,000 messages", "n/a"),
                [])
    wall = median(big["wall_s"])
    rss_big, rss_small = median(big["rss_mib"]), median(small["rss_mib"])
    constant = rss_big <= 1.25 * rss_small
    ok = wall <= 3 and constant
    row = ("`dnsq export` of 1 million rows", "≤ 3 s, constant memory",
           f"{wall:.2f} s; peak RSS {rss_big * 1.048576:.0f} MB for 1M rows vs "
           f"{rss_small * 1.048576:.0f} MB for 100k", verdict(ok))
    lines = [
        "`dnsq export --format csv --utc --since T` where T is the time of the "
        "1,000,000th (100,000th) newest message, stdout to a file; wall time and peak RSS "
        "(getrusage of the child), interleaved 1M/100k. *Constant memory* is taken as: "
        "peak RSS for 1M rows at most 1.25 × that for 100k rows.",
        "",
        "| rows | wall (median, min–max) | peak RSS (median) | exit |", "|---|---|---|---|",
    ]
    for entry in (big, small):
        lines.append(f"| {entry['rows']:,} | {spread(entry['wall_s'], lambda v: f'{v:.2f} s')} | "
                     f"{median(entry['rss_mib']) * 1.048576:.1f} MB | {entry['exit']} |")
    lines += [
        "",
        "Where an export's time goes: about 80 % of it is the process's own CPU (1M rows to "
        "/dev/null on the idle machine, 2026-11-27: 2.2 s wall, 1.8 s user, 0.4 s system, "
        "the system time SQLite's page reads). Of its instructions (callgrind, the "
        "100,000 newest rows, after the change below): writing the CSV cells 49 %, "
        "unpacking the message chunks 21 % (inflating them 8 %), rebuilding answer sets "
        "18 %, SQLite's reads 7 %. On 2026-11-27 the cell writer stopped "
        "searching each cell byte by byte for bytes to quote (13 % of the CPU) and stopped "
        "searching the cells that cannot hold one: callgrind on the 100,000 newest rows "
        "1,027.7M → 860.5M instructions, user CPU of the 1M export 1.92 → 1.66 s (8 "
        "interleaved pairs, every pair lower); its wall time did not move on this shared "
        "machine (medians 2.58 and 2.57 s). Larger read caches (answer sets, names, rdata: "
        "8 to 16 times the slots) cut the answer-set rebuilds from 64k to 43k and did not "
        "change the time: not kept.",
    ]
    return row, lines


def disk(r):
    d = r["disk"]
    bpm = d["bytes_per_message"]
    row = ("Disk per message on the history", "≤ 60 bytes",
           f"{bpm:.0f} bytes ({sum(d['sizes'].values()) / MB:,.0f} MB for "
           f"{d['messages']:,} messages)", verdict(bpm <= 60))
    lines = [
        "Size of the database file plus its WAL (if any) over the messages in it. Where "
        "the bytes are (SQLite's dbstat, per table and index):",
        "",
        "| table or index | MB | bytes per message |", "|---|---|---|",
    ]
    for name, size in d["tables"]:
        if size / d["messages"] >= 0.5:
            lines.append(f"| {name} | {size / MB:,.1f} | {size / d['messages']:.1f} |")
    lines += ["", "Rows: " + ", ".join(f"{k} {v:,}" for k, v in d["counts"].items()) + "."]
    return row, lines


def history(r):
    h = r["history"]
    how = ("reused from the cache" if h.get("reused") else
           f"generated in {h.get('generation_wall_s', h.get('seconds', 0)):.0f} s"
           + (f" in {h['generated_in']}" if h.get("generated_in") else ""))
    complete = h.get("complete", True)
    lines = [
        f"{h['messages']:,} messages{'' if complete else ' (**incomplete**: the generation budget ran out; the history figures are at this size)'} "
        f"over {h['days']} days ({how}; generator version {h['generator_version']}, seed "
        f"{h['seed']}, store schema {h['schema_version']}): {h['names']:,} names under "
        f"{h['domains']:,} domains plus {h['cdn_edge_names']:,} CDN edge names, CNAME "
        f"chains of 1–3 hops to them, 4 % of names NXDOMAIN, A/AAAA/TXT/MX/HTTPS "
        f"queries; {h['programs']} programs, {h['process_identities']} process "
        f"identities (restarts, resolving threads, 4 in containers); "
        f"{h['lookups']:,} application lookups, most through a caching stub resolver on "
        f"127.0.0.53 ({h['stub_cache_misses']:,} went upstream), so each shows as 2–6 "
        "messages. Written by `dnsq-bench generate` (bench/src) through the recorder's "
        "own store writer (`dnsq_recorder::store`, batches of "
        f"{h['batch_size']}, facts held one hour of message time), with the recorder's "
        "resolver linking applied to each record as the pipeline applies it.",
    ]
    return lines


# What storing one row per loopback packet instead of one per socket copy would
# leave of the recorder's user-space work at best: callgrind on
# recorder/examples/replay.rs (20,000 queries, 80,000 messages) with and without
# `sent-only` (2026-11-27 at 03315cb): `Pipeline::handle_event` 462M -> 387M
# instructions (the replay building its events not included).
ONE_ROW_PER_PACKET_USER = 387 / 462


# The recorder's user-side instructions a message and the part of them that is
# DNS decoding: callgrind on recorder/examples/replay.rs (dnsperf-like traffic:
# 700 names asked over and over, 20,000 queries, 80,000 messages) at 03315cb:
# `Pipeline::handle_event` 462M (the replay building its events and the store's
# setup not included), of which `RecentDecodes::decode` 25M (a message's bytes
# after the ID decoded once; every later message with the same ones shares the
# decoding, and the store what it made of it), the store 271M, resolver linking
# 54M, pairing 32M. At b0aa32e, before decodings were shared beyond a packet's
# two loopback copies: 730M, of which decoding 170M and the store 354M.
USER_INSTRUCTIONS = 462e6 / 80_000
DECODE_INSTRUCTIONS = 25e6 / 80_000
USER_INSTRUCTIONS_BEFORE_SHARING = 730e6 / 80_000


def cpu_analysis(r):
    """What the goal leaves the recorder a DNS message on this run's figures,
    where its time goes, what earlier rounds took off, and why the rest stays."""
    kernel, user = recorder_us(r, "kernel_s"), recorder_us(r, "user_s")
    arms = tshark_arms(r) if "cpu" in r else []
    text = ""
    if kernel is not None and arms:
        # Per DNS message on the wire, as the goal's ratio: on loopback the
        # recorder's programs run and its store writes at both sockets, so twice
        # its figures a stored copy; each packet is decoded once for both.
        label, _, _, tshark_query = arms[0]
        tshark = tshark_query / 2
        budget = 0.1 * tshark
        kernel2, user2 = 2 * kernel, 2 * user
        per_us = USER_INSTRUCTIONS / user
        decode_us = 2 * DECODE_INSTRUCTIONS / per_us
        text += (f"0.1 × tshark's {label} allows {budget:.2f} µs a DNS message in all. "
                 f"The kernel programs took {kernel2:.2f} µs a DNS message (on loopback "
                 "they run at both its sockets)")
        if kernel2 >= budget:
            text += (", more than all of it (that figure includes bpf_stats' own two "
                     "clock reads a run, a few tens of ns each run): little or nothing is "
                     f"left for any user side; the recorder's took {user2:.2f} µs more. ")
        else:
            needed = budget - kernel2
            text += (f", which leaves the recorder's user side {needed:.2f} µs against the "
                     f"{user2:.2f} it took: {user2 / needed:.1f} × less. ")
        text += (f"Decoding is {2 * DECODE_INSTRUCTIONS / 1e3:.1f}k instructions a DNS "
                 f"message of the recorder's {2 * USER_INSTRUCTIONS / 1e3:.1f}k (callgrind, "
                 "`examples/replay.rs`, 700 names asked over and over; "
                 f"{2 * USER_INSTRUCTIONS_BEFORE_SHARING / 1e3:.1f}k before 2026-11-27), "
                 f"about {decode_us:.2f} µs at the {per_us / 1e3:.1f}k instructions a µs the "
                 "recorder ran here: a message is decoded in full once for every message "
                 "with the same bytes but the ID (a query asked again, an answer given "
                 "again, the other loopback copy of a packet), where tshark decodes every "
                 "packet. The recorder then pairs a query with its answer, links a "
                 "resolver's upstream query to the client that caused it, attributes each "
                 "copy to its socket's process and indexes it for `who`, none of which "
                 "tshark does. ")
        rec_query = per_message_and_query(r["cpu"]["recorder"])[1]
        for other, _, _, other_query in arms[1:]:
            text += (f"Against tshark's {other} ({other_query / 2:.2f} µs a DNS message) "
                     f"the ratio is {rec_query / other_query:.3f} ×. ")
    text += (
        "Where the time goes: kernel side, a DNS packet costs the egress and ingress "
        "programs ~0.3–0.4 µs a run, the largest part `bpf_ringbuf_output` (perf, all "
        "CPUs); they wake the reader only when a ring/8 threshold is crossed or the "
        "socket's process is new (`BPF_RB_NO_WAKEUP` otherwise; the reader polls "
        "every 100 ms while events come), read the headers straight from the packet, "
        "and the send/receive tracepoints read the socket's ports with plain loads "
        "(−18 to −29 % a run, 2026-11-26, bpf_stats side by side); bpf_stats itself "
        "adds two clock reads to each run. User side the instructions are flat, a "
        "stored copy: the store (fact upserts, packing the message log's columns and "
        "deflating them, interning) ~3.4k, resolver linking ~0.7k, pairing ~0.4k, "
        "decoding ~0.3k. What earlier rounds took off, each "
        "measured side by side with `bench/compare.py` at 20k q/s: schema 15's "
        "message log in chunks instead of a SQLite row a message (3.10 → 2.73 µs a "
        "stored copy, 4 rounds); the round of 2026-11-26 (3.53 → 2.92, 6 rounds: a "
        "question key made once a decoding, the linker forgetting answered "
        "exchanges, no copy of the payload out of the ring buffer, records dropped "
        "on the thread that made them, fact maps that keep their room); the store "
        "committing on the pipeline's thread on a machine of two CPUs (`--store-thread "
        "auto`, 2026-11-27: 0.79 of the CPU, every pair lower; 0.88 at ~40k q/s); "
        "a decoding shared by every message with the same bytes but the ID, and the "
        "store's columns made once for each (2026-11-27: 2.95 → 2.32 µs a stored copy, "
        "0.788, 6 rounds, every pair lower; with whether a message has extra questions "
        "among those columns, 3.04 → 2.18, 0.718; sharing the decoding alone measured "
        "0.995: the store then read the shared text, long out of the processor's "
        "caches, and lost what decoding saved). "
        "Boxing each record was measured slower (1.13) and not kept. The lever left, "
        "one row per loopback packet instead of one per socket copy (each query on "
        "loopback is 4 messages: 2 packets seen at 2 sockets), would take "
        f"{100 * (1 - ONE_ROW_PER_PACKET_USER):.0f} % off the user side at best "
        "(callgrind, the replay's `sent-only` mode)")
    if kernel is not None and arms:
        merged = 2 * (kernel + user * ONE_ROW_PER_PACKET_USER)
        text += (f": {merged:.2f} µs a DNS message here, {merged / tshark:.2f} × tshark's "
                 f"{label}")
    text += (". The recorder's figure also moves with the machine: four `make bench` "
             "runs of unchanged code measured it at 2.9–3.9 µs a stored copy, the "
             "kernel programs at 0.47–0.58.")
    return text


def iperf_analysis(r):
    """What the probes cost a TCP transfer, measured, against the throughput's
    run-to-run noise."""
    text = ("For non-DNS traffic every packet passes the two cgroup_skb programs and "
            "every send/receive call the two sock_*_length tracepoints, each of which "
            "reads the ports and returns; nothing is copied. Since 2026-11-26 the "
            "packet programs leave the addresses alone for such packets and read the "
            "headers straight from the packet (egress ~97 → ~76 ns a run on iperf3 "
            "traffic), and the tracepoints read the socket's ports with plain loads "
            "instead of `bpf_probe_read_kernel` (sock_recv 84 → 54 ns, sock_send 136 "
            "→ 102; bpf_stats, side by side). "
            "Beyond the programs, a recorder polling its rings every 20 ms woke about "
            "fifty times a second per thread with no DNS traffic, each wakeup taking a "
            "core from iperf3 for a moment (side by side, 8 rounds of 5 s: a recorder "
            "stopped with its probes attached 0.973 of the throughput without, a running "
            "one 0.936). Since 2026-11-26 an idle recorder sleeps and the first event "
            "after a poll interval without a wakeup wakes it (20 ms then, 100 ms since "
            "2026-11-27; its threads were switched in 3 times in 3 s instead of 149; iperf3 with it against the polling build: 1.006, "
            "median of 10 pairs, within the noise). ")
    share = iperf_probe_share(r)
    if share is not None:
        text += (f"Measured directly, the probes ran {100 * share:.2f} % of the CPU time "
                 "iperf3's client and server used: on a CPU-bound loopback transfer that "
                 "is about what they can take from its throughput. ")
    text += ("What the programs do for such packets is not what costs the transfer: a "
             "throwaway build whose packet programs and send/receive tracepoints return "
             "at once (the same hooks attached, nothing read) kept 0.975 of the throughput "
             "without the recorder, against 0.985 for the real programs, side by side (8 "
             "interleaved rounds of 6 s, 2026-11-27 on 925f1e2; pairwise 0.93–1.05 and "
             "0.94–1.02). What is left is having the hooks attached at all (the kernel's "
             "cgroup and tracepoint dispatch for every packet and call), which a recorder "
             "that sees every DNS packet with its socket cannot avoid. ")
    with_, without = r["iperf"]["with"], r["iperf"]["without"]
    stats = r["iperf"].get("stats")
    if stats:
        text += ("Until 2026-11-27 the figure's runs with the probes had "
                 "`kernel.bpf_stats_enabled` on, to read the probes' run time; on this "
                 "transfer the programs run about half a million times a second, and "
                 "bpf_stats adds two clock reads to each run, so those runs measured the "
                 "instrument too. Side by side by hand on c4db809 (8 rounds of 8 s) the "
                 "probes kept 0.993 of the throughput without them and the probes with "
                 "bpf_stats 0.942 (pairwise 0.90–1.06 and 0.87–1.09); here "
                 f"{paired(without, with_)[0]:.3f} and {paired(without, stats)[0]:.3f}. "
                 "Both differences are within the spread of the pairs, so what bpf_stats "
                 "costs this transfer is not pinned down; a host runs with it off, so the "
                 "figure is the arm without it. ")
    ratios = pair_ratios(without, with_)
    if ratios:
        text += (f"The throughput itself moves from run to run (pairwise ratios "
                 f"{min(ratios):.2f}–{max(ratios):.2f} here), far more than the 2 % the "
                 "goal allows, so a verdict either way on this machine is mostly noise. ")
        # The arm without the probes against itself: consecutive runs, nothing
        # changed between them.
        alike = [b / a for a, b in zip(without, without[1:])]
        if len(alike) >= 2:
            text += (f"The runs without the probes, each against the next, nothing changed "
                     f"between them: {min(alike):.2f}–{max(alike):.2f}. ")
        interval = median_interval(ratios)
        needed = pairs_for_half_width(ratios, 0.01)
        if interval and needed:
            seconds = r.get("config", {}).get("iperf_seconds", 10)
            text += (f"The median's 95 % interval is {interval[0]:.3f}–{interval[1]:.3f}; "
                     f"at this spread of the pairs (standard deviation "
                     f"{statistics.stdev(ratios):.3f}) an interval of ±0.01 would take "
                     f"about {needed:,} pairs, {needed * 2 * seconds / 3600:.1f} hours of "
                     "transfers. ")
        text += ("Alternating faster does not help: with nothing changed, one iperf3 "
                 "transfer's received bytes in back-to-back windows (lo's counter; "
                 "2026-11-28, by hand) differed by a standard deviation of 0.23 between "
                 "windows of 0.5 s (60 pairs) and 0.17 between windows of 1 s (30 pairs): "
                 "the noise is the machine's from one moment to the next, not a drift "
                 "that pairs close in time would cancel. Pinning iperf3's client and "
                 "server narrowed it a little, not to the goal's scale (windows of 0.5 s, "
                 "20 pairs each: 0.19 unpinned, 0.14 with the client and the server on a "
                 "CPU each, 0.12 with both on one; `-A` in 6 pinned pairs of `make bench`'s "
                 "transfers: 29–40 Gbit/s). Three "
                 "`make bench` runs of the same probes and recorder (681f53f, 8a879b1, "
                 "a5b79e3) gave 0.981, 0.925 and 0.973. The probes' share of iperf3's CPU "
                 "above is the measurement that does not ride on that noise.")
    return text


def rate_analysis(r):
    """Why the rate ratio is what it is: the recorder's CPU a query against what a
    query costs dnsperf and dnsmasq when they have both cores, and the ratio with
    the kernel programs alone."""
    text = ("At dnsperf's highest rate dnsperf and dnsmasq already use both cores, so "
            "every µs the recorder spends is taken from them; since nothing is lost any "
            "more, the recorder does all of its work at that rate (in earlier rounds it "
            "lost events there, which flattered this ratio). ")
    runs = r.get("cpu", {}).get("recorder", [])
    kernel_us = budget_us = None
    rate_runs = r.get("rate", {})
    without = [x["qps"] for x in rate_runs.get("without", [])]
    probes = [x["qps"] for x in rate_runs.get("probes", [])]
    if runs and without:
        recorder_us = median([x["us_per_query"] for x in runs])
        peers_us = 2 * 1e6 / median(without)
        kernel_us = median([1e6 * x["kernel_s"] / x["queries"] for x in runs])
        budget_us = peers_us / 19
        text += (f"Here a query costs the recorder {recorder_us:.0f} µs of CPU (4 "
                 f"messages; {kernel_us:.1f} µs of it its kernel programs, bpf_stats in "
                 f"the CPU runs) and dnsperf plus dnsmasq about {peers_us:.0f} µs (2 cores "
                 f"/ {median(without) / 1e3:.1f}k q/s), which predicts a ratio of about "
                 f"{peers_us / (peers_us + recorder_us):.2f}; 0.95 would need the "
                 f"recorder under {budget_us:.1f} µs a query, "
                 f"{recorder_us / budget_us:.1f} × less than now. ")
    if probes and len(probes) == len(without):
        alone = pair_ratios(without, probes)
        text += (f"The third arm measures the kernel programs' part directly: with only "
                 f"them attached (their events read and dropped) dnsperf kept "
                 f"{median(alone):.2f} of its rate (runs "
                 + ", ".join(f"{x:.2f}" for x in alone) + "). ")
        if median(alone) >= 0.95:
            text += ("The programs alone are within the goal (the median; single runs "
                     "move as much as the machine does), so the gap is the recorder's "
                     "own CPU (decoding, pairing, linking and storing four messages a "
                     "query), which competes with dnsperf and dnsmasq for the two "
                     "cores. ")
            if kernel_us is not None and kernel_us >= budget_us:
                text += ("(bpf_stats' time a query, which includes the statistics' own "
                         "clock reads, exceeds the budget above; measured side by side, "
                         "the programs do not take that much of the rate.) ")
        else:
            text += ("The programs alone already miss the goal here; the recorder's "
                     "own CPU (decoding, pairing, linking and storing four messages a "
                     "query) takes the rest, competing with dnsperf and dnsmasq for the "
                     "two cores. ")
    return text + (
        "Since schema 15 a message is no SQLite row of its own (it is packed into a "
        "chunk, ~1.2k instructions a message), and what is left of the recorder's cost "
        "is flat: decoding, pairing and resolver linking, interning, the fact maps, "
        "packing and deflating (the round of 2026-11-26 took 17 % off the user side, "
        "side by side; a batch of 5,000 messages instead of 1,000 a transaction "
        "measured 0.99 of the CPU, 5 pairs; since 2026-11-27 the store commits on the "
        "pipeline's thread on a machine of two CPUs, which spares handing each record "
        "to a thread on the other core: 0.79–0.92 of the CPU, side by side): no single "
        "part holds the factor still missing. One row "
        "per loopback packet (the replay's `sent-only` mode: "
        f"−{100 * (1 - ONE_ROW_PER_PACKET_USER):.0f} % of the user side at best) would "
        "move the ratio by a few hundredths. " + spare_core_analysis(r, kernel_us))


def spare_core_analysis(r, kernel_us):
    """What the figure with the recorder on a core of its own says (or, for results
    without it, what it was expected to say)."""
    spare = r.get("rate_spare")
    if not spare or not spare.get("probes"):
        return ("On a machine with a core to spare the recorder's threads run beside "
                "the traffic, and the ratio approaches the probes-only one.")
    without = [x["qps"] for x in spare["without"]]
    with_runs = pair_ratios(without, [x["qps"] for x in spare["with"]])
    alone_runs = pair_ratios(without, [x["qps"] for x in spare["probes"]])
    with_, alone = median(with_runs), median(alone_runs)
    text = (f"With a core of its own (dnsperf and dnsmasq on CPU 0, the recorder on "
            f"CPU 1: its own figure above) dnsperf kept {with_:.2f} of its rate with the "
            f"recorder and {alone:.2f} with only its kernel programs")
    overlap = min(with_runs) <= max(alone_runs) and min(alone_runs) <= max(with_runs)
    if abs(with_ - alone) <= 0.03:
        text += (": the same within the runs' noise. Once the recorder does not compete "
                 "with the traffic for a core, what is left is its kernel programs, "
                 "which run on the traffic's own core")
    elif overlap:
        text += (f", but the two arms' runs overlap (with the recorder "
                 f"{min(with_runs):.2f}–{max(with_runs):.2f}, programs only "
                 f"{min(alone_runs):.2f}–{max(alone_runs):.2f}): in "
                 f"{len(with_runs)} rounds this figure cannot tell them apart. Either way "
                 "the kernel programs run on the traffic's own core")
    elif with_ > alone:
        # The programs run in both arms: more rate with the recorder than with its
        # programs alone is the machine's noise, not something the recorder gives.
        text += (f": more with the recorder than with its programs alone, which run in "
                 f"both arms, so the {with_ - alone:.2f} between them is the machine's "
                 "noise. Either way the kernel programs run on the traffic's own core")
    else:
        text += (f": the recorder's threads still take {alone - with_:.2f} beyond its "
                 "programs, which run on the traffic's own core")
    if kernel_us is not None:
        peers_us = 1e6 / median(without)
        text += (f" (bpf_stats: {kernel_us:.1f} µs a query, against about "
                 f"{peers_us:.0f} µs that dnsperf and dnsmasq spend a query on that "
                 f"core at {median(without) / 1e3:.1f}k q/s, which predicts "
                 f"{peers_us / (peers_us + kernel_us):.2f}; 0.95 there would need the "
                 f"programs under {peers_us / 19:.1f} µs a query)")
    return text + (
        ". Copying the payload is not where their time goes (`--payload-cap 12`: "
        "egress and ingress cost 405 and 279 ns a run against 418 and 266 with whole "
        "messages; bpf_stats, 3 rounds, 2026-11-27), and capturing a loopback packet "
        "once instead of at both ends would take at most ~0.37 µs a query off (−20 %: "
        "a throwaway variant whose ingress program sends nothing for `lo` measured "
        "1.34–1.56 µs a query against 1.82), about +0.02 on the prediction above: the rest is "
        "the egress program, the socket hooks and the dispatch of every hook.")


ANALYSIS = {
    # From the investigation done with this harness on 2026-11-25 (callgrind on
    # recorder/examples/replay.rs, perf on the live recorder, bpf_stats per program,
    # heaptrack, smaps), last on the tree of 22:20; "cpu" and "disk" again on
    # 2026-11-26 (callgrind on 4e3a591 and e2aa14c, perf of all CPUs, the history's
    # columns and fact rows).
    # Re-check when the code changes.
    # Values that are callables read this run.
    "loss": lambda r: (
        "Every loss was counted by the kernel (`lost_ringbuf_full` above); the store "
        "dropped nothing. On this machine (2 CPUs, `--store-thread auto`) the "
        "recorder decodes and writes SQLite on one thread; with a thread for each "
        "(more CPUs, or `--store-thread yes`) the two execute about 6.6k and 10.9k "
        "instructions a message (callgrind on the replay, fact upserts included; the capture "
        "thread was ~20k before this round: each loopback packet's second copy now "
        "shares the first one's decoding, a process's identity is built once a second "
        "instead of per message, codes are static text and the time text is made only "
        "for JSON). What is left is scheduling: the traffic and the recorder share "
        "2 cores, and a gap longer than the 8 MiB ring holds (about 0.17 s at 200k "
        "messages/s: an event is a 168-byte header and the message) loses events. "
        "Where the gaps come from (2026-11-28, the replay at 50k q/s with the kernel's "
        "loss counter, the recorder's threads' CPU and /proc/stat read every 0.5 s): "
        "the events were lost in the half-seconds when the hypervisor's steal rose to "
        "17–36 % of the machine's CPU (43 % in the half-second before) and idle fell "
        "to 4–7 %, while the recorder's thread ran 46–74 % of a core; 10 interleaved runs of 20 s an hour later, "
        "steal under 28 % in every half-second, lost nothing (5 with the store on "
        "the pipeline's thread, 5 on its own). Those pairs also measured the "
        "placement again: on its own thread the store cost 2.44 µs a message against "
        "2.24 inline (medians; every pair higher), so `auto` keeps it inline on 2 "
        "CPUs. The sender is a replay because dnsperf and dnsmasq reach about half "
        "of 50k q/s here (`make bench` at 0918c69 once saw dnsperf reach 49.1k with "
        "the machine quieter)." + steal_of_lossy_runs(r)),
    "memory": (
        "smaps under 50k q/s (tree of 22:20): 17 MB is the event ring buffer "
        "(`anon_inode:bpf-map`: 8 MiB of data mapped twice so that records never wrap, "
        "and every page counts in both mappings), 6 MB the binary, 2.5 MB the C "
        "libraries, 19–21 MB heap: SQLite's 4 MiB page cache, the resolver linker's "
        "exchanges in flight, up to 16 batches of 256 records queued for the store "
        "thread, the pairer's queries in flight and the records held 250 ms for "
        "resolver linking. Three things took the steady figure from 83–97 MB to this: "
        "the 8 MiB ring (16 MiB before; nothing lost at 50k q/s in 15 runs of 30 s); "
        "mimalloc's `purge_delay` at 10 ms instead of 1 s (with 1 s the heap read 33–43 "
        "MB: a second's worth of freed records stayed resident); and the pipeline's "
        "queues giving their buffer back after a burst (a new socket's first message "
        "holds everything behind it for up to 200 ms, which grew the linking queue to "
        "32–64k slots of 256-byte records, 8–16 MiB, for the rest of the run: the "
        "runs that read ~16 MB higher than the others). Raising `--ring-buffer-size` "
        "for a busier host costs twice its size."),
    "cpu": lambda r: cpu_analysis(r),
    "rate": lambda r: rate_analysis(r),
    "iperf": lambda r: iperf_analysis(r),
    "queries": (
        "Schema 5 keys `lookups` and `delegations` by name and `by-process`/`name`/`who` "
        "read only the rows they show (newest hours first, stopping at `--limit`); the "
        "remaining cost of `name` is SQLite adding up the name's hourly `lookups` rows "
        "(57k for the busiest name). Fix: per-day roll-ups for windows longer than a "
        "day."),
    "export": (
        "CSV is written straight from the stored messages (no `MessageRecord` per "
        "row); since schema 15 they are unpacked a chunk (up to 1,024) at a time, "
        "~0.2 µs a message, where SQLite decoded a row each (1.8 s for 1M before, "
        "side by side 1.83 → 1.25 s); what is left is the cached lookups of names, "
        "processes and answer sets, and formatting."),
    "disk": lambda r: (
        "Since schema 15 the message log is written in chunks: the messages of one "
        "write (up to 1,024) packed column by column (each value a varint of its "
        "difference from the message before) and deflated at level 1, "
        + f"{dict(r['disk']['tables']).get('message_chunks', 0) / r['disk']['messages']:.1f}"
        + " bytes a message where a `messages` row took ~58 (a record header of 18, "
        "the time alone 8); level 6 would pack ~1.3 bytes smaller at 3.7 × the time "
        "(`recorder/examples/chunk_size.rs`). The rest is the hourly fact tables: "
        "`lookups` ("
        + f"{r['disk']['counts']['lookups'] / r['disk']['messages']:.2f}"
        + " rows a message on this history) and `resolutions` ("
        + f"{r['disk']['counts']['resolutions'] / r['disk']['messages']:.2f}"
        + "), each with secondary indexes that repeat the whole key — on a month with "
        "50,000 names a process rarely asks the same name twice in an hour, so an "
        "hourly fact row is nearly a copy of the messages it sums up. Schema 7 took "
        "156 bytes to 121 (an answered query counts once; one `resolutions` index "
        "replaced two), schema 8 dropped `resolutions_hour`, schema 14 stores the "
        "fact rows' times as offsets (115 → 108), schema 15 the chunks (108 → 64), "
        "schema 16 drops `lookups_hour` (64 → ~59: retention, the table's first and "
        "last hour and short `top`/`stats` windows seek each process's hours in "
        "`lookups_process` instead, 251 processes on this history; side by side "
        "`top domains` over the last hour 24 / 21 ms, `top processes` over the last "
        "day 275 / 274 ms, `stats` over the last hour 10.9 / 11.5 ms). The fact "
        "tables and their indexes, filled in random key order, take ~14 % more pages "
        "than packed ones: VACUUM packs this history to 53.5 bytes a message, which "
        "the recorder does not do (it would rewrite the whole file)."
        + resolver_share(r) + loopback_share(r)),
}


def resolver_share(r):
    """The local resolvers' own share of the fact rows, where the run counted it."""
    own = r["disk"].get("resolver_rows")
    counts = r["disk"]["counts"]
    if not own or not counts.get("resolutions") or not counts.get("lookups"):
        return ""
    return (" On this history the local resolvers' own rows are "
            f"{100 * own['resolutions'] / counts['resolutions']:.0f} % of `resolutions` "
            "(their upstream answers, which their clients' rows repeat) and "
            f"{100 * own['lookups'] / counts['lookups']:.0f} % of `lookups` (both sides "
            "of their exchanges; `delegations` links them to their clients): keeping "
            "those as links to the clients' rows rather than rows of their own is the "
            "largest lever besides one row per loopback packet, at the price of what "
            "`dnsq by-process` can show for the resolver itself.")


def loopback_share(r):
    """What one row per loopback packet would take off, where the run counted the
    loopback messages."""
    disk = r["disk"]
    loopback = disk.get("loopback_messages")
    if loopback is None:
        return ""
    share = loopback / disk["messages"]
    tables = dict(disk["tables"])
    row = (tables.get("messages", 0) + tables.get("message_chunks", 0)) / disk["messages"]
    saved = row * share / 2
    return (f" {100 * share:.0f} % of this history's messages are between two sockets "
            "of the host (applications and their stub resolver), each packet stored "
            "once per end: one row per loopback packet would take at most "
            f"{saved:.0f} bytes a message off (to ~{disk['bytes_per_message'] - saved:.0f}"
            "), less the receiving end's columns it would have to carry: little, now "
            f"that the message log is {row:.0f} bytes a message.")


def rows_and_sections(r):
    rows, sections, missed = [], [], []
    figures = [("loss", loss, "Messages recorded at 50k queries/s"),
               ("memory", memory, "Recorder memory"),
               ("contention", contention, "Messages recorded at 50k queries/s on busy CPUs"),
               ("cpu", cpu, "CPU per DNS message against tshark"),
               ("quiet", quiet, "CPU on a quiet host"),
               ("rate", rate, "dnsperf's highest rate"),
               ("rate_spare", rate_spare, "dnsperf's highest rate, the recorder on a core of "
                "its own"),
               ("iperf", iperf, "Loopback TCP throughput"),
               ("libc", libc, "What the libc probes cost a getaddrinfo call"),
               ("queries", queries, "dnsq queries on the history"),
               ("export", export, "dnsq export"),
               ("disk", disk, "Disk per message")]
    for key, function, title in figures:
        source = "loss" if key == "memory" else key
        if source not in r:
            continue
        row, lines = function(r)
        new_rows = row if isinstance(row, list) else [row]
        rows += new_rows
        sections.append((title, lines))
        if any(word in x[3] for x in new_rows
               for word in ("missed", "not shown", "at the edge")) \
                and key in ANALYSIS:
            text = ANALYSIS[key]
            if callable(text):
                text = text(r)
            if any(run.get("recorder_trouble") for run in recorder_runs(r, key)):
                text = ("In this run the figure is dominated by the recorder falling "
                        "behind for good (see *The recorder did not stop*); what follows "
                        "was found on a recorder that kept running. " + text)
            missed.append((title, text))
    return rows, sections, missed


def recorder_runs(r, key):
    """The runs of a figure that had the recorder running."""
    if key in ("loss", "memory"):
        return r.get("loss", [])
    if key in ("cpu", "quiet"):
        return r.get(key, {}).get("recorder", [])
    if key in ("rate", "rate_spare"):
        return r.get(key, {}).get("with", [])
    return []


def table(r):
    rows, _, _ = rows_and_sections(r)
    header = ("figure", "goal", "measured", "verdict")
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(4)]
    widths[2] = min(widths[2], 90)
    out = []
    for row in [header, *rows]:
        cells = [str(c).replace("**", "") for c in row]
        out.append("  ".join(c[:90].ljust(w) for c, w in zip(cells, widths)))
    return "\n".join(out)


PHASE_NAMES = {"loss": "messages at 50k q/s", "contention": "the same on busy CPUs", "cpu": "CPU against tshark",
               "quiet": "quiet host", "rate": "dnsperf's rate",
               "rate_spare": "rate with a core of its own", "iperf": "iperf3",
               "libc": "getaddrinfo", "queries": "dnsq queries",
               "compact": "a compacted copy", "export": "export",
               "disk": "disk"}


def phases_sentence(r):
    """Where the minutes went (results from before 2026-11-27 have no phases)."""
    phases = r.get("phase_seconds")
    if not phases:
        return ""
    parts = []
    if "make_bench_s" in r:
        parts.append(f"set-up and build {(r['make_bench_s'] - r['elapsed_s']) / 60:.1f}")
    for name, seconds in phases.items():
        if name == "history":
            label = ("the history, generated" if not r.get("history", {}).get("reused", True)
                     else "the history, reused")
        else:
            label = PHASE_NAMES.get(name, name)
        parts.append(f"{label} {seconds / 60:.1f}")
    return " Minutes by part: " + ", ".join(parts) + "."


def markdown(r, _table=None):
    rows, sections, missed = rows_and_sections(r)
    m = r["machine"]
    busy = r.get("background_busy_pct", {})
    md = [
        "# dnsq benchmarks",
        "",
        f"Written by `make bench` (bench/run.py) on {m['date']} at `{m['git']}`. "
        + (f"`make bench` took {r['make_bench_s'] / 60:.1f} minutes (set-up and build "
           f"included; the measurements {r['elapsed_s'] / 60:.1f})"
           if "make_bench_s" in r else
           f"The measurements took {r['elapsed_s'] / 60:.1f} minutes")
        + (", the history generated in this run." if not r.get("history", {}).get("reused", True)
           else ", the history reused from the cache." if "history" in r else ".")
        + " Do not edit by hand: run `make bench` again. Medians of "
        f"{r.get('config', {}).get('repeats', 3)} runs (dnsperf's rate: "
        f"{r.get('config', {}).get('rate_repeats', 3)}"
        + (f", with a core of its own: {r['config']['rate_spare_repeats']}"
           if "rate_spare" in r and "rate_spare_repeats" in r.get("config", {}) else "")
        + f", iperf3: "
        f"{r.get('config', {}).get('iperf_repeats', 6)}); with/without comparisons "
        "interleaved in the same run."
        + phases_sentence(r),
        "",
        "| figure | goal | measured | verdict |",
        "|---|---|---|---|",
    ]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    changed = {k: v for k, v in r.get("config", {}).items()
               if k in run.GOAL_SETTINGS and run.GOAL_SETTINGS[k] != v}
    if changed:
        md += ["", "**Not the goals' settings** (shortened by environment variables): "
               + ", ".join(f"{k} = {v}" for k, v in changed.items()) + "."]
    if r.get("note_rerun"):
        md += ["", f"**Merged results**: {r['note_rerun']}."]
    md += [
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs (nproc): {m['cpu']}; memory {memory_gib(m['memory'])}; "
        f"kernel {m['kernel']}; {m['os']}",
        "- " + "; ".join(m["tools"].values()),
        f"- Load average at the start: {' '.join(m['loadavg'])}. Share of the machine's "
        "CPU busy with other work while the harness ran nothing (sampled before each "
        "live figure): " + ", ".join(f"{k} {v} %" for k, v in busy.items()) + ". "
        "The machine is shared; interleaving keeps the with/without ratios fair, but "
        "absolute rates move with that load.",
        "",
        "## Workload",
        "",
    ]
    if "mix" in r:
        mix = r["mix"]
        md.append(
            "dnsmasq (`--no-resolv --no-hosts --conf-file=/dev/null --keep-in-foreground`, "
            "answers from `--host-record`, `--cname`, `--txt-record`, `--mx-host` and "
            "`--local` for NXDOMAIN) on 127.0.0.1:53 inside a network namespace the "
            "harness creates (only `lo`, up); dnsperf and iperf3 in the same namespace. "
            f"The query list ({mix['lines']:,} lines, dnsperf loops over it) is, by share: "
            + ", ".join(f"{k} {v} %" for k, v in mix["share_pct"].items())
            + " (CNAME: names that are aliases, one or two hops, asked A or AAAA; a third "
            "of the hosts have no AAAA, so those AAAA answers are empty NOERROR).")
        md.append("")
    if "history" in r:
        md += ["History for the `dnsq` figures: " + history(r)[0], ""]
    for title, lines in sections:
        md += [f"## {title}", "", *lines, ""]
    killed = [run for key in ("loss", "cpu", "rate", "rate_spare")
              for run in recorder_runs(r, key)
              if run.get("recorder_trouble")]
    if killed:
        missed.insert(0, ("The recorder did not stop", (
            f"In {len(killed)} runs of this benchmark the recorder had not exited "
            f"{r.get('config', {}).get('stop_seconds', 30)} s after SIGINT and was killed (see the runs above); what it had "
            "committed was counted. Seen while this harness was written (tree of "
            "2026-11-25 15:20, schema 4): it was at 100 % CPU in "
            "`ResolverLinker::expire` (recorder/src/resolvers.rs), which `note()` calls "
            "for every new client↔resolver exchange and which walks every entry of "
            "`asks` each time; against a resolver that answers from its own data "
            "(dnsmasq here, never going upstream) `asks` holds every exchange of the "
            "last 2 s, so the work per message grows with the rate (quadratic): the "
            "backlog is never drained. Fix: expire `asks` from a time-ordered queue "
            "like `exchange_order`, not by a full `retain` per message.")))
    if missed:
        md += ["## Goals missed, not shown or met at the edge: why, and what would fix "
                "them", ""]
        for title, text in missed:
            md += [f"- **{title}.** {text}"]
        md.append("")
    md += ["## Commands", "",
           "Exactly what the harness ran (`$NETNS` is the namespace it creates, `$ZONE` "
           "the per-run zone `r<random>.dnsq-bench.test`, `$DNSMASQ_PID` the pid of the "
           "dnsmasq it runs there, `$BENCH_DIR` is "
           "target/dnsq-bench (the binaries are copied to `$BENCH_DIR/bin` at the start, "
           "so that a rebuild during the run cannot change them), `$TMP` a temporary "
           "directory under it). `make bench` itself installs the Debian packages "
           "missing among `dnsperf tshark iperf3 hyperfine bpftool dnsmasq-base dnsutils "
           "iproute2 python3 procps` (debconf: `wireshark-common/install-setuid false`), "
           "runs `make build` and `cargo build --release -p dnsq-bench`, then "
           "`python3 bench/run.py`.", ""]
    for figure, commands in r.get("commands", {}).items():
        commands = [shorten(c) for c in commands]
        short = [c for c in commands if len(c) <= 500]
        md += [f"**{figure}**", "", "```sh", *short, "```", ""]
        for c in commands:
            if len(c) > 500:
                md += ["<details><summary><code>" + c.split(" --", 1)[0] + " …</code> "
                       f"(full command, {len(c):,} characters)</summary>", "", "```sh", c,
                       "```", "", "</details>", ""]
    return "\n".join(md)


def memory_gib(meminfo):
    """'24684096 kB' (MemTotal) → '23.5 GiB (MemTotal 24684096 kB)'."""
    try:
        return f"{int(meminfo.split()[0]) / 1024 ** 2:.1f} GiB (MemTotal {meminfo})"
    except (ValueError, IndexError):
        return meminfo


def shorten(command):
    """Temporary directory and per-run file names → stable placeholders (run.py
    does this already; kept for results of older runs)."""
    import re

    command = re.sub(r"\$BENCH_DIR/dnsq-bench-[^/ ]+/", "$TMP/", command)
    return re.sub(r"live-\d+\.db", "live.db", command)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results file of bench/run.py")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parent.parent / "BENCHMARKS.md",
                        help="where the report goes (default: BENCHMARKS.md)")
    options = parser.parse_args()
    results = json.loads(options.results.read_text())
    print(table(results))
    options.output.write_text(markdown(results))
