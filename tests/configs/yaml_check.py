#!/usr/bin/env python3
"""Static checks of the stack's YAML (no Docker engine is needed):

every YAML file under configs/ parses; docker-compose.yml has the README's
services and host ports (Grafana 3001, Prometheus 9090, Alertmanager 9093,
node-exporter 9100, novapulse 9464, Kafka); every file it mounts exists;
the scrape targets of prometheus.yml are compose services (or the host's
NovaGift API on :4000) on the ports those services listen on;
docker-compose.prod.yml sets the README's retention and Grafana auth.

  tests/configs/yaml_check.py SOURCE_DIR
"""
import glob
import os
import re
import sys

import yaml  # Debian: python3-yaml


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    cfg = os.path.join(src, "configs")
    problems = []
    docs = {}
    for path in sorted(glob.glob(os.path.join(cfg, "**/*.y*ml"), recursive=True)):
        try:
            with open(path) as f:
                docs[os.path.relpath(path, cfg)] = yaml.safe_load(f)
        except yaml.YAMLError as e:
            problems.append(f"{path}: {e}")
    compose = docs.get("docker-compose.yml") or {}
    services = compose.get("services", {})
    want_ports = {"grafana": "3001:3000", "prometheus": "9090:9090", "alertmanager": "9093:9093",
                  "node-exporter": "9100:9100", "novapulse": "9464:9464", "kafka": None}
    for name, port in want_ports.items():
        if name not in services:
            problems.append(f"docker-compose.yml: no service {name}")
        elif port and port not in services[name].get("ports", []):
            problems.append(f"docker-compose.yml: {name} does not publish {port}")
    env = services.get("grafana", {}).get("environment", {})
    if env.get("GF_SECURITY_ADMIN_USER") != "admin" or env.get("GF_SECURITY_ADMIN_PASSWORD") != "admin":
        problems.append("docker-compose.yml: grafana is not admin/admin")
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            host = vol.split(":")[0]
            if host.startswith("."):
                if not os.path.exists(os.path.join(cfg, host)):
                    problems.append(f"docker-compose.yml: {name} mounts missing {host}")
            elif not host.startswith("/") and host not in (compose.get("volumes") or {}):
                problems.append(f"docker-compose.yml: {name} uses undeclared volume {host}")
    # Kafka keeps its data where the volumes are mounted (the apache/kafka image
    # writes to KAFKA_LOG_DIRS, /tmp/kraft-combined-logs unless set), and runs
    # the version scripts/kafka-broker tests with.
    kafka = services.get("kafka", {})
    log_dirs = (kafka.get("environment") or {}).get("KAFKA_LOG_DIRS")
    prod_kafka = ((docs.get("docker-compose.prod.yml") or {}).get("services") or {}).get("kafka", {})
    for file, svc in (("docker-compose.yml", kafka), ("docker-compose.prod.yml", prod_kafka)):
        targets_of = [v.split(":")[1] for v in svc.get("volumes", []) if ":" in v]
        if log_dirs not in targets_of:
            problems.append(f"{file}: kafka's KAFKA_LOG_DIRS ({log_dirs}) is not a mounted volume "
                            f"({targets_of})")
    with open(os.path.join(src, "scripts", "kafka", "common.sh")) as f:
        m = re.search(r"KAFKA_VERSION=\$\{NOVAPULSE_KAFKA_VERSION:-([0-9.]+)\}", f.read())
    tested = m.group(1) if m else "?"
    if kafka.get("image") != f"apache/kafka:{tested}":
        problems.append(f"docker-compose.yml: kafka image {kafka.get('image')} is not the tested "
                        f"Kafka {tested} (scripts/kafka/common.sh)")
    # One evaluator of the alert rules in the stack, or each alert is sent twice.
    np_rules = ((docs.get("novapulse.yaml") or {}).get("rules") or {}).get("files") or []
    prom_rules = (docs.get("prometheus.yml") or {}).get("rule_files") or []
    if np_rules and prom_rules:
        problems.append("novapulse.yaml and prometheus.yml both evaluate alert rules "
                        f"({np_rules}, {prom_rules}): each alert would reach Alertmanager twice")
    build = services.get("novapulse", {}).get("build", {})
    if not os.path.exists(os.path.join(cfg, build.get("context", "."), build.get("dockerfile", "Dockerfile"))):
        problems.append("docker-compose.yml: novapulse's Dockerfile not found")

    # Scrape targets: compose services on their container ports.
    container_ports = {"prometheus": "9090", "alertmanager": "9093", "node-exporter": "9100",
                       "novapulse": "9464", "grafana": "3000"}
    prom = docs.get("prometheus.yml") or {}
    targets = [(job["job_name"], t) for job in prom.get("scrape_configs", [])
               for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
    targets += [("alerting", t) for am in prom.get("alerting", {}).get("alertmanagers", [])
                for sc in am.get("static_configs", []) for t in sc.get("targets", [])]
    for job, t in targets:
        host, port = t.rsplit(":", 1)
        if host == "localhost" and job == "prometheus" and port == "9090":
            continue
        if host == "host.docker.internal" and port == "4000":
            continue
        if container_ports.get(host) != port:
            problems.append(f"prometheus.yml: {job} target {t} is not a compose service port")
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    if prom.get("global", {}).get("scrape_interval") != "15s":
        problems.append("prometheus.yml: global scrape_interval is not 15s")
    if jobs.get("novagift", {}).get("scrape_interval") != "30s":
        problems.append("prometheus.yml: job novagift scrape_interval is not 30s")
    if prom.get("rule_files") != ["alerts/*.yml"]:
        problems.append("prometheus.yml: rule_files is not ['alerts/*.yml']")
    with open(os.path.join(cfg, "novapulse.yaml")) as f:
        if "127.0.0.1:9464" not in f.read():
            problems.append("novapulse.yaml: default listen port is not 9464")

    prod = (docs.get("docker-compose.prod.yml") or {}).get("services", {})
    cmd = prod.get("prometheus", {}).get("command", [])
    for flag in ("--storage.tsdb.retention.time=90d", "--storage.tsdb.retention.size=50GB"):
        if flag not in cmd:
            problems.append(f"docker-compose.prod.yml: prometheus lacks {flag}")
    genv = prod.get("grafana", {}).get("environment", {})
    if genv.get("GF_AUTH_ANONYMOUS_ENABLED") != "false" or genv.get("GF_AUTH_BASIC_ENABLED") != "true" \
            or "GRAFANA_PASSWORD" not in str(genv.get("GF_SECURITY_ADMIN_PASSWORD")):
        problems.append("docker-compose.prod.yml: grafana auth settings differ from the README")

    for p in problems:
        print(p)
    if not problems:
        print(f"ok: {len(docs)} YAML files, {len(services)} services, {len(targets)} targets")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
