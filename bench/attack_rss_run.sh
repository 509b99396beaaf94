#!/usr/bin/env bash
# Memory of `novapulse run` under attack: the records of bench/attack_rss.sh
# (every route, method, error code, gift theme and mode new), produced to a
# local broker, consumed with the NovaGift rules and the default window
# memory budget. Prints the peak RSS (VmHWM) once every record is counted,
# and the label sets the windows and the series limit folded.
# (target: <= 256 MiB at 1 million records)
#
#   bench/attack_rss_run.sh          # 1 million records
#   bench/attack_rss_run.sh 2        # 2 million
#
# Environment: BUILD (build dir holding novapulse, default build), THREADS
# (pipeline.threads, default 2).
set -euo pipefail
name=attack_rss_run
# shellcheck source=bench/kafka_bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kafka_bench_lib.sh"
millions="${1:-1}"
command -v kcat >/dev/null || die "kcat not found (Debian: apt-get install kcat)"

python3 - "$millions" "$dir/access.ndjson" "$dir/outbox.ndjson" <<'PY'
import sys
n = int(float(sys.argv[1]) * 1e6)
base = 1795651200000
with open(sys.argv[2], "w") as access, open(sys.argv[3], "w") as outbox:
    for i in range(n // 2):
        ts = base + i
        access.write('{"ts":%d,"method":"M%d","route":"/r%dx/q%d","status":500,"duration_ms":1.5,'
                     '"error_code":"E%d"}\n' % (ts, i % 997, i, i, i))
        outbox.write('{"ts":%d,"id":"evt-%d","type":"gift.created","status":"queued","attempt":1,'
                     '"error":"err %d","data":{"gift_id":"g%d","mode":"mode%d","theme":"theme%d",'
                     '"value_usd":%d}}\n' % (ts, i, i, i, i, i, 1 + i % 900))
PY
total=$(cat "$dir/access.ndjson" "$dir/outbox.ndjson" | wc -l)
bench_start_broker
bench_topic novagift.access-log 4
bench_topic novagift.outbox 4
kcat -P -b "$addr" -t novagift.access-log -l "$dir/access.ndjson" || die "producing failed"
kcat -P -b "$addr" -t novagift.outbox -l "$dir/outbox.ndjson" || die "producing failed"
RULES="$root/configs/alerts/novagift.yml" bench_run_novapulse attack-rss "${THREADS:-2}"
start=$(date +%s.%N)
for ((i = 0; i < 6000; i++)); do
  kill -0 "$np_pid" 2>/dev/null || { cat "$dir/run.log" >&2; die "novapulse exited"; }
  [[ "$(metric_sum '^novapulse_events_total')" -ge "$total" ]] && break
  sleep 0.1
done
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
counted=$(metric_sum '^novapulse_events_total')
hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$np_pid/status")
rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$np_pid/status")
folded=$(metric_sum '^novapulse_window_series_folded_total')
overflow=$(metric_sum '^novapulse_series_overflow_total')
window=$(metric_sum '^novapulse_window_memory_bytes')
printf "records %d, counted %d in %s s; peak RSS %d MiB (now %d MiB); window memory %d MiB;" \
  "$total" "$counted" "$seconds" "$hwm" "$rss" "$((window >> 20))"
printf " label sets folded by the windows %d, events over the series limit %d\n" "$folded" "$overflow"
