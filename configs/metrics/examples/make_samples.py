#!/usr/bin/env python3
"""Writes the sample logs of the example metric specs next to this script.

  caddy-access.log    Caddy 2 JSON access log (the `log` directive, `format json`)
  traefik-access.log  Traefik 3 JSON access log (`accessLog.format: json`)

About ten minutes of traffic each from 2026-11-30T10:00:00Z, one JSON
object per line, every line valid, in the shape the two servers write (see
caddy.yaml and traefik.yaml for the sources). Deterministic (fixed seeds,
standard library only); prints nothing. Regenerate with:

  python3 configs/metrics/examples/make_samples.py
"""

import json
import random
import uuid
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0_NS = 1_796_032_800 * 10**9  # 2026-11-30T10:00:00Z
SPAN_S = 600
MS = 10**6  # nanoseconds


# ---------------------------------------------------------------- encoding


class Raw(str):
    """A number already formatted the way the server's encoder prints it."""


def go_float(x):
    """Go's strconv.FormatFloat(x, 'f', -1, 64): shortest digits, never an exponent."""
    text = format(Decimal(repr(float(x))), "f")
    return Raw(text[:-2] if text.endswith(".0") else text)


def encode(value, escape_html):
    """JSON with keys in the given order (zap) or as prepared (encoding/json)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(encode(k, escape_html) + ":" + encode(v, escape_html)
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v, escape_html) for v in value) + "]"
    text = json.dumps(value, ensure_ascii=False)
    if escape_html and isinstance(value, str):
        # encoding/json (logrus's JSONFormatter) escapes these; zap does not.
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def civil(ns):
    """UTC date and time of day of epoch nanoseconds, as a string, and the fraction."""
    secs, frac = divmod(ns, 10**9)
    days, rem = divmod(secs, 86400)
    # Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += m <= 2
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}", frac


def rfc3339(ns):
    """time.RFC3339 in UTC (logrus's default timestamp): whole seconds."""
    return civil(ns)[0] + "Z"


def rfc3339nano(ns):
    """time.Time's JSON form (RFC3339Nano) in UTC: trailing zeros trimmed."""
    text, frac = civil(ns)
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def arrivals(rng, count):
    """Request start times (ns), Poisson-like, spread over SPAN_S seconds."""
    starts = sorted(rng.uniform(0.05, SPAN_S - 15) for _ in range(count))
    return [T0_NS + int(s * 10**9) for s in starts]


def lognormal_ns(rng, median_ms, sigma, lo_ms, hi_ms):
    value = median_ms * rng.lognormvariate(0, sigma)
    return int(min(max(value, lo_ms), hi_ms) * MS) + rng.randrange(1000)


def pick(rng, weighted):
    total = sum(w for w, _ in weighted)
    x = rng.uniform(0, total)
    for w, v in weighted:
        x -= w
        if x <= 0:
            return v
    return weighted[-1][1]


def a_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


CLIENTS = [
    "203.0.113.7", "203.0.113.24", "198.51.100.12", "198.51.100.77", "192.0.2.45",
    "203.0.113.190", "198.51.100.201", "192.0.2.133", "2001:db8:4a::17", "2001:db8:91::3",
]
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
]
API_CLIENTS = ["okhttp/4.12.0", "python-requests/2.32.3", "shop-ios/5.14.2 CFNetwork/1568.200.51",
               "Go-http-client/2.0"]
SCANNERS = ["Mozilla/5.0 zgrab/0.x", "curl/8.11.0", "Mozilla/5.0 (compatible; CensysInspect/1.1)"]


# ------------------------------------------------------------------- Caddy
#
# One site block per host, so each has its own access logger ("log0",
# "log1"), written as caddyhttp.Server.logRequest writes it: level (error
# for 5xx), ts (unix_seconds_float), logger, msg, then the request object
# and bytes_read, user_id, duration (seconds), size, status, resp_headers.

CADDY_ASSETS = ["/static/js/app.4f1c2a9b.js", "/static/js/vendor.9d03e1f7.js",
                "/static/css/main.b7e3d012.css", "/static/img/logo.5a8c31e2.svg"]


def caddy_request(rng, incident):
    """One request: what the client sent and how the site answered.

    During the incident half the API's upstream requests fail (502).
    """
    r = {"host": "shop.example.com", "method": "GET", "bytes_read": 0, "user_id": "",
         "browser": True, "ctype": "text/html; charset=utf-8", "encoded": True, "proxied": True}
    kind = pick(rng, [(9, "home"), (3, "head"), (12, "list"), (14, "product"), (16, "asset"),
                      (6, "health"), (2, "favicon"), (3, "admin"), (2, "scan"),
                      (10, "order_get"), (5, "order_post"), (3, "order_patch"), (7, "cart_get"),
                      (4, "cart_put"), (2, "cart_delete"), (3, "preflight"), (5, "capture"),
                      (6, "search")])
    if kind == "home":
        r.update(uri="/", status=200, dur=lognormal_ns(rng, 6, 0.5, 1.2, 60),
                 size=rng.randint(4100, 4700), proxied=False)
    elif kind == "head":
        r.update(method="HEAD", uri="/", status=200, dur=lognormal_ns(rng, 3, 0.4, 0.8, 20),
                 size=0, proxied=False, browser=False)
    elif kind == "list":
        page = rng.randint(1, 12)
        sort = rng.choice(["price", "newest", "rating"])
        r.update(uri=f"/products?page={page}&sort={sort}", status=200,
                 dur=lognormal_ns(rng, 60, 0.7, 12, 900), size=rng.randint(7000, 26000))
    elif kind == "product":
        pid = rng.randint(1000, 99999)
        ok = rng.random() < 0.9
        r.update(uri=f"/products/{pid}", status=200 if ok else 404,
                 dur=lognormal_ns(rng, 35, 0.6, 6, 400),
                 size=rng.randint(5200, 9800) if ok else rng.randint(1400, 1500))
    elif kind == "asset":
        cached = rng.random() < 0.35
        asset = rng.choice(CADDY_ASSETS)
        ctype = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
                 "svg": "image/svg+xml"}[asset.rsplit(".", 1)[1]]
        r.update(uri=asset, status=304 if cached else 200, ctype=ctype, proxied=False,
                 dur=lognormal_ns(rng, 1.1, 0.6, 0.15, 12),
                 size=0 if cached else rng.randint(3000, 180000), encoded=not cached)
    elif kind == "health":
        r.update(uri="/healthz", status=200, dur=rng.randint(40_000, 400_000), size=2,
                 ctype="text/plain; charset=utf-8", encoded=False, proxied=False, browser=False)
    elif kind == "favicon":
        r.update(uri="/favicon.ico", status=404, dur=rng.randint(150_000, 900_000), size=0,
                 ctype=None, encoded=False, proxied=False)
    elif kind == "admin":
        authed = rng.random() < 0.75
        r.update(uri="/admin/reports/daily" + ("?format=csv" if rng.random() < 0.4 else ""),
                 user_id=rng.choice(["alice", "ops"]) if authed else "",
                 status=200 if authed else 401, auth=authed,
                 dur=lognormal_ns(rng, 2400, 0.6, 600, 9500) if authed
                 else rng.randint(300_000, 2_000_000),
                 size=rng.randint(40000, 160000) if authed else 0)
    elif kind == "scan":
        r.update(method=rng.choice(["PROPFIND", "TRACE", "DEBUG"]),
                 uri=rng.choice(["/", "/.env", "/wp-login.php"]), status=405,
                 dur=rng.randint(60_000, 500_000), size=0, ctype=None, encoded=False,
                 proxied=False, browser=False, scanner=True)
    else:
        r.update(host="api.example.com", browser=False, ctype="application/json")
        if kind == "order_get":
            ok = rng.random() < 0.88
            r.update(uri=f"/v1/orders/{a_uuid(rng)}", status=200 if ok else 404,
                     dur=lognormal_ns(rng, 28, 0.6, 5, 500),
                     size=rng.randint(900, 3800) if ok else 61)
        elif kind == "order_post":
            status = pick(rng, [(76, 201), (8, 400), (6, 422), (5, 500), (5, 503)])
            r.update(method="POST", uri="/v1/orders", status=status,
                     bytes_read=rng.randint(300, 2100),
                     dur=lognormal_ns(rng, 180 if status < 500 else 420, 0.6, 40, 4000),
                     size={201: rng.randint(700, 1400), 400: 88, 422: 134, 500: 52,
                           503: 57}[status])
        elif kind == "order_patch":
            status = 200 if rng.random() < 0.85 else 409
            r.update(method="PATCH", uri=f"/v1/orders/{a_uuid(rng)}", status=status,
                     bytes_read=rng.randint(40, 200), dur=lognormal_ns(rng, 55, 0.5, 12, 600),
                     size=rng.randint(900, 1400) if status == 200 else 96)
        elif kind == "cart_get":
            r.update(uri=f"/v1/users/{rng.randint(10000, 999999)}/cart", status=200,
                     dur=lognormal_ns(rng, 14, 0.5, 3, 150), size=rng.randint(300, 4200))
        elif kind == "cart_put":
            r.update(method="PUT",
                     uri=f"/v1/users/{rng.randint(10000, 999999)}/cart/items/{rng.randint(100000, 999999)}",
                     status=200, bytes_read=rng.randint(40, 120),
                     dur=lognormal_ns(rng, 22, 0.5, 5, 250), size=rng.randint(300, 4200))
        elif kind == "cart_delete":
            r.update(method="DELETE",
                     uri=f"/v1/users/{rng.randint(10000, 999999)}/cart/items/{rng.randint(100000, 999999)}",
                     status=204, dur=lognormal_ns(rng, 18, 0.5, 4, 200), size=0)
        elif kind == "preflight":
            r.update(method="OPTIONS", uri="/v1/orders", status=204, cors=True,
                     dur=rng.randint(30_000, 250_000), size=0, ctype=None, encoded=False,
                     proxied=False)
        elif kind == "capture":
            status = pick(rng, [(78, 200), (6, 402), (9, 502), (7, 504)])
            dur = {200: lognormal_ns(rng, 650, 0.5, 150, 4500),
                   402: lognormal_ns(rng, 400, 0.4, 100, 2000),
                   502: lognormal_ns(rng, 40, 0.8, 2, 900),
                   504: 15_000 * MS + rng.randint(0, 30 * MS)}[status]
            r.update(method="POST", uri=f"/v1/payments/{a_uuid(rng)}/capture", status=status,
                     bytes_read=rng.randint(60, 240), dur=dur,
                     size={200: rng.randint(400, 700), 402: 118, 502: 0, 504: 0}[status])
            if status >= 502:
                r.update(ctype=None, encoded=False, proxied=False)
        elif kind == "search":
            status = 200 if rng.random() < 0.9 else 503
            q = rng.choice(["lamp", "desk+chair", "usb-c+hub", "kettle", "socks"])
            r.update(uri=f"/v1/search?q={q}&limit=20", status=status,
                     dur=lognormal_ns(rng, 260, 0.8, 40, 9000) if status == 200
                     else lognormal_ns(rng, 2500, 0.3, 1000, 6000),
                     size=rng.randint(2000, 30000) if status == 200 else 57)
    if incident and r["host"] == "api.example.com" and r["proxied"] and rng.random() < 0.5:
        r.update(status=502, dur=lognormal_ns(rng, 25, 0.8, 2, 900), size=0, ctype=None,
                 encoded=False, proxied=False)
    return r


def caddy_line(rng, start_ns, r):
    proto = pick(rng, [(70, "HTTP/2.0"), (18, "HTTP/3.0"), (12, "HTTP/1.1")])
    alpn = {"HTTP/2.0": "h2", "HTTP/3.0": "h3", "HTTP/1.1": "http/1.1"}[proto]
    ip = rng.choice(CLIENTS)
    port = str(rng.randint(1024, 65535))
    headers = {}
    if r.get("scanner"):
        headers["User-Agent"] = [rng.choice(SCANNERS)]
        headers["Accept"] = ["*/*"]
    elif r["browser"]:
        headers["User-Agent"] = [rng.choice(BROWSERS)]
        headers["Accept"] = ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
                             if r["ctype"] and r["ctype"].startswith("text/html") else "*/*"]
        headers["Accept-Encoding"] = ["gzip, deflate, br, zstd"]
        headers["Accept-Language"] = [rng.choice(["en-US,en;q=0.9", "de-DE,de;q=0.8", "fr-FR"])]
        if r["status"] == 304:
            headers["If-None-Match"] = ['"' + f"{rng.getrandbits(40):x}" + '"']
        if rng.random() < 0.6:
            headers["Cookie"] = ["REDACTED"]
    else:
        agent = rng.choice(API_CLIENTS) if r["host"] == "api.example.com" else "kube-probe/1.31"
        if agent == "Go-http-client/2.0" and proto != "HTTP/2.0":
            agent = "Go-http-client/1.1"
        headers["User-Agent"] = [agent]
        headers["Accept"] = ["application/json" if r["host"] == "api.example.com" else "*/*"]
        if r["host"] == "api.example.com" and r["method"] != "OPTIONS":
            headers["Authorization"] = ["REDACTED"]
            headers["Accept-Encoding"] = ["gzip"]
    if r.get("cors"):
        headers["Origin"] = ["https://shop.example.com"]
        headers["Access-Control-Request-Method"] = ["POST"]
        headers["Access-Control-Request-Headers"] = ["authorization,content-type"]
    if r.get("auth"):
        headers["Authorization"] = ["REDACTED"]
    if r["bytes_read"]:
        headers["Content-Type"] = ["application/json"]
        headers["Content-Length"] = [str(r["bytes_read"])]
    if proto == "HTTP/1.1":
        headers["Connection"] = ["keep-alive"]

    request = {"remote_ip": ip, "remote_port": port, "client_ip": ip, "proto": proto,
               "method": r["method"], "host": r["host"], "uri": r["uri"], "headers": headers,
               "tls": {"resumed": rng.random() < 0.3, "version": 772, "cipher_suite": 4865,
                       "proto": alpn, "server_name": r["host"], "ech": False}}

    end_ns = start_ns + r["dur"]
    resp = {"Server": ["Caddy"]}
    if proto != "HTTP/3.0":
        resp["Alt-Svc"] = ['h3=":443"; ma=2592000']
    if r["proxied"]:
        resp["Via"] = ["1.1 Caddy"]
        resp["Date"] = [http_date(end_ns)]
        resp["X-Request-Id"] = [a_uuid(rng)]
    if r["ctype"] and r["status"] not in (204, 304) and r["method"] != "HEAD":
        resp["Content-Type"] = [r["ctype"]]
    if r["encoded"] and r["size"] > 512:
        resp["Content-Encoding"] = ["zstd" if rng.random() < 0.3 else "gzip"]
        resp["Vary"] = ["Accept-Encoding"]
    elif r["ctype"] and r["size"]:
        resp["Content-Length"] = [str(r["size"])]
    if r["uri"].startswith("/static/"):
        resp["Etag"] = ['"' + f"{rng.getrandbits(40):x}" + '"']
        resp["Cache-Control"] = ["public, max-age=31536000, immutable"]
    if r.get("cors"):
        resp["Access-Control-Allow-Origin"] = ["https://shop.example.com"]
        resp["Access-Control-Allow-Methods"] = ["GET, POST, PUT, PATCH, DELETE"]
        resp["Access-Control-Allow-Headers"] = ["authorization,content-type"]
    if r["status"] == 401:
        resp["Www-Authenticate"] = ['Basic realm="restricted"']
    if r["status"] == 405:
        resp["Allow"] = ["GET, HEAD"]

    line = {"level": "error" if r["status"] >= 500 else "info",
            "ts": go_float(end_ns / 1e9),
            "logger": "http.log.access." + ("log0" if r["host"] == "shop.example.com" else "log1"),
            "msg": "handled request",
            "request": request,
            "bytes_read": r["bytes_read"],
            "user_id": r["user_id"],
            "duration": go_float(r["dur"] / 1e9),
            "size": r["size"],
            "status": r["status"],
            "resp_headers": resp}
    return end_ns, encode(line, escape_html=False)


def http_date(ns):
    days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  # 1970-01-01 was a Thursday
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    text, _ = civil(ns)
    y, m, d = text[:10].split("-")
    return f"{days[(ns // 10**9 // 86400) % 7]}, {d} {months[int(m) - 1]} {y} {text[11:]} GMT"


def write_caddy(path):
    rng = random.Random(20261158)
    lines = []
    for start in arrivals(rng, 320):
        incident = T0_NS + 330 * 10**9 <= start < T0_NS + 420 * 10**9
        lines.append(caddy_line(rng, start, caddy_request(rng, incident)))
    lines.sort()
    path.write_text("".join(text + "\n" for _, text in lines), encoding="utf-8")


# ----------------------------------------------------------------- Traefik
#
# Every default field (accesslog.defaultCoreKeys) whose value is set, plus
# entryPointName (the entry point's field handler) and logrus's level, msg
# and time; encoding/json writes a map's keys sorted. Headers are dropped
# (fields.headers.defaultMode: drop, the default); query strings are kept.
# RouterName is absent when no router matched; ServiceName, ServiceURL and
# ServiceAddr are absent when Traefik answered without reaching a server
# (no router, a rate limit, no healthy server); OriginStatus, OriginDuration
# and OriginContentSize are then 0.

TRAEFIK_SERVICES = {
    "storefront": ["10.0.1.11:8080", "10.0.1.12:8080"],
    "orders": ["10.0.2.21:9000", "10.0.2.22:9000"],
    "accounts": ["10.0.3.31:9000"],
    "grafana": ["10.0.4.41:3000"],
}
GRAFANA_DASHBOARDS = ["fe1q2x9rbz4sgd", "ae7hk3m2p0qxvc", "de0l5ty8wm1nfa"]


def traefik_request(rng, incident):
    """One request; during the incident one of the two orders servers is down."""
    r = {"host": "shop.example.org", "method": "GET", "router": "storefront@docker",
         "service": "storefront", "req_size": 0, "retries": 0}
    kind = pick(rng, [(10, "home"), (14, "product"), (10, "asset"), (5, "cart"),
                      (12, "order_get"), (6, "order_post"), (5, "order_list"), (3, "order_delete"),
                      (8, "account_get"), (4, "session_post"), (3, "session_delete"),
                      (5, "grafana_dash"), (5, "grafana_query"), (4, "unmatched"),
                      (3, "ratelimited")])
    if kind == "home":
        r.update(path="/", status=200, dur=lognormal_ns(rng, 9, 0.6, 2, 120),
                 size=rng.randint(9000, 14000))
    elif kind == "product":
        ok = rng.random() < 0.9
        r.update(path=f"/products/{rng.randint(1, 50000)}", status=200 if ok else 404,
                 dur=lognormal_ns(rng, 40, 0.6, 6, 600),
                 size=rng.randint(6000, 15000) if ok else 1520)
    elif kind == "asset":
        name = rng.choice(["/assets/index-B1x9Qz.js", "/assets/index-Dp3k7w.css",
                           "/assets/hero-C8m2Lk.webp"])
        cached = rng.random() < 0.4
        r.update(path=name, status=304 if cached else 200, dur=lognormal_ns(rng, 2, 0.6, 0.3, 30),
                 size=0 if cached else rng.randint(20000, 240000))
    elif kind == "cart":
        r.update(path="/cart", status=200, dur=lognormal_ns(rng, 25, 0.5, 5, 300),
                 size=rng.randint(3000, 9000))
    elif kind == "ratelimited":
        r.update(host="api.example.org", router="orders-api@docker", service=None,
                 path=f"/orders/{a_uuid(rng)}", status=429, dur=rng.randint(40_000, 200_000),
                 size=18)
    elif kind == "unmatched":
        r.update(host=rng.choice(["203.0.113.250", "old.example.org", "www.example.net"]),
                 router=None, service=None,
                 path=rng.choice(["/", "/.env", "/wp-login.php", "/.git/config",
                                  "/cgi-bin/luci;stok=/locale"]),
                 method=rng.choice(["GET", "GET", "POST", "HEAD"]), status=404,
                 dur=rng.randint(20_000, 150_000), size=19, scanner=True)
    elif kind.startswith("grafana"):
        r.update(host="grafana.example.org", router="grafana@file", service="grafana")
        if kind == "grafana_dash":
            r.update(path=f"/api/dashboards/uid/{rng.choice(GRAFANA_DASHBOARDS)}", status=200,
                     dur=lognormal_ns(rng, 30, 0.5, 8, 300), size=rng.randint(20000, 90000))
        else:
            status = 200 if rng.random() < 0.85 else 504
            r.update(method="POST", path="/api/ds/query?ds_type=prometheus", status=status,
                     req_size=rng.randint(400, 1600),
                     dur=lognormal_ns(rng, 700, 1.0, 80, 9500) if status == 200
                     else 30_000 * MS + rng.randint(0, 40 * MS),
                     size=rng.randint(3000, 120000) if status == 200 else 15)
    else:
        r.update(host="api.example.org")
        if kind.startswith("order"):
            r.update(router="orders-api@docker", service="orders")
        else:
            r.update(router="accounts-api@docker", service="accounts")
        if kind == "order_get":
            status = pick(rng, [(84, 200), (8, 404), (4, 500), (4, 502)])
            r.update(path=f"/orders/{a_uuid(rng)}", status=status,
                     dur=lognormal_ns(rng, 30, 0.6, 4, 800) if status != 502
                     else rng.randint(300_000, 3_000_000),
                     size={200: rng.randint(800, 3600), 404: 48, 500: 52, 502: 11}[status])
        elif kind == "order_post":
            status = pick(rng, [(80, 201), (8, 400), (7, 503), (5, 500)])
            r.update(method="POST", path="/orders", status=status,
                     req_size=rng.randint(300, 2200),
                     dur=lognormal_ns(rng, 160, 0.6, 30, 3000) if status != 503
                     else rng.randint(20_000, 120_000),
                     size={201: rng.randint(600, 1300), 400: 91, 503: 20, 500: 52}[status])
            if status == 503:  # no healthy server: the load balancer answers
                r["service"] = None
        elif kind == "order_list":
            r.update(path=f"/orders?customer={rng.randint(1000, 99999)}&page={rng.randint(1, 5)}",
                     status=200, dur=lognormal_ns(rng, 120, 0.7, 20, 2500),
                     size=rng.randint(4000, 40000))
        elif kind == "order_delete":
            r.update(method="DELETE", path=f"/orders/{a_uuid(rng)}", status=204,
                     dur=lognormal_ns(rng, 45, 0.5, 8, 400), size=0)
        elif kind == "account_get":
            r.update(path=f"/accounts/{rng.randint(100, 9999999)}", status=200,
                     dur=lognormal_ns(rng, 12, 0.5, 2, 200), size=rng.randint(400, 1800))
        elif kind == "session_post":
            status = 201 if rng.random() < 0.8 else 401
            r.update(method="POST", path=f"/accounts/{rng.randint(100, 9999999)}/sessions",
                     status=status, req_size=rng.randint(60, 180),
                     dur=lognormal_ns(rng, 240, 0.3, 120, 900), size=212 if status == 201 else 37)
        elif kind == "session_delete":
            token = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789_-")
                            for _ in range(32))
            r.update(method="DELETE",
                     path=f"/accounts/{rng.randint(100, 9999999)}/sessions/{token}",
                     status=204, dur=lognormal_ns(rng, 10, 0.5, 2, 120), size=0)
    if incident and r["router"] == "orders-api@docker" and r["service"] and rng.random() < 0.45:
        r.update(status=502, dur=rng.randint(300_000, 3_000_000), size=11)
    return r


def traefik_line(rng, start_ns, r, count):
    ip = rng.choice(CLIENTS)
    port = str(rng.randint(1024, 65535))
    client_addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    proto = "HTTP/1.1" if r.get("scanner") else pick(rng, [(75, "HTTP/2.0"), (25, "HTTP/1.1")])
    tls13 = not r.get("scanner") or rng.random() < 0.5
    dur = r["dur"]
    fields = {
        "ClientAddr": client_addr,
        "ClientHost": ip,
        "ClientPort": port,
        "ClientUsername": "-",
        "DownstreamContentSize": r["size"],
        "DownstreamStatus": r["status"],
        "Duration": dur,
        "RequestAddr": r["host"],
        "RequestContentSize": r["req_size"],
        "RequestCount": count,
        "RequestHost": r["host"],
        "RequestMethod": r["method"],
        "RequestPath": r["path"],
        "RequestPort": "-",
        "RequestProtocol": proto,
        "RequestScheme": "https",
        "RetryAttempts": r["retries"],
        "StartLocal": rfc3339nano(start_ns),
        "StartUTC": rfc3339nano(start_ns),
        "TLSCipher": "TLS_AES_128_GCM_SHA256" if tls13 else "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLSVersion": "1.3" if tls13 else "1.2",
        "entryPointName": "websecure",
        "level": "info",
        "msg": "",
    }
    if r["router"]:
        fields["RouterName"] = r["router"]
    if r["service"]:
        addr = rng.choice(TRAEFIK_SERVICES[r["service"]])
        suffix = "@file" if r["router"] == "grafana@file" else "@docker"
        origin = dur - rng.randint(40_000, 260_000) if dur > 300_000 else dur * 7 // 10
        fields.update(ServiceName=r["service"] + suffix, ServiceURL="http://" + addr,
                      ServiceAddr=addr, OriginStatus=r["status"], OriginDuration=origin,
                      OriginContentSize=r["size"], Overhead=dur - origin)
        if r["status"] == 502 and rng.random() < 0.5:
            fields["RetryAttempts"] = 1
    else:
        fields.update(OriginStatus=0, OriginDuration=0, OriginContentSize=0, Overhead=dur)
    end_ns = start_ns + dur
    fields["time"] = rfc3339(end_ns)
    line = {k: fields[k] for k in sorted(fields)}
    return end_ns, encode(line, escape_html=True)


def write_traefik(path):
    rng = random.Random(3011)
    lines = []
    count = 48211  # RequestCount: requests since this Traefik started
    for start in arrivals(rng, 300):
        count += 1
        incident = T0_NS + 300 * 10**9 <= start < T0_NS + 390 * 10**9
        lines.append(traefik_line(rng, start, traefik_request(rng, incident), count))
    lines.sort()
    path.write_text("".join(text + "\n" for _, text in lines), encoding="utf-8")


if __name__ == "__main__":
    write_caddy(HERE / "caddy-access.log")
    write_traefik(HERE / "traefik-access.log")
