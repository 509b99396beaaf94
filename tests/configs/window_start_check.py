#!/usr/bin/env python3
"""The alert timeline of `novapulse replay --rules` equals Prometheus's on the
series /metrics shows, from the very first increments of a series.

The case (outbox only, wallet.transaction): one message processed every
30 s from 00:00 to 00:30; ten messages fail their first attempt between
00:10:00 and 00:10:09 and succeed 20 s later; then one failure every 50 s
until 00:25. Every outbox series /metrics shows is at 0 before its first
event, so the burst is the first increment of outbox_failed_total.

novapulse replays the records with the shipped rule file. The same records
are turned here, independently, into the outbox_failed_total and
outbox_processed_total samples a Prometheus scraping /metrics every 15 s
would hold, and `promtool test rules` checks, at every 15 s step, that
exactly the alerts novapulse had firing then fire (labels compared;
annotations, which quote values, are left out of both).

  tests/configs/window_start_check.py NOVAPULSE_BINARY RULE_FILE
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml

DAY = "2026-10-03T"
STEP = 15
END = 40 * 60  # seconds after 00:00 checked
TYPES = ["gift.claimed", "gift.created", "gift.expired", "wallet.transaction"]
ALERT = "OutboxFailedMessages"


def stamp(s):
    ms = round(s * 1000)
    return "%s%02d:%02d:%02d.%03dZ" % (DAY, ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60,
                                       ms % 1000)


def events():
    """(seconds after 00:00, record) of the case, in time order."""
    out = []

    def message(mid, queued, fail_at=None):
        out.append((queued, {"ts": stamp(queued), "id": mid, "type": "wallet.transaction",
                             "status": "queued", "attempt": 1, "processing_ms": 0,
                             "data": {"kind": "topup", "amount_usd": 10, "status": "ok"}}))
        attempt, start = 1, queued + 0.1
        if fail_at is not None:
            out.append((fail_at, {"ts": stamp(fail_at), "id": mid, "type": "wallet.transaction",
                                  "status": "failed", "attempt": 1, "processing_ms": 50,
                                  "error": "timeout"}))
            attempt, start = 2, fail_at + 20
        out.append((start, {"ts": stamp(start), "id": mid, "type": "wallet.transaction",
                            "status": "in_flight", "attempt": attempt, "processing_ms": 0}))
        out.append((start + 0.1, {"ts": stamp(start + 0.1), "id": mid,
                                  "type": "wallet.transaction", "status": "processed",
                                  "attempt": attempt, "processing_ms": 100}))

    for i, t in enumerate(range(0, 30 * 60, 30)):
        message("m%d" % i, t)
    for k in range(10):
        message("w%d" % (61 + k), 600 + k, fail_at=600 + k + 0.2)
    t = 660
    while t <= 25 * 60:
        message("f%d" % t, t - 0.1, fail_at=t)
        t += 50
    out.sort(key=lambda e: e[0])
    return out


def series(evs):
    """Samples every STEP s of the counters the alert reads, as /metrics shows
    them: every type at 0 from the start, each value counting the events
    stamped before the sample."""
    out = {}
    for name, status in (("outbox_failed_total", "failed"),
                         ("outbox_processed_total", "processed")):
        times = [t for t, e in evs if e["status"] == status]
        for typ in TYPES:
            values = []
            for step in range(0, END // STEP + 1):
                at = step * STEP
                values.append(sum(1 for t in times if t < at) if typ == "wallet.transaction" else 0)
            out['%s{type="%s"}' % (name, typ)] = " ".join(str(v) for v in values)
    return out


def seconds(text):
    hms = text[len(DAY):-1]
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, rule_file = sys.argv[1], sys.argv[2]
    evs = events()
    with tempfile.TemporaryDirectory(prefix="window_start_") as tmp:
        records = os.path.join(tmp, "outbox.ndjson")
        with open(records, "w") as f:
            for _, e in evs:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        timeline = os.path.join(tmp, "alerts.json")
        run = subprocess.run([binary, "replay", "--topic", "outbox", "--rules", rule_file,
                              "--alerts-json", timeline, records],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            return 1
        if " 0 rejected" not in run.stderr:
            print("records rejected:\n" + run.stderr, file=sys.stderr)
            return 1
        with open(timeline) as f:
            episodes = [e for e in json.load(f) if e["alertname"] == ALERT]
        if not episodes:
            print("novapulse raised no %s" % ALERT, file=sys.stderr)
            return 1
        for e in episodes:
            print("novapulse: %s %s pending %s firing %s resolved %s" %
                  (ALERT, e["labels"], e["pending_at"], e["firing_at"], e["resolved_at"]))

        # The rule file without annotations, for promtool.
        with open(rule_file) as f:
            rules = yaml.safe_load(f)
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
        plain_rules = os.path.join(tmp, "rules.yml")
        with open(plain_rules, "w") as f:
            yaml.safe_dump(rules, f)

        tests = []
        for step in range(0, END // STEP + 1):
            at = step * STEP
            firing = []
            for e in episodes:
                if not e["firing_at"] or e.get("cancelled"):
                    continue
                resolved = seconds(e["resolved_at"]) if e["resolved_at"] else float("inf")
                if seconds(e["firing_at"]) <= at < resolved:
                    firing.append({"exp_labels": dict(e["labels"])})
            tests.append({"eval_time": "%ds" % at, "alertname": ALERT, "exp_alerts": firing})
        test_file = os.path.join(tmp, "test.yml")
        with open(test_file, "w") as f:
            yaml.safe_dump({
                "rule_files": [plain_rules],
                "evaluation_interval": "%ds" % STEP,
                "tests": [{
                    "interval": "%ds" % STEP,
                    "input_series": [{"series": k, "values": v} for k, v in series(evs).items()],
                    "alert_rule_test": tests,
                }],
            }, f)
        check = subprocess.run(["promtool", "test", "rules", test_file],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check.returncode != 0:
            print("Prometheus's timeline differs from novapulse's:\n" + check.stdout,
                  file=sys.stderr)
            return 1
        print("promtool agrees at each of %d steps" % len(tests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
