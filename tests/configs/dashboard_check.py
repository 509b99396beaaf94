#!/usr/bin/env python3
"""Sanity of the provisioned Grafana dashboard and its provisioning files.

  tests/configs/dashboard_check.py SOURCE_DIR

The dashboard is valid JSON with a uid and title; it has the 12 panels of
the NovaGift monitoring README, in that order, with unique ids, grid
positions inside the 24-column grid and no two panels overlapping; every
target has a non-empty expr and uses the provisioned datasource (uid
"prometheus"); the provisioning files are valid YAML and point at the
dashboards folder docker-compose mounts. Every expression parses in
Prometheus (promtool), and every field a table's transformations rename,
order, hide or sort by is one of the names Grafana gives the query's fields
("Value" for one query, "Value #A", "Value #B" for several).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml  # Debian: python3-yaml

README_PANELS = [
    "Gift Creation Rate", "API Response Time", "Outbox Status", "Failed Messages",
    "Retry Distribution", "Gift Claim Rate", "Claim Duration Heatmap", "Gift Value Distribution",
    "HTTP Request Rate", "System Health", "Wallet Transactions", "Top Errors",
]


def grafana_fields(targets):
    """The field names Grafana gives a Prometheus table query's frames: the
    value is "Value" for one query and "Value #REFID" for each of several;
    label columns are what the outermost "by (...)" and label_replace name."""
    fields = {"Time"}
    if len(targets) == 1:
        fields.add("Value")
    else:
        fields.update(f"Value #{t.get('refId')}" for t in targets)
    for t in targets:
        expr = str(t.get("expr", ""))
        for by in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            fields.update(x.strip() for x in by.split(",") if x.strip())
    return fields


def transformation_problems(name, panel, targets):
    """Every field a transformation renames, orders, hides or sorts by is one
    the panel's queries give (or an earlier rename made)."""
    problems = []
    fields = grafana_fields(targets)
    for tr in panel.get("transformations") or []:
        opts = tr.get("options") or {}
        if tr.get("id") == "organize":
            for key in ("excludeByName", "indexByName", "renameByName"):
                for field in opts.get(key) or {}:
                    if field not in fields:
                        problems.append(f"{name}: organize {key} names '{field}', which the "
                                        f"queries do not give (they give {sorted(fields)})")
            fields |= set((opts.get("renameByName") or {}).values())
        elif tr.get("id") == "sortBy":
            for sort in opts.get("sort") or []:
                if sort.get("field") not in fields:
                    problems.append(f"{name}: sortBy field '{sort.get('field')}' is not a field "
                                    f"of the table (it has {sorted(fields)})")
    return problems


def promql_problems(panels):
    """Every panel expression parses in Prometheus (promtool check rules on
    them as recording rules, Grafana's variables given values)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return ["promtool not found (Debian package prometheus)"]
    rules = []
    for p in panels:
        for t in p.get("targets") or []:
            expr = str(t.get("expr", ""))
            for var, value in (("$__rate_interval", "1m"), ("$__interval", "1m"), ("$__range", "1h")):
                expr = expr.replace(var, value)
            rules.append({"record": f"dashboard:panel{p.get('id')}_{t.get('refId')}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        f.flush()
        r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    if r.returncode != 0:
        return [f"dashboard expressions do not parse in Prometheus: {r.stdout}{r.stderr}"]
    return []


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    g = os.path.join(src, "configs/grafana")
    problems = []
    with open(os.path.join(g, "dashboards/novagift.json")) as f:
        try:
            dash = json.load(f)
        except json.JSONDecodeError as e:
            print(f"configs/grafana/dashboards/novagift.json: invalid JSON: {e}")
            return 1
    for key in ("uid", "title", "panels", "schemaVersion"):
        if not dash.get(key):
            problems.append(f"dashboard has no {key}")
    panels = dash.get("panels", [])
    titles = [p.get("title") for p in panels]
    if len(panels) != 12:
        problems.append(f"{len(panels)} panels, want 12")
    if titles != README_PANELS:
        problems.append(f"panel titles {titles}, want the README's {README_PANELS}")
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids):
        problems.append(f"panel ids not unique: {ids}")
    cells = {}
    for p in panels:
        name = f"panel {p.get('id')} '{p.get('title')}'"
        gp = p.get("gridPos", {})
        x, y, w, h = (gp.get(k) for k in ("x", "y", "w", "h"))
        if None in (x, y, w, h) or x < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append(f"{name}: bad gridPos {gp}")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        problems.append(f"{name} overlaps {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = name
                else:
                    continue
                break
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{name}: no targets")
        for t in targets:
            if not str(t.get("expr", "")).strip():
                problems.append(f"{name}: target {t.get('refId')} has no expr")
            if (t.get("datasource") or p.get("datasource") or {}).get("uid") != "prometheus":
                problems.append(f"{name}: target {t.get('refId')} does not use datasource uid 'prometheus'")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            problems.append(f"{name}: refIds not unique: {refs}")

        problems += transformation_problems(name, p, targets)
    problems += promql_problems(panels)

    with open(os.path.join(g, "provisioning/datasources/prometheus.yml")) as f:
        ds = yaml.safe_load(f)
    if "prometheus" not in [d.get("uid") for d in ds.get("datasources", [])]:
        problems.append("datasource provisioning has no datasource with uid 'prometheus'")
    with open(os.path.join(g, "provisioning/dashboards/novagift.yml")) as f:
        prov = yaml.safe_load(f)
    paths = [p.get("options", {}).get("path") for p in prov.get("providers", [])]
    if "/var/lib/grafana/dashboards" not in paths:
        problems.append(f"dashboard provider paths {paths} do not include /var/lib/grafana/dashboards")

    for p in problems:
        print(p)
    if not problems:
        print(f"ok: {len(panels)} panels, {sum(len(p.get('targets', [])) for p in panels)} targets")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
