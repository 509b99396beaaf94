#!/usr/bin/env bash
# Sustained consumption of `novapulse run` from the project's local broker:
# fills novagift.access-log (4 partitions) with `novapulse gen --kafka`, then
# starts novapulse and times how fast novapulse_events_total reaches the
# number of produced lines (first scrape with events to the last), and prints
# the CPU each process used.
#   bench/kafka_consume_bench.sh [DURATION]   # event time to generate, default 1h at --rate 1000
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
novapulse="${BUILD:-$root/build}/novapulse"
duration="${1:-1h}"
dir=$(mktemp -d)
trap '"$root/scripts/kafka-broker" stop --dir "$dir/kafka" >/dev/null 2>&1 || true; kill "${pid:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT

mkdir -p "$dir/kafka"
addr=$("$root/scripts/kafka-broker" start --dir "$dir/kafka" 2>/dev/null | tail -1)
"$root/scripts/kafka-topic" --bootstrap "$addr" create novagift.access-log --partitions 4 >/dev/null 2>&1
"$root/scripts/kafka-topic" --bootstrap "$addr" create novagift.outbox --partitions 4 >/dev/null 2>&1
echo "producing $duration of access-log traffic to $addr" >&2
"$novapulse" gen --kafka "$addr" --duration "$duration" --rate 1000 --gifts-per-minute 0 \
  --wallet-per-minute 0 --speed max --start 2026-11-26T09:00:00Z 2>"$dir/gen.log"
cat "$dir/gen.log" >&2
# Every line delivered, both topics: novapulse_events_total counts both.
total=$(awk '/lines produced/ {s += $(NF - 1)} END {print s + 0}' "$dir/gen.log")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/novapulse.yaml" <<YAML
kafka:
  brokers: "$addr"
  group_id: bench
  properties:
    auto.offset.reset: earliest
http:
  listen: "127.0.0.1:$port"
log:
  level: warn
YAML
"$novapulse" run --config "$dir/novapulse.yaml" 2>"$dir/run.log" &
pid=$!
events() {
  { curl -sf "http://127.0.0.1:$port/metrics" || true; } |
    awk '/^novapulse_events_total/ {s += $2} END {print s + 0}'
}
cpu_seconds() {  # utime + stime of a process, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
first=""
while :; do
  n=$(events)
  now=$(date +%s.%N)
  if [ -z "$first" ] && [ "$n" -gt 0 ]; then first=$now; first_n=$n; fi
  [ "$n" -ge "$total" ] && break
  sleep 0.1
done
cpu_np=$(cpu_seconds "$pid")
cpu_broker=$(cpu_seconds "$(cat "$dir/kafka/pid")")
awk -v n="$n" -v fn="$first_n" -v t0="$first" -v t1="$now" -v np="$cpu_np" -v br="$cpu_broker" 'BEGIN {
  printf "consumed %d events; %.0f events/s between the first and the last scrape\n", n, (n - fn) / (t1 - t0)
  printf "CPU seconds: novapulse %s, broker %s (the broker also served the producer)\n", np, br }'
