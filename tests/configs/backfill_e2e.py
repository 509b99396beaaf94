#!/usr/bin/env python3
"""The OpenMetrics backfill of `novapulse replay --openmetrics`, imported by
promtool and queried from a real Prometheus started on the blocks:

  novapulse gen (3 h, with an error spike) -> novapulse replay --openmetrics
  -> promtool tsdb create-blocks-from openmetrics -> prometheus on those blocks

Asserts: promtool imports the file; at the last step Prometheus's
sum(http_requests_total) equals the access-log lines generated and the
replay's own final total; the 5xx requests counted over the spike match the
replay's metrics; histogram_quantile over the backfilled buckets answers.

  tests/configs/backfill_e2e.py NOVAPULSE_BINARY
Takes about 20 seconds; Prometheus is stopped at the end.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from ports import listening_port

START = "2026-11-26T00:00:00Z"
START_S = 1795651200  # START as Unix seconds
HOURS = 3



def query(port, expr, at):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr, "time": str(at)})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(port, expr, at):
    result = query(port, expr, at)
    assert len(result) == 1, f"{expr} at {at}: {result}"
    return float(result[0]["value"][1])


def final_total(metrics_text, name, want=None):
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if want and want not in line:
            continue
        total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    binary = sys.argv[1]
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed")
            return 0
    work = tempfile.mkdtemp(prefix="novapulse-backfill-")
    prom = None
    try:
        subprocess.run([binary, "gen", "--out", work, "--start", START, "--duration", f"{HOURS}h",
                        "--rate", "20", "--incident", "error_spike@1h+20m"],
                       check=True, capture_output=True)
        lines = sum(1 for _ in open(os.path.join(work, "access-log.ndjson")))
        om = os.path.join(work, "backfill.om")
        metrics = os.path.join(work, "metrics.prom")
        subprocess.run([binary, "replay", "-q", "--openmetrics", om, "--step", "15s", "--output",
                        metrics, "--topic", "access-log", os.path.join(work, "access-log.ndjson"),
                        "--topic", "outbox", os.path.join(work, "outbox.ndjson")],
                       check=True, capture_output=True)
        text = open(metrics).read()
        blocks = os.path.join(work, "blocks")
        imported = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                                   "--max-block-duration=24h", om, blocks],
                                  capture_output=True, text=True)
        assert imported.returncode == 0, imported.stdout + imported.stderr

        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={blocks}",
             "--web.listen-address=127.0.0.1:0", "--storage.tsdb.retention.time=10y"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        port = listening_port(prom, timeout=60)
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, open(os.path.join(work, "prometheus.log")).read()
            time.sleep(0.3)

        end = START_S + HOURS * 3600
        total = scalar(port, "sum(http_requests_total)", end)
        replay_total = final_total(text, "http_requests_total")
        assert total == lines == replay_total, (total, lines, replay_total)

        # The 5xx answered during the spike (1h..1h20m, plus the 5 min after).
        spike_5xx = scalar(port, 'sum(increase(http_requests_total{status=~"5.."}[25m]))',
                           START_S + 3600 + 25 * 60)
        before = scalar(port, 'sum(http_requests_total{status=~"5.."})', START_S + 3600)
        after = scalar(port, 'sum(http_requests_total{status=~"5.."})', START_S + 3600 + 25 * 60)
        assert after - before > 0.10 * 20 * 25 * 60 * 0.3, (before, after)  # ~15% of a night hour
        assert abs(spike_5xx - (after - before)) / (after - before) < 0.1, (spike_5xx, before, after)

        p95 = scalar(port, "histogram_quantile(0.95, sum by (le) "
                           "(rate(http_request_duration_seconds_bucket[5m])))", end)
        assert 0.05 < p95 < 1.0, p95
        print(f"ok: {lines} requests; Prometheus on the backfill: total {total:.0f}, "
              f"5xx during the spike {after - before:.0f}, p95 at the end {p95:.3f} s")
        return 0
    finally:
        if prom is not None:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
