#!/usr/bin/env python3
"""The metric-name contract between novapulse and the monitoring configs.

Every metric name the Grafana dashboard, the rule files and prometheus.yml
use must be one novapulse exports; names with a colon must be defined by a
recording rule. The exposition is novapulse's own: `replay` of a small
generated dataset (which prints every family with HELP and TYPE even when it
has no series; checked) plus the families only `run` serves (process_*,
Kafka), read from a `run` instance started without a reachable broker.

Names from other exporters are allowed by prefix: node_* (node-exporter),
and Prometheus's own up and ALERTS.

  tests/configs/metric_contract.py NOVAPULSE_BINARY SOURCE_DIR
Fails listing every missing name with where it is used.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml  # Debian: python3-yaml

from ports import free_port, listening_port

OTHER_EXPORTERS = re.compile(r"^(node_.+|up|ALERTS|ALERTS_FOR_STATE|scrape_.+)$")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "Inf", "NaN"}
NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr):
    """Metric names in a PromQL expression (functions, label names and
    keywords left out)."""
    s = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'', '""', expr)   # strings
    s = re.sub(r"\{[^}]*\}", " ", s)                                 # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                # ranges
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)                               # Grafana variables
    names = set()
    for m in NAME.finditer(s):
        name = m.group(0)
        rest = s[m.end():].lstrip()
        before = s[:m.start()]
        if rest.startswith("("):                  # a function or aggregation
            continue
        if name in KEYWORDS or (before and (before[-1].isdigit() or before[-1] == ".")):
            continue                               # 1e3, 5m...
        names.add(name)
    return names



def families(text):
    """{family: type} from # TYPE lines; fails on a TYPE without HELP."""
    types, helps = {}, set()
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if line.startswith("# TYPE ") and len(parts) >= 4:
            types[parts[2]] = parts[3].strip()
        elif line.startswith("# HELP ") and len(parts) >= 3:
            helps.add(parts[2])
    return types, helps


def sample_names(types):
    names = set()
    for fam, typ in types.items():
        names.add(fam)
        if typ in ("histogram", "summary"):
            names |= {fam + "_sum", fam + "_count"}
        if typ == "histogram":
            names.add(fam + "_bucket")
    return names


def exposition(binary, work):
    gen = os.path.join(work, "gen")
    subprocess.run([binary, "gen", "--out", gen, "--duration", "2m", "--rate", "5"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    replay = subprocess.run([binary, "replay", "-q", "--threads", "1",
                             "--topic", "access-log", os.path.join(gen, "access-log.ndjson"),
                             "--topic", "outbox", os.path.join(gen, "outbox.ndjson")],
                            check=True, capture_output=True, text=True).stdout
    # A replay of nothing: every family still has HELP and TYPE.
    empty_path = os.path.join(work, "empty.ndjson")
    open(empty_path, "w").close()
    empty = subprocess.run([binary, "replay", "-q", "--threads", "1", empty_path],
                           check=True, capture_output=True, text=True).stdout

    broker_port = free_port()  # where no broker listens
    cfg = os.path.join(work, "run.yaml")
    with open(cfg, "w") as f:
        f.write(f'kafka:\n  brokers: "127.0.0.1:{broker_port}"\nhttp:\n  listen: "127.0.0.1:0"\n'
                "pipeline:\n  threads: 1\n")
    log = open(os.path.join(work, "run.log"), "w")
    proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=log, stderr=log)
    run = ""
    try:
        port = listening_port(proc, timeout=60)
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    run = r.read().decode()
                break
            except OSError:
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    if not run:
        sys.exit("novapulse run served no /metrics; see " + log.name)
    return replay, empty, run


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, src = sys.argv[1], sys.argv[2]
    problems = []

    with tempfile.TemporaryDirectory(prefix="metric-contract-") as work:
        replay, empty, run = exposition(binary, work)
    rt, rh = families(replay)
    et, eh = families(empty)
    ut, uh = families(run)
    for label, types, helps in (("replay", rt, rh), ("empty replay", et, eh), ("run", ut, uh)):
        for fam in sorted(set(types) - helps):
            problems.append(f"{label}: family {fam} has TYPE but no HELP")
    for fam in sorted(set(rt) - set(et)):
        problems.append(f"replay of no input: family {fam} missing (families must be exported even when empty)")
    exported = sample_names(rt) | sample_names(ut)

    # Where each name is used.
    used = {}  # name -> set of places

    def use(expr, where):
        for n in metric_names(expr):
            used.setdefault(n, set()).add(where)

    records = set()
    rule_files = sorted(glob.glob(os.path.join(src, "configs/alerts/*.yml")))
    for path in rule_files:
        with open(path) as f:
            doc = yaml.safe_load(f)
        rel = os.path.relpath(path, src)
        for g in doc["groups"]:
            for r in g["rules"]:
                if "record" in r:
                    records.add(r["record"])
                use(str(r["expr"]), f"{rel}: {r.get('record') or r.get('alert')}")

    dash_path = os.path.join(src, "configs/grafana/dashboards/novagift.json")
    with open(dash_path) as f:
        dash = json.load(f)
    for p in dash["panels"]:
        for t in p.get("targets", []):
            use(t.get("expr", ""), f"dashboard panel '{p['title']}'")
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            use(a["expr"], f"dashboard annotation '{a['name']}'")

    # prometheus.yml: __name__ regexes in relabel rules; each alternative must
    # match a name novapulse exports.
    prom_path = os.path.join(src, "configs/prometheus.yml")
    with open(prom_path) as f:
        prom = yaml.safe_load(f)
    for job in prom.get("scrape_configs", []):
        for rc in job.get("relabel_configs", []) + job.get("metric_relabel_configs", []):
            if rc.get("source_labels") == ["__name__"] and "regex" in rc:
                for alt in split_alternation(rc["regex"]):
                    if not any(re.fullmatch(alt, n) for n in exported):
                        problems.append(f"configs/prometheus.yml job {job['job_name']}: __name__ pattern "
                                        f"'{alt}' matches no metric novapulse exports")

    for name in sorted(used):
        where = "; ".join(sorted(used[name]))
        if ":" in name:
            if name not in records:
                problems.append(f"{name}: not defined by any recording rule (used in {where})")
        elif name not in exported and not OTHER_EXPORTERS.match(name):
            problems.append(f"{name}: not exported by novapulse (used in {where})")

    print(f"novapulse exports {len(exported)} sample names; configs use {len(used)} names "
          f"({len(records)} recorded) from {len(rule_files)} rule file(s), the dashboard and prometheus.yml")
    if problems:
        print("missing or inconsistent:")
        for p in problems:
            print("  " + p)
        return 1
    print("ok")
    return 0


def split_alternation(regex):
    """Top-level alternatives of a regex: 'a|b(c|d)' -> ['a', 'b(c|d)']."""
    parts, depth, cur = [], 0, ""
    for c in regex:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    if len(parts) == 1 and regex.startswith("(") and regex.endswith(")"):
        return split_alternation(regex[1:-1])
    return parts


if __name__ == "__main__":
    sys.exit(main())
