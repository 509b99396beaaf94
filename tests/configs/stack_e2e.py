#!/usr/bin/env python3
"""End-to-end test of the monitoring stack, every component real, on 127.0.0.1,
started by scripts/stack up as a user starts it (ports the kernel picks):

  Kafka (scripts/kafka-broker) <- novapulse gen --kafka (generated traffic)
  Kafka -> novapulse run -> /metrics <- Prometheus (configs/prometheus.yml with
  only its addresses rewritten, configs/alerts/*.yml plus a test-only rule)
  Prometheus -> Alertmanager (routes to this test's webhook receiver)

Asserts: the novapulse target is up; sum(rate(http_requests_total[1m])) is
positive and consistent with the wall-clock rate gen achieved; once novapulse
has consumed everything, Prometheus's sum(http_requests_total) equals the
access-log lines gen delivered; every rule of configs/alerts/novagift.yml is
loaded and evaluated with health "ok" and the recording rules produce series;
an alert reaches the webhook through Alertmanager.

  tests/configs/stack_e2e.py NOVAPULSE_BINARY SOURCE_DIR
Takes about 2 minutes; every process it starts is stopped at the end.
"""
import datetime
import glob
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request


GEN_DURATION_S = 600   # event time generated
GEN_SPEED = 8          # event seconds per wall second: ~75 s of wall time
GEN_RATE = 20          # access-log events per event second (diurnal shape on top)

# A test-only rule: fires as soon as traffic is seen, so Alertmanager gets an
# alert within the test's time (the NovaGift alerts need 5 minutes or more).
E2E_RULES = """groups:
  - name: e2e
    interval: 15s
    rules:
      - alert: E2ETrafficSeen
        expr: sum(rate(http_requests_total[1m])) > 0
        labels:
          severity: critical
        annotations:
          summary: "traffic seen"
          description: "{{ $value | humanize }} requests/s"
"""



def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def wait_for(what, fn, timeout):
    """Calls fn until it returns a truthy value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Webhook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Webhook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Stack:
    """scripts/stack up/down in a scratch folder, on ports the kernel picks,
    plus the processes the test itself starts (gen)."""

    def __init__(self, binary, src, work):
        self.binary, self.src, self.work = binary, src, work
        self.procs = []
        self.up = False

    def start(self, novapulse_config, alertmanager_config, extra_rules):
        env = dict(os.environ, NOVAPULSE_BINARY=self.binary, STACK_PROMETHEUS_PORT="0",
                   STACK_ALERTMANAGER_PORT="0", STACK_NOVAPULSE_PORT="0")
        self.up = True
        r = subprocess.run([os.path.join(self.src, "scripts/stack"), "up", "--dir", self.work,
                            "--novapulse-config", novapulse_config,
                            "--alertmanager-config", alertmanager_config, "--extra-rules", extra_rules],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"scripts/stack up failed:\n{r.stdout}\n{r.stderr}")
        print(r.stdout, end="")
        with open(os.path.join(self.work, "addresses")) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)

    def spawn(self, name, argv, **kw):
        log = open(os.path.join(self.work, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
        self.procs.append((name, p, log))
        return p

    def stop(self):
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
        if self.up:
            subprocess.run([os.path.join(self.src, "scripts/stack"), "down", "--dir", self.work],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def dump_logs(self):
        for path in sorted(glob.glob(os.path.join(self.work, "*.log"))):
            with open(path, errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"----- {os.path.basename(path)} (tail)\n{tail}", file=sys.stderr)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="stack-e2e-")
    stack = Stack(binary, src, work)
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    ok = False
    try:
        # novapulse: the stack's environment gives the broker and the address.
        np_cfg = os.path.join(work, "novapulse-e2e.yaml")
        with open(np_cfg, "w") as f:
            f.write("""kafka:
  brokers: "${KAFKA_BROKERS}"
  group_id: novapulse-stack-e2e
  properties:
    auto.offset.reset: earliest
  batch_timeout: 50ms
  commit_interval: 1s
http:
  listen: "${NOVAPULSE_LISTEN}"
pipeline:
  threads: 1
""")
        # Alertmanager: every alert to the webhook, quickly.
        am_cfg = os.path.join(work, "alertmanager-e2e.yml")
        with open(am_cfg, "w") as f:
            f.write(f"""route:
  receiver: webhook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 5s
receivers:
  - name: webhook
    webhook_configs:
      - url: "http://127.0.0.1:{hook.server_address[1]}/alerts"
""")
        rules = os.path.join(work, "e2e_test.yml")
        with open(rules, "w") as f:
            f.write(E2E_RULES)
        addresses = stack.start(np_cfg, am_cfg, rules)
        bootstrap = addresses["kafka"]
        prom = "http://" + addresses["prometheus"]

        # The stack's Prometheus config is configs/prometheus.yml with only
        # its addresses changed.
        prom_cfg = os.path.join(work, "prometheus", "prometheus.yml")
        r = subprocess.run(["promtool", "check", "config", prom_cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"the stack's prometheus.yml rejected:\n{r.stdout}{r.stderr}")
        with open(os.path.join(src, "configs/prometheus.yml")) as f:
            original = f.read()
        with open(prom_cfg) as f:
            rewritten = f.read()
        strip = lambda text: re.sub(r'"[^"\s]+:\d+"', '"ADDR"', text)
        assert strip(original) == strip(rewritten), "the stack changed more than addresses"
        for old in ("localhost:9090", "novapulse:9464", "alertmanager:9093"):
            assert f'"{old}"' in original and f'"{old}"' not in rewritten, old

        # Traffic: event time ending now, paced at GEN_SPEED x real time.
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=GEN_DURATION_S)
        gen_log = os.path.join(work, "gen.log")
        t_gen = time.monotonic()
        gen = stack.spawn("gen", [binary, "gen", "--kafka", bootstrap, "--duration", f"{GEN_DURATION_S}s",
                                  "--speed", str(GEN_SPEED), "--rate", str(GEN_RATE),
                                  "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ")])

        def query(expr):
            body = get_json(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
            assert body["status"] == "success", body
            return body["data"]["result"]

        def scalar(expr):
            res = query(expr)
            return float(res[0]["value"][1]) if res else None

        # The novapulse target is scraped and up.
        def novapulse_up():
            targets = get_json(prom + "/api/v1/targets")["data"]["activeTargets"]
            return [t for t in targets if t["labels"]["job"] == "novapulse" and t["health"] == "up"]
        wait_for("novapulse target up", novapulse_up, 40)

        # Prometheus scrapes itself at the port it got (the stack reloads it
        # with its own address once it listens).
        def self_up():
            targets = get_json(prom + "/api/v1/targets")["data"]["activeTargets"]
            return [t for t in targets if t["labels"]["job"] == "prometheus" and t["health"] == "up"
                    and t["scrapeUrl"].startswith(prom + "/")]
        wait_for("prometheus self-scrape up", self_up, 40)

        # Rates while traffic flows.
        rate = wait_for("sum(rate(http_requests_total[1m])) > 0",
                        lambda: (v := scalar("sum(rate(http_requests_total[1m]))")) and v > 0 and v, 60)
        print(f"sum(rate(http_requests_total[1m])) = {rate:.1f}/s while gen runs")

        # The alert through Alertmanager to the webhook.
        def e2e_alert():
            return [a for msg in Webhook.received for a in msg.get("alerts", [])
                    if a["labels"].get("alertname") == "E2ETrafficSeen" and a["status"] == "firing"]
        alerts = wait_for("E2ETrafficSeen at the webhook", e2e_alert, 60)
        print(f"webhook received {alerts[0]['labels']['alertname']} ({alerts[0]['annotations']['description']})")

        # Every NovaGift rule loaded and evaluated without error.
        def rules_evaluated():
            groups = get_json(prom + "/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups if g["file"].endswith("novagift.yml") for r in g["rules"]]
            if not rules or any(r["health"] == "unknown" for r in rules):
                return None
            return rules
        rules = wait_for("novagift rules evaluated", rules_evaluated, 40)
        bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, f"rules not healthy: {bad}"
        assert len(rules) == 15, f"{len(rules)} novagift rules loaded, want 15"
        firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"]
        print(f"{len(rules)} novagift rules healthy; firing: {firing or 'none'}")
        for record in ("novagift:http_requests:rate5m", "novagift:http_5xx_ratio:rate5m",
                       "novagift:http_request_duration_seconds:p95_5m"):
            wait_for(f"recorded series {record}", lambda: query(record), 40)

        # Totals: everything gen delivered is counted, in Prometheus too.
        if gen.wait(timeout=240) != 0:
            raise AssertionError("novapulse gen --kafka failed")
        wall = time.monotonic() - t_gen
        with open(gen_log) as f:
            m = re.search(r"novagift\.access-log: (\d+) lines produced, (\d+) delivered", f.read())
        assert m, "no delivery report from gen"
        delivered = int(m.group(2))
        print(f"gen delivered {delivered} access-log lines in {wall:.0f} s ({delivered / wall:.0f}/s)")
        assert 0.3 * delivered / wall < rate < 3 * delivered / wall, \
            f"rate {rate:.1f}/s inconsistent with {delivered / wall:.1f}/s produced"

        def all_counted():
            v = scalar("sum(http_requests_total{job='novapulse'})")
            return v is not None and int(v) == delivered and v
        total = wait_for(f"Prometheus sum(http_requests_total) == {delivered}", all_counted, 60)
        print(f"Prometheus sum(http_requests_total) = {int(total)} = lines delivered")
        ok = True
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
    finally:
        hook.shutdown()
        stack.stop()
        if not ok:
            stack.dump_logs()
        shutil.rmtree(work, ignore_errors=True)
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
