#!/usr/bin/env bash
# Memory under attack: `novapulse replay` fed millions of records whose
# routes, methods, error codes, outbox error texts, gift themes and modes
# and wallet kinds are all distinct. Every family is capped by the series
# limit (default 10 000; overflow folds into __overflow__), so peak RSS must
# level off instead of growing with the number of distinct values. Prints,
# per record count, novapulse's peak RSS, the records/s of the whole pipe
# (bounded by the Python generator, not by novapulse) and the events folded
# into __overflow__.
#
# With RULES, the replay also evaluates those rule files over the windows,
# whose memory budget (WINDOW_MEMORY, default novapulse's) folds what exceeds
# it into __overflow__ there too; the last column then counts the label sets
# the windows folded.
#
#   bench/attack_rss.sh              # 1, 3 and 6 million records
#   bench/attack_rss.sh 1 10         # 1 and 10 million
#   RULES=configs/alerts/novagift.yml bench/attack_rss.sh 1
#
# Environment: BUILD (build dir holding novapulse, default build), THREADS
# (replay --threads, default 2), RULES (rule files, space-separated),
# WINDOW_MEMORY (replay --window-memory-bytes), SPACING_MS (event time
# between records, default 1: 1 million records span 500 s; 100 makes the
# windows fill to the rules' reach).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-build}"
[[ "$build" = /* ]] || build="$root/$build"
novapulse="$build/novapulse"
threads="${THREADS:-2}"
spacing="${SPACING_MS:-1}"
rule_args=()
for f in ${RULES:-}; do rule_args+=(--rules "$f"); done
[[ -n "${WINDOW_MEMORY:-}" ]] && rule_args+=(--window-memory-bytes "$WINDOW_MEMORY")
if (($# > 0)); then millions=("$@"); else millions=(1 3 6); fi
[[ -x "$novapulse" ]] || { echo "attack_rss: $novapulse not found" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "attack_rss: GNU time not found at /usr/bin/time" >&2; exit 1; }

# N records, half access log, half outbox, every label value new.
generate() {
  python3 - "$1" "$spacing" <<'PY'
import sys
n = int(float(sys.argv[1]) * 1e6)
spacing = int(sys.argv[2])
out = sys.stdout
base = 1795651200000
for i in range(n // 2):
    ts = base + i * spacing
    out.write('{"ts":%d,"method":"M%d","route":"/r%dx/q%d","status":500,"duration_ms":1.5,'
              '"error_code":"E%d"}\n' % (ts, i % 997, i, i, i))
    out.write('{"ts":%d,"id":"evt-%d","type":"gift.created","status":"queued","attempt":1,'
              '"error":"err %d","data":{"gift_id":"g%d","mode":"mode%d","theme":"theme%d",'
              '"value_usd":%d}}\n' % (ts, i, i, i, i, i, 1 + i % 900))
PY
}

printf '%10s %12s %12s %14s %14s\n' records peak_rss_MB records/s overflowed window_folded
for m in "${millions[@]}"; do
  err=$(mktemp)
  start=$(date +%s.%N)
  generate "$m" | /usr/bin/time -f 'rss_kb=%M' "$novapulse" replay --threads "$threads" -q \
    "${rule_args[@]}" --output /tmp/attack_rss.prom - 2>"$err"
  end=$(date +%s.%N)
  rss=$(sed -n 's/^rss_kb=//p' "$err")
  overflowed=$(awk '/^novapulse_series_overflow_total\{/ { s += $2 } END { print s + 0 }' /tmp/attack_rss.prom)
  folded=$(sed -n 's/^window memory budget reached: .* (\([0-9]*\) label sets .*/\1/p' "$err" |
    awk '{ s += $1 } END { print s + 0 }')
  awk -v m="$m" -v rss="$rss" -v a="$start" -v b="$end" -v o="$overflowed" -v f="$folded" \
    'BEGIN { printf "%9sM %12.1f %12.0f %14d %14d\n", m, rss / 1024, m * 1e6 / (b - a), o, f }'
  rm -f "$err"
done
rm -f /tmp/attack_rss.prom
