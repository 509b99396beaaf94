#!/usr/bin/env python3
"""Whole-program replay throughput of novapulse against a reference loop.

Generates (once, cached) an access-log file of about --size-mb MB with
`novapulse gen`, drops its pages from the page cache and reads it back once,
so every run finds it cached as reading it from disk leaves it (--keep-cache
measures it as found), then in one run:
  - novapulse replay --threads N for each N in --threads,
    timing the whole process; events/s, MB/s;
  - bench/reference_loop.cc (simdjson iterate_many + hash map) on the same file,
    as simdjson runs it by default (stage 1 of the next batch on a second
    thread) and with --one-thread;
each configuration once per round, --repeat rounds, best of each kept;
and prints the ratios the targets are stated in (against the default loop)
and against the one-thread loop. It also runs --threads 1 pinned to one core
(taskset), where reading shares the worker's core (with no CPU spare,
novapulse reads in its pipeline's input stage), and prints the scaling bound
that the CPU time of each run sets: with one worker the reader has the other
core to itself, with two reading takes its share of both, so
  2 threads / 1 thread <= 2 * max(read, work at 1) / (read + work at 2).
What reading costs depends on how the file's pages are cached: read back
from disk into large folios (FileHugePages in /proc/meminfo), read(2) costs
about 0.05 s of CPU per GB here and novapulse's mapping (2 threads on 2
CPUs) 0.02; cached in 4 KiB pages, read(2) cost 0.10 (tmpfs: --data
/dev/shm/... --keep-cache) to 0.19 s (an ext4 file after a day's uptime),
which moves that bound from about 1.85 to about 1.7 and 1.5. The line
"page cache: ..." gives the read(2) cost in the state measured.

With --baseline BINARY (another build of novapulse), each round also runs
every configuration with that binary, interleaved with this build's, and the
table gets a column "vs baseline": this build's events/s over the
baseline's, the figure a refactoring is held to.

  bench/replay_bench.py --size-mb 1000 --threads 1,2
  bench/replay_bench.py --threads 1,2 --repeat 8 --baseline /tmp/novapulse-before
"""
import argparse
import mmap
import os
import resource
import shutil
import subprocess
import sys
import time


def run(cmd):
    """Runs cmd; returns (seconds, ru_maxrss in KiB, stdout, stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return seconds, usage.ru_maxrss, out, err


def cpu_split(summary):
    """(read, work) CPU seconds from replay's "cpu: ..." summary line."""
    for line in summary.splitlines():
        if line.startswith("cpu: "):
            words = line.split()
            return float(words[1]), float(words[6])
    sys.exit(f"no cpu line in the replay summary:\n{summary}")


def drop_from_page_cache(path):
    """Writes back and drops the file's cached pages, so the next read fills
    the page cache as reading it from disk does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_through(path):
    """Reads the file in 1 MiB read(2) calls; returns the CPU seconds spent."""
    # A page-aligned buffer, as dd's: the kernel's copy is several times
    # slower into a destination a few bytes past the source's page offset.
    buf = mmap.mmap(-1, 1 << 20)
    start = resource.getrusage(resource.RUSAGE_SELF)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    end = resource.getrusage(resource.RUSAGE_SELF)
    return (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(root, "build"))
    ap.add_argument("--data", default=os.path.join(root, "out", "bench"))
    ap.add_argument("--size-mb", type=int, default=1000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep-cache", action="store_true",
                    help="measure with the file's pages cached as found, not dropped and read back")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="another novapulse binary, run in the same rounds for a 'vs baseline' column")
    args = ap.parse_args()

    novapulse = os.path.join(args.build, "novapulse")
    reference = os.path.join(args.build, "reference_loop")
    data_dir = os.path.join(args.data, f"access-{args.size_mb}mb")
    path = os.path.join(data_dir, "access-log.ndjson")
    if not os.path.exists(path):
        # ~300 bytes per line; 2000 lines/s of event time, starting at 09:00
        # UTC where the generator's daily load curve is near its mean.
        seconds = int(args.size_mb * 1e6 / 300 / 2000) + 1
        print(f"generating ~{args.size_mb} MB of access-log lines into {data_dir}", file=sys.stderr)
        subprocess.run([novapulse, "gen", "--out", data_dir, "--rate", "2000",
                        "--gifts-per-minute", "0", "--wallet-per-minute", "0",
                        "--duration", f"{seconds}s", "--start", "2026-11-26T09:00:00Z",
                        "--seed", "11"], check=True)
    size = os.path.getsize(path)
    lines = count_lines(path)
    print(f"input: {path}: {size / 1e6:.0f} MB, {lines} lines, {size / lines:.0f} bytes/line")
    if not args.keep_cache:
        drop_from_page_cache(path)
    read_cpu = read_through(path)  # warms the page cache
    read_cpu = min(read_cpu, read_through(path))
    print(f"page cache: {'as found' if args.keep_cache else 'dropped, then read back once'}; "
          f"read(2) of the whole file costs {read_cpu / (size / 1e9):.3f} s of CPU per GB")

    # iterate_many's default runs stage 1 of the next batch on a second
    # thread; the one-thread variant is printed for comparison.
    runs = [(str(int(t)), int(t), []) for t in args.threads.split(",")]
    if shutil.which("taskset"):
        runs.append(("1, one core", 1, ["taskset", "-c", "0"]))
    # Rounds, each running every configuration once, best of each kept: on a
    # machine whose speed drifts, every ratio then compares runs made
    # minutes apart at most.
    ref_best = ref_one = 0
    best = {}
    cpu = {}
    base_best = {}
    binaries = [(novapulse, best)] + ([(args.baseline, base_best)] if args.baseline else [])
    for round_ in range(args.repeat):
        print(f"round {round_ + 1} of {args.repeat}", file=sys.stderr)
        for extra in ([], ["--one-thread"]):
            _, _, out, _ = run([reference] + extra + [path])
            eps = float(dict(kv.split("=") for kv in out.split())["events_per_s"])
            if extra:
                ref_one = max(ref_one, eps)
            else:
                ref_best = max(ref_best, eps)
        for name, n, prefix in runs:
            for binary, kept in binaries:
                seconds, _, _, err = run(prefix + [binary, "replay", "--threads", str(n), "--topic",
                                                   "access-log", "--output", "/dev/null",
                                                   "--no-progress", path])
                if name not in kept or seconds < kept[name]:
                    kept[name] = seconds
                    if kept is best:
                        cpu[name] = cpu_split(err)
    print(f"reference loop (simdjson iterate_many + hash map, load excluded): "
          f"{ref_best / 1e6:.2f} M events/s, {ref_best * size / lines / 1e6:.0f} MB/s")
    print(f"reference loop, stage 1 on the same thread (--one-thread): "
          f"{ref_one / 1e6:.2f} M events/s, {ref_one * size / lines / 1e6:.0f} MB/s")

    results = {}
    # Peak RSS is not reported here: a child's ru_maxrss includes the Python
    # process it was forked from. bench/rss_vs_input.sh measures it.
    print(f"{'threads':>12} {'M events/s':>11} {'MB/s':>7} {'vs reference':>13} {'vs one-thread':>14}"
          f" {'cpu read':>9} {'cpu work':>9}" + (f" {'baseline M/s':>13} {'vs baseline':>12}"
                                               if args.baseline else ""))
    for name, _, _ in runs:
        eps = lines / best[name]
        results[name] = eps
        line = (f"{name:>12} {eps / 1e6:>11.2f} {size / 1e6 / best[name]:>7.0f} {eps / ref_best:>13.2f} "
                f"{eps / ref_one:>14.2f} {cpu[name][0]:>8.2f}s {cpu[name][1]:>8.2f}s")
        if args.baseline:
            base_eps = lines / base_best[name]
            line += f" {base_eps / 1e6:>13.2f} {eps / base_eps:>12.3f}"
        print(line)
    if "1" in results and "2" in results:
        read1, work1 = cpu["1"]
        read2, work2 = cpu["2"]
        bound = 2 * max(read1, work1) / (read2 + work2)
        print(f"scaling 2 threads / 1 thread: {results['2'] / results['1']:.2f} "
              f"(bound from CPU time: 2 x {max(read1, work1):.2f} / ({read2:.2f} + {work2:.2f}) "
              f"= {bound:.2f})")
    if "1, one core" in results and "2" in results:
        print(f"scaling 2 threads / 1 thread on one core: "
              f"{results['2'] / results['1, one core']:.2f}")


if __name__ == "__main__":
    main()
