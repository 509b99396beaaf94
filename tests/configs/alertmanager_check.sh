#!/usr/bin/env bash
# configs/alertmanager.yml renders (scripts/render-alertmanager-config) into a
# config amtool accepts; a missing variable stops the render, naming it, and
# writes nothing; the render execs the command after "--".
#   tests/configs/alertmanager_check.sh SOURCE_DIR
set -euo pipefail
src=${1:-.}
render=$src/scripts/render-alertmanager-config
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/XXXX \
  SMTP_USERNAME=alerts@example.com SMTP_PASSWORD='p"a\ss' \
  "$render" "$src/configs/alertmanager.yml" "$tmp/alertmanager.yml"
amtool check-config "$tmp/alertmanager.yml"
grep -q 'smtp_auth_password: "p\\"a\\\\ss"' "$tmp/alertmanager.yml" || fail "password not escaped for YAML"

# Routing: severities reach their receivers; warnings are inhibited by criticals.
# check_route RECEIVER LABEL=VALUE...: the alert with these labels goes to RECEIVER.
check_route() {
  local expect=$1 got
  shift
  got=$(amtool config routes test --config.file="$tmp/alertmanager.yml" "$@")
  echo "route $* -> $got"
  printf '%s' "$got" | tr -d ' ' | grep -qx "$expect" || fail "route $*: got $got, want $expect"
}
check_route critical alertname=HighErrorRate severity=critical
check_route slack-warning alertname=OutboxQueueBacklog severity=warning
check_route business alertname=LowGiftCreation severity=business
python3 - "$tmp/alertmanager.yml" <<'PY' || fail "inhibit rule or receivers wrong"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
inh = c["inhibit_rules"]
assert any(r.get("source_matchers") == ['severity="critical"'] and r.get("target_matchers") == ['severity="warning"']
           and r.get("equal") == ["alertname"] for r in inh), inh
recv = {r["name"]: r for r in c["receivers"]}
assert recv["critical"]["slack_configs"] and recv["critical"]["email_configs"], recv["critical"]
assert recv["slack-warning"]["slack_configs"] and "email_configs" not in recv["slack-warning"]
assert recv["business"]["slack_configs"]
PY

# A missing variable: exit 1, every missing name reported, nothing written.
if env -u SLACK_WEBHOOK_URL -u SMTP_USERNAME SMTP_PASSWORD=x \
  "$render" "$src/configs/alertmanager.yml" "$tmp/missing.yml" 2>"$tmp/err"; then
  fail "render succeeded without SLACK_WEBHOOK_URL"
fi
cat "$tmp/err"
grep -q "SLACK_WEBHOOK_URL is not set" "$tmp/err" || fail "SLACK_WEBHOOK_URL not named"
grep -q "SMTP_USERNAME is not set" "$tmp/err" || fail "SMTP_USERNAME not named"
[ ! -e "$tmp/missing.yml" ] || fail "output written despite the error"

# As an entrypoint: renders, then execs the command.
# shellcheck disable=SC2016  # $1 is for the child shell
out=$(SLACK_WEBHOOK_URL=https://h.example/x SMTP_USERNAME=a@example.com SMTP_PASSWORD=x \
  "$render" "$src/configs/alertmanager.yml" "$tmp/entry.yml" -- sh -c 'test -s "$1" && echo started' _ "$tmp/entry.yml")
[ "$out" = started ] || fail "command after -- not run: $out"
echo ok
