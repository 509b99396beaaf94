#!/usr/bin/env bash
# Every incident of `novapulse gen` trips exactly the alerts meant for it, and
# two quiet days trip none (tests/configs/alert_check.py evaluates the rule
# file with a real Prometheus over the generated traffic).
#   tests/configs/alert_incidents.sh build/novapulse [RATE]
# RATE is the access-log rate (default 20/s here to keep the run short; the
# gift and outbox rates are gen's defaults).
set -euo pipefail
bin=${1:?usage: alert_incidents.sh NOVAPULSE_BINARY [RATE]}
rate=${2:-20}
check="python3 $(dirname "$0")/alert_check.py --novapulse $bin --rate $rate"
failed=0
run() {
  echo "== $*"
  $check "$@" || failed=1
}
run --duration 2d
run --duration 4h --incident error_spike@2h+30m --expect HighErrorRate
run --duration 4h --incident latency_spike@2h+30m --expect APIResponseTimeHigh
run --duration 4h --incident outbox_failures@2h+30m --expect OutboxFailedMessages
run --duration 4h --incident outbox_backlog@2h+1h --expect OutboxQueueBacklog
run --duration 6h --incident expiry_spike@2h+2h --expect HighGiftExpiryRate --expect HighExpiryRate
run --duration 2h --incident expiry_spike@1h+30m --expect HighGiftExpiryRate
run --duration 5h --incident creation_drought@2h+2h --expect LowGiftCreation
# fewer claims also raise the expired share of claims + expiries
run --duration 30h --incident claim_drop@26h+3h --expect GiftClaimRateDrop --expect HighGiftExpiryRate
exit $failed
