#!/usr/bin/env bash
# Backtest throughput: `novapulse replay --rules` of the NovaGift rule set
# (configs/alerts/novagift.yml) over a generated multi-day dataset with every
# incident, against the same replay without rules in the same run (the
# baseline; the machine is noisy, the ratio holds). Prints events/s, the
# ratio, the rule evaluation cost per instant (mean, p50, p99), the window
# history size and peak RSS.
#
# The dataset is generated once and cached under out/bench/backtest-<days>d/.
#
#   bench/backtest_bench.sh            # 7 days, 1 thread
#   bench/backtest_bench.sh 2          # 2 days
#   THREADS=2 REPEAT=3 bench/backtest_bench.sh
#
# Environment: BUILD (build dir holding novapulse, default build), THREADS
# (replay --threads, default 1), REPEAT (runs of each, best kept; default 2),
# DATA (cache dir, default out/bench).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-build}"
[[ "$build" = /* ]] || build="$root/$build"
novapulse="$build/novapulse"
threads="${THREADS:-1}"
repeat="${REPEAT:-2}"
days="${1:-7}"
data="${DATA:-$root/out/bench}/backtest-${days}d"
rules="$root/configs/alerts/novagift.yml"

die() {
  echo "backtest_bench: $*" >&2
  exit 1
}
[[ -x "$novapulse" ]] || die "$novapulse not found; build it or set BUILD"
[[ "$days" =~ ^[1-9][0-9]*$ ]] || die "days '$days' is not a whole number"
[[ -x /usr/bin/time ]] || die "GNU time not found at /usr/bin/time (Debian: apt-get install time)"

# One incident of each kind, on the later days (the claim-rate alert needs a
# day of history), each at a different hour.
incidents=()
if ((days >= 2)); then
  names=(error_spike latency_spike outbox_failures outbox_backlog claim_drop expiry_spike
         creation_drought)
  durations=(30m 20m 20m 40m 2h 2h 3h)
  for i in "${!names[@]}"; do
    day=$((1 + i % (days - 1)))
    hour=$((2 + 3 * i))
    incidents+=(--incident "${names[$i]}@$((day * 24 + hour))h+${durations[$i]}")
  done
fi
if [[ ! -s "$data/outbox.ndjson" ]]; then
  mkdir -p "$data"
  echo "generating ${days} days into $data (${incidents[*]:-no incidents})" >&2
  "$novapulse" gen --out "$data" --duration "${days}d" "${incidents[@]}" >&2
fi
inputs=(--topic access-log "$data/access-log.ndjson" --topic outbox "$data/outbox.ndjson")
records=$(($(wc -l <"$data/access-log.ndjson") + $(wc -l <"$data/outbox.ndjson")))
mb=$(($(stat -c %s "$data/access-log.ndjson") / 1000000 + $(stat -c %s "$data/outbox.ndjson") / 1000000))
echo "dataset: ${days} days, ${records} records, ${mb} MB; replay --threads ${threads}, best of ${repeat}"

best_plain=999999
best_rules=999999
rules_line=""
timeline=""
for ((r = 0; r < repeat; r++)); do
  t0=$(date +%s.%N)
  "$novapulse" replay --threads "$threads" -q --output /dev/null "${inputs[@]}"
  t1=$(date +%s.%N)
  best_plain=$(awk -v a="$t0" -v b="$t1" -v best="$best_plain" 'BEGIN { d = b - a; print (d < best) ? d : best }')
  err=$(mktemp)
  t0=$(date +%s.%N)
  /usr/bin/time -f 'rss_kb=%M' "$novapulse" replay --threads "$threads" -q --output /dev/null \
    --rules "$rules" "${inputs[@]}" 2>"$err"
  t1=$(date +%s.%N)
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  if awk -v s="$seconds" -v b="$best_rules" 'BEGIN { exit !(s < b) }'; then
    best_rules=$seconds
    rules_line=$(grep '^rules:' "$err")
    rss=$(sed -n 's/^rss_kb=//p' "$err")
    timeline=$(grep -c 'Z  ' "$err" || true)
  fi
  rm -f "$err"
done
awk -v n="$records" -v p="$best_plain" -v r="$best_rules" -v rss="$rss" 'BEGIN {
  printf "without rules: %6.2f s  %5.2f M events/s\n", p, n / p / 1e6
  printf "with rules:    %6.2f s  %5.2f M events/s  (ratio %.2f)  peak RSS %.0f MB\n",
         r, n / r / 1e6, p / r, rss / 1024
}'
echo "$rules_line"
echo "alert episodes in the timeline: $timeline"
