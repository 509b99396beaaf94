#!/usr/bin/env bash
# Broker outages under load with checkpoints on: nothing lost, nothing
# counted twice (target: 10 outages of 20 s at >= 50 000 records/s, exact
# every time), and how fast /readyz follows the broker.
#
# Starts the project's local broker, `novapulse run` with checkpoints every
# CHECKPOINT_INTERVAL, static membership (group.instance.id) and a 10 s
# session timeout (as the README recommends for replicas), and
# `novapulse gen --kafka` producing at RATE access-log events/s of wall time
# (plus the outbox lines) for the whole run. Then OUTAGES times: UP seconds
# of traffic, the broker stopped (its data kept) for DOWN seconds, so the
# partitions are lost, and started again. The generator's producer holds
# what it cannot deliver and sends it once the broker is back.
#
# After each outage, once /readyz is 200 again, it prints how long /readyz
# took to turn 503 after the broker stopped and 200 after it answered, and
# whether novapulse logged the lost partitions and resumed them from the
# state. At the end, with the generator done and novapulse caught up, it
# compares novapulse_events_total per topic with what the topics hold (the
# sum of their partitions' end offsets; the generator's producer is
# idempotent, so each line is there once). Any difference is a loss
# (negative) or a double count (positive); a loss and a double count could
# only hide each other by being exactly equal.
#
#   bench/kafka_outage_bench.sh                       # 10 outages of 20 s at 50 000/s
#   OUTAGES=2 DOWN=15 RATE=20000 bench/kafka_outage_bench.sh
#
# Environment: BUILD (build dir holding novapulse, default build), OUTAGES
# (default 10), DOWN and UP (seconds, default 20 and 20), RATE (access-log
# events/s, default 50000; the generator's daily curve is held near its
# mean by starting at 10:00 of event time), CHECKPOINT_INTERVAL (default 1s),
# THREADS (pipeline.threads, default 2), PROPERTIES (more librdkafka
# properties, NAME=VALUE separated by spaces; topic.metadata.refresh.interval.ms=10
# makes the consumer ask for metadata while the broker shuts down, when it
# answers without brokers: see scripts/patches/).
set -euo pipefail
name=kafka_outage_bench
# shellcheck source=bench/kafka_bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kafka_bench_lib.sh"
outages="${OUTAGES:-10}"
down="${DOWN:-20}"
up="${UP:-20}"
rate="${RATE:-50000}"
export CHECKPOINT_INTERVAL="${CHECKPOINT_INTERVAL:-1s}"
export LOG_LEVEL=info  # the lost and resumed partitions are logged at info and warn
gen_pid=""
bench_extra_cleanup() { [[ -z "$gen_pid" ]] || kill "$gen_pid" 2>/dev/null || true; }

now() { date +%s.%N; }
# Seconds until /readyz answers with status $1 (checked every 100 ms; 120 s at most).
until_ready_status() {
  local want=$1 start code
  start=$(now)
  for ((i = 0; i < 1200; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$port/readyz" || true)
    if [[ "$code" == "$want" ]]; then
      awk -v a="$start" -v b="$(now)" 'BEGIN {printf "%.1f\n", b - a}'
      return 0
    fi
    sleep 0.1
  done
  echo "never"
}
# The sum of the end offsets of a topic's partitions.
topic_end() {
  kcat -b "$addr" -Q -t "$1:0:-1" -t "$1:1:-1" -t "$1:2:-1" -t "$1:3:-1" 2>/dev/null |
    awk '{for (i = 1; i <= NF; i++) if ($i == "offset") s += $(i + 1)} END {printf "%d\n", s}'
}

bench_start_broker
bench_topic novagift.access-log 4
bench_topic novagift.outbox 4
bench_run_novapulse outage-bench "${THREADS:-2}" "" \
  "group.instance.id=outage-bench session.timeout.ms=10000 heartbeat.interval.ms=1000${PROPERTIES:+ $PROPERTIES}"
bench_wait_assigned

total_s=$((outages * (up + down + 30) + 2 * up))
echo "producing ${rate} access-log events/s for up to ${total_s} s to $addr;" \
  "$outages outages of ${down} s, ${up} s apart" >&2
"$novapulse" gen --kafka "$addr" --rate "$rate" --duration "${total_s}s" \
  --start 2026-11-26T10:00:00Z 2>"$dir/gen.log" &
gen_pid=$!
gen_start=$(now)
sleep "$up"

printf "%-7s %-14s %-14s %-8s %-8s\n" outage "503 after (s)" "200 after (s)" lost resumed
for ((n = 1; n <= outages; n++)); do
  lost0=$(grep -c 'msg="partitions lost"' "$dir/run.log" || true)
  resumed0=$(grep -c 'msg="partition resumes where the state ends"' "$dir/run.log" || true)
  "$root/scripts/kafka-broker" stop --dir "$dir/kafka" --keep >>"$dir/broker-restarts.log" 2>&1 ||
    die "the broker did not stop"
  # The broker is gone once stop returns; readiness follows within seconds.
  unready=$(until_ready_status 503)
  sleep "$down"
  "$root/scripts/kafka-broker" start --dir "$dir/kafka" >>"$dir/broker-restarts.log" 2>&1 ||
    die "the broker did not start again"
  broker_pid=$(cat "$dir/kafka/pid")
  ready=$(until_ready_status 200)
  lost=$(($(grep -c 'msg="partitions lost"' "$dir/run.log" || true) - lost0))
  resumed=$(($(grep -c 'msg="partition resumes where the state ends"' "$dir/run.log" || true) - resumed0))
  printf "%-7s %-14s %-14s %-8s %-8s\n" "$n" "$unready" "$ready" "$lost" "$resumed"
  kill -0 "$gen_pid" 2>/dev/null || break
  sleep "$up"
done

# The generator is stopped, not flushed: what it delivered is in the topics,
# and the topics are the ground truth.
kill "$gen_pid" 2>/dev/null || true
wait "$gen_pid" 2>/dev/null || true
gen_pid=""
gen_seconds=$(awk -v a="$gen_start" -v b="$(now)" 'BEGIN {printf "%.1f\n", b - a}')

# Caught up: the counts stop moving for 3 s (120 s at most).
last=-1
stable=0
for ((i = 0; i < 1200 && stable < 30; i++)); do
  cur=$(metric_sum '^novapulse_events_total')
  if [[ "$cur" == "$last" ]]; then stable=$((stable + 1)); else stable=0; fi
  last=$cur
  sleep 0.1
done

status=0
all=0
for topic in novagift.access-log novagift.outbox; do
  held=$(topic_end "$topic")
  all=$((all + held))
  counted=$(metric_sum "^novapulse_events_total[{].*topic=\"$topic\"")
  diff=$((counted - held))
  printf "%s: the topic holds %d, novapulse counted %d, difference %d\n" "$topic" "$held" "$counted" "$diff"
  [[ "$diff" -eq 0 ]] || status=1
done
awk -v n="$all" -v t="$gen_seconds" -v o="$outages" -v d="$down" 'BEGIN {
  printf "produced %d records in %.1f s of wall time: %.0f records/s on average over %d outages of %d s\n", n, t, n / t, o, d}'
if [[ "$status" -ne 0 ]]; then
  echo "MISMATCH: run log kept in $dir.kept" >&2
  cp -r "$dir" "$dir.kept"
fi
exit "$status"
