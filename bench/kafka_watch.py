#!/usr/bin/env python3
"""Watches a `novapulse run` consume a pre-filled topic; used by the Kafka
benchmarks in this folder (one process, no forks, so it costs the 2-core
machine little).

It finds the consumption phase and prints, as KEY=VALUE lines (values
without spaces but thread_cpu's), its wall time,
the events counted, and the CPU seconds each process (and each novapulse
thread, grouped by name) used within it:

  --mode count  polls /metrics every --interval s; the phase runs from the
                first scrape with events to the first showing >= --total
                (for small series counts: a scrape is then cheap).
  --mode idle   never scrapes during the phase (with 100k series a scrape is
                real load): reads /proc only. The phase runs from the first
                sample in which novapulse's pipeline threads (all but the
                HTTP server's http-io and http-worker) burn CPU to the last
                one; it ends once they have been idle for --idle s and
                /metrics shows >= --total.

  kafka_watch.py --port 9464 --pid NP --broker-pid BK --total N --mode count
"""
import argparse
import os
import sys
import time
import urllib.error
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")


def stat_ticks(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def threads(pid):
    """{tid: (name, ticks)} of a process; the main thread is named 'main'."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            ticks = stat_ticks(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue  # the thread ended
        out[int(tid)] = ("main" if int(tid) == pid else name, ticks)
    return out


def events(port, pid):
    """novapulse_events_total summed; 0 while novapulse is not listening yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
    except urllib.error.URLError:
        if not os.path.exists(f"/proc/{pid}/stat"):
            sys.exit(f"kafka_watch: novapulse (pid {pid}) exited")
        return 0
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("novapulse_events_total{"))


class Sample:
    def __init__(self, args, n=None):
        self.t = time.time()
        self.threads = threads(args.pid)
        self.process = stat_ticks(f"/proc/{args.pid}/stat")  # counts ended threads too
        self.broker = stat_ticks(f"/proc/{args.broker_pid}/stat")
        self.me = sum(os.times()[:2])
        with open("/proc/stat") as f:  # cpu user nice system idle iowait irq softirq steal
            ticks = [int(x) for x in f.readline().split()[1:9]]
        self.machine_busy = sum(ticks) - ticks[3] - ticks[4]
        self.n = n

    def pipeline_ticks(self):
        return sum(t for name, t in self.threads.values() if not name.startswith("http-"))


def watch_count(args):
    first = None
    deadline = time.time() + args.timeout
    trace = open(args.trace, "w") if args.trace else None
    while True:
        n = events(args.port, args.pid)
        s = Sample(args, n)
        if trace:
            print(f"{s.t:.3f} {n} {s.process}", file=trace)
        if first is None and n > 0:
            first = s
        if n >= args.total:
            return first, s
        if time.time() > deadline:
            sys.exit(f"kafka_watch: {n} of {args.total} events after {args.timeout} s")
        time.sleep(args.interval)


def watch_idle(args):
    busy_ticks = args.busy * args.interval * HZ
    deadline = time.time() + args.timeout
    prev = Sample(args)
    start = last_busy = None
    while True:
        time.sleep(args.interval)
        s = Sample(args)
        if s.pipeline_ticks() - prev.pipeline_ticks() >= busy_ticks:
            if start is None:
                start = prev
            last_busy = s
        elif last_busy is not None and s.t - last_busy.t >= args.idle:
            n = events(args.port, args.pid)
            if n >= args.total:
                last_busy.n = n
                return start, last_busy
        if time.time() > deadline:
            sys.exit(f"kafka_watch: not done after {args.timeout} s")
        prev = s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="novapulse")
    p.add_argument("--broker-pid", type=int, required=True)
    p.add_argument("--total", type=int, required=True, help="events the topic holds")
    p.add_argument("--mode", choices=["count", "idle"], default="count")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between samples")
    p.add_argument("--busy", type=float, default=0.5,
                   help="idle mode: cores the pipeline threads must use for a sample to be busy")
    p.add_argument("--idle", type=float, default=1.5, help="idle mode: seconds idle that end the phase")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--trace", help="count mode: write 'time events' of every scrape to this file")
    args = p.parse_args()

    a, b = (watch_count if args.mode == "count" else watch_idle)(args)
    wall = b.t - a.t
    print(f"t_start={a.t:.3f}")
    print(f"t_end={b.t:.3f}")
    print(f"wall={wall:.3f}")
    print(f"events={b.n - (a.n or 0)}")
    print(f"events_start={a.n or 0}")
    print(f"novapulse_cpu={(b.process - a.process) / HZ:.2f}")
    print(f"broker_cpu={(b.broker - a.broker) / HZ:.2f}")
    print(f"watcher_cpu={b.me - a.me:.2f}")
    print(f"machine_cpu={(b.machine_busy - a.machine_busy) / HZ:.2f}")  # every process, all cores
    groups = {}
    busiest = ("", 0)
    for tid, (name, ticks) in b.threads.items():
        d = ticks - a.threads.get(tid, (name, 0))[1]
        groups[name] = groups.get(name, 0) + d
        if d > busiest[1]:
            busiest = (f"{name}/{tid}", d)
    print("thread_cpu=" + " ".join(f"{k}:{v / HZ:.2f}" for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v))
    with open(f"/proc/{args.pid}/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(f"peak_rss_mb={hwm / 1024:.0f}")
    print(f"busiest_thread={busiest[0]}")
    print(f"busiest_thread_cpu={busiest[1] / HZ:.2f}")


if __name__ == "__main__":
    main()
