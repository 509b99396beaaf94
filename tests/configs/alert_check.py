#!/usr/bin/env python3
"""Which alerts of a rule file would fire on `novapulse gen` traffic.

Generates traffic (optionally with incidents), turns it into the series the
rules read, sampled every 15 s of event time (http_requests_total{status},
http_request_duration_seconds_bucket{le}, outbox_*_total{type}, the
outbox_queued_total gauge, gifts_*_total), backfills them into a Prometheus
TSDB with `promtool tsdb create-blocks-from openmetrics`, starts a real
Prometheus on it (127.0.0.1, free port) and runs every alert expression as a
range query over the whole span, recorded rule names replaced by their
expressions. An alert "fires" where its expression returns a series for
at least its `for` duration. Also prints baseline figures (5xx share, expiry
share, claim rates, p95, queue depth) at their extremes.

  tests/configs/alert_check.py --novapulse build/novapulse --duration 2d
  tests/configs/alert_check.py --novapulse build/novapulse --duration 26h \
      --incident error_spike@25h+30m --expect HighErrorRate

Exit status: 0 when the alerts that fired are exactly the --expect ones (none
when not given), 1 otherwise, 2 on a usage or tool error.
"""

import argparse
import bisect
import calendar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from ports import listening_port

STEP = 15  # seconds of event time between samples
HTTP_LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
FOR_RE = re.compile(r"(\d+)([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

ACCESS_RE = re.compile(r'"ts":"([^"]+)".*?"status":(\d+),"duration_ms":([0-9.eE+-]+)')


def parse_duration(text):
    return sum(int(n) * UNITS[u] for n, u in FOR_RE.findall(text or "0s"))


_ts_cache = {}


def epoch(ts):
    """RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SS[.fff]Z' -> float seconds."""
    head = ts[:19]
    base = _ts_cache.get(head)
    if base is None:
        base = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        _ts_cache[head] = base
    frac = ts[19:-1]
    return base + (float(frac) if frac else 0.0)


class Series:
    """Cumulative counters (or a gauge) sampled at every STEP boundary."""

    def __init__(self, t0, steps):
        self.t0, self.steps = t0, steps
        self.deltas = {}  # (name, labels tuple) -> list of per-step increments

    def add(self, name, labels, t, v=1.0):
        i = int((t - self.t0) // STEP)
        if i < 0 or i >= self.steps:
            return
        key = (name, labels)
        d = self.deltas.get(key)
        if d is None:
            d = self.deltas[key] = [0.0] * self.steps
        d[i] += v

    def openmetrics(self, out, gauges):
        by_name = {}
        for (name, labels), d in self.deltas.items():
            by_name.setdefault(name, []).append((labels, d))
        for name in sorted(by_name):
            out.write(f"# TYPE {name} unknown\n")
            for labels, d in sorted(by_name[name]):
                lab = ",".join(f'{k}="{v}"' for k, v in labels)
                lab = "{" + lab + "}" if lab else ""
                acc = 0.0
                for i, x in enumerate(d):
                    acc += x
                    if name in gauges:
                        acc = max(acc, 0.0)
                    # the value at the end of step i
                    out.write(f"{name}{lab} {acc:g} {self.t0 + (i + 1) * STEP}\n")
        out.write("# EOF\n")


def aggregate(gen_dir, t0, steps):
    s = Series(t0, steps)
    with open(os.path.join(gen_dir, "access-log.ndjson")) as f:
        for line in f:
            m = ACCESS_RE.search(line)
            if not m:
                continue
            t = epoch(m.group(1))
            status = m.group(2)
            sec = float(m.group(3)) / 1000.0
            s.add("http_requests_total", (("status", status),), t)
            j = bisect.bisect_left(HTTP_LE, sec)
            # cumulative buckets: the request counts in every le >= sec
            for le in HTTP_LE[j:]:
                s.add("http_request_duration_seconds_bucket", (("le", f"{le:g}"),), t)
            s.add("http_request_duration_seconds_bucket", (("le", "+Inf"),), t)
    with open(os.path.join(gen_dir, "outbox.ndjson")) as f:
        for line in f:
            e = json.loads(line)
            t = epoch(e["ts"])
            ty = (("type", e["type"]),)
            st = e["status"]
            if st == "queued":
                s.add("outbox_queued_total", ty, t, +1)
                kind = {"gift.created": "gifts_created_total",
                        "gift.claimed": "gifts_claimed_total",
                        "gift.expired": "gifts_expired_total"}.get(e["type"])
                if kind:
                    s.add(kind, (), t)
            elif st == "in_flight":
                s.add("outbox_queued_total", ty, t, -1)
            elif st == "processed":
                s.add("outbox_processed_total", ty, t)
            elif st == "failed":
                s.add("outbox_failed_total", ty, t)
                s.add("outbox_queued_total", ty, t, +1)
            elif st == "dead":
                s.add("outbox_queued_total", ty, t, -1)
    # every counter exists from the start, as novapulse's do
    for name in ("gifts_created_total", "gifts_claimed_total", "gifts_expired_total"):
        s.deltas.setdefault((name, ()), [0.0] * steps)
    return s



def load_rules(path):
    """The rule file as data, with yaml from python3-yaml if present."""
    import yaml  # Debian: python3-yaml
    with open(path) as f:
        doc = yaml.safe_load(f)
    records, alerts = {}, []
    for g in doc["groups"]:
        for r in g["rules"]:
            if "record" in r:
                records[r["record"]] = r["expr"].strip()
            else:
                alerts.append((r["alert"], r["expr"].strip(), parse_duration(r.get("for"))))
    return records, alerts


def inline_records(expr, records):
    for _ in range(5):
        for name, rexpr in records.items():
            expr = re.sub(r"(?<![\w:])" + re.escape(name) + r"(?![\w:])", "(" + rexpr + ")", expr)
    return expr


def query(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=120) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise RuntimeError(body)
    return body["data"]["result"]


def range_points(port, expr, start, end):
    """{labels json: [(t, v), ...]} over [start, end], in 12 h chunks."""
    out = {}
    t = start
    while t <= end:
        stop = min(end, t + 12 * 3600)
        for r in query(port, "/api/v1/query_range", {"query": expr, "start": t, "end": stop, "step": STEP}):
            key = json.dumps(r["metric"], sort_keys=True)
            out.setdefault(key, []).extend((float(a), float(b)) for a, b in r["values"])
        t = stop + STEP
    return out


def firing_spans(points, for_s):
    """Spans (start of firing, end) where consecutive points last >= for_s."""
    spans = []
    for key, pts in points.items():
        run_start = prev = None
        for t, _ in pts + [(None, None)]:
            if t is not None and prev is not None and t - prev <= STEP:
                prev = t
                continue
            if run_start is not None and prev - run_start >= for_s:
                spans.append((key, run_start + for_s, prev))
            run_start = prev = t
    return spans


def fmt(t, t0):
    h = (t - t0) / 3600
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))} (+{h:.2f}h)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--novapulse", required=True)
    ap.add_argument("--rules", default=os.path.join(os.path.dirname(__file__), "../../configs/alerts/novagift.yml"))
    ap.add_argument("--duration", default="2d")
    ap.add_argument("--rate", default="100")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--start", default="2026-11-26T00:00:00Z")
    ap.add_argument("--incident", action="append", default=[])
    ap.add_argument("--expect", action="append", default=[], help="alert that must fire (repeatable)")
    ap.add_argument("--ignore-first", default="0s",
                    help="do not count firing that starts before this much event time (warm-up)")
    ap.add_argument("--keep", help="keep generated data and TSDB in this folder")
    args = ap.parse_args()

    records, alerts = load_rules(args.rules)
    work = args.keep or tempfile.mkdtemp(prefix="alert-check-")
    os.makedirs(work, exist_ok=True)
    gen_dir = os.path.join(work, "gen")
    cmd = [args.novapulse, "gen", "--out", gen_dir, "--duration", args.duration, "--rate", args.rate,
           "--seed", args.seed, "--start", args.start]
    for inc in args.incident:
        cmd += ["--incident", inc]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    t0 = calendar.timegm(time.strptime(args.start, "%Y-%m-%dT%H:%M:%SZ"))
    steps = parse_duration(args.duration) // STEP
    series = aggregate(gen_dir, t0, steps)
    om = os.path.join(work, "series.om")
    with open(om, "w") as f:
        series.openmetrics(f, gauges={"outbox_queued_total"})
    tsdb = os.path.join(work, "tsdb")
    shutil.rmtree(tsdb, ignore_errors=True)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, tsdb],
                   check=True, stdout=subprocess.DEVNULL)

    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {}\n")
    log = open(os.path.join(work, "prometheus.log"), "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tsdb}",
                             "--storage.tsdb.retention.time=100y", "--web.listen-address=127.0.0.1:0"],
                            stdout=log, stderr=log)
    try:
        port = listening_port(prom, timeout=60)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        start, end = t0 + STEP, t0 + steps * STEP
        ignore = t0 + parse_duration(args.ignore_first)

        print(f"traffic: {args.duration} from {args.start}, rate {args.rate}/s, incidents: "
              f"{', '.join(args.incident) or 'none'}")
        figures = [
            ("5xx share (5m)", records.get("novagift:http_5xx_ratio:rate5m")),
            ("p95 latency s (5m)", records.get("novagift:http_request_duration_seconds:p95_5m")),
            ("expiry share (1h)", records.get("novagift:gift_expiry_ratio:rate1h")),
            ("expiry share (24h)", "sum(rate(gifts_expired_total[24h])) / (sum(rate(gifts_claimed_total[24h]))"
                                   " + sum(rate(gifts_expired_total[24h])))"),
            ("claims 1h / 24h", "sum(rate(gifts_claimed_total[1h])) / sum(rate(gifts_claimed_total[24h]))"),
            ("claims 1h / same hour -1d", "sum(rate(gifts_claimed_total[1h])) / sum(rate(gifts_claimed_total[1h] offset 1d))"),
            ("gifts created (1h)", "sum(increase(gifts_created_total[1h]))"),
            ("outbox queued", "sum(outbox_queued_total)"),
            ("outbox failed share (5m, max type)",
             "max(sum by (type) (rate(outbox_failed_total[5m])) / (sum by (type) (rate(outbox_processed_total[5m]))"
             " + sum by (type) (rate(outbox_failed_total[5m]))))"),
            ("outbox failures (5m, max type)", "max(sum by (type) (increase(outbox_failed_total[5m])))"),
        ]
        for label, expr in figures:
            if not expr:
                continue
            pts = [(t, v) for series_pts in range_points(port, inline_records(expr, records), start, end).values()
                   for t, v in series_pts if t >= ignore and v == v]
            if pts:
                lo = min(pts, key=lambda p: p[1])
                hi = max(pts, key=lambda p: p[1])
                print(f"  {label:36s} min {lo[1]:10.4g} at {fmt(lo[0], t0)}   max {hi[1]:10.4g} at {fmt(hi[0], t0)}")

        fired = set()
        for name, expr, for_s in alerts:
            pts = range_points(port, inline_records(expr, records), start, end)
            spans = [s for s in firing_spans(pts, for_s) if s[1] >= ignore]
            if spans:
                fired.add(name)
            for key, a, b in spans:
                print(f"FIRING {name} {key} from {fmt(a, t0)} to {fmt(b, t0)}")
        expected = set(args.expect)
        ok = fired == expected
        print(f"fired: {sorted(fired) or 'none'}; expected: {sorted(expected) or 'none'} -> {'ok' if ok else 'MISMATCH'}")
        return 0 if ok else 1
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
