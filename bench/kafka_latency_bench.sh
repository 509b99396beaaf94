#!/usr/bin/env bash
# Produce-to-visible latency of `novapulse run` (target: p99 <= 1 s at
# 100 000 events/s): how long after an access-log event is produced to Kafka
# it is counted in /metrics.
#
# Starts the local broker, creates the two topics with 4 partitions each,
# starts novapulse on them (empty, auto.offset.reset earliest, the batching
# of configs/novapulse.yaml: batch_size 10000, batch_timeout 100ms;
# pipeline.threads 0 = every core) and waits until its partitions are
# assigned and their lag is known. Then build/latency_probe produces lines
# at a steady rate for DURATION seconds while scraping /metrics every 10 ms,
# and prints the produce rate achieved and latency percentiles (produce ->
# ack, ack -> visible, produce -> visible; see bench/latency_probe.cc) and
# its own CPU seconds; those of novapulse and the broker over the run follow.
#
# The latency includes the batch timeout (a batch waits up to 100 ms for
# batch_size messages; at 100 000 events/s both come at about the same time)
# and up to one scrape period (10 ms); a real Prometheus scraping every 15 s
# adds up to 15 s on top.
#
#   bench/kafka_latency_bench.sh [DURATION]    # seconds of producing, default 30
#   BUILD=build-bench RATE=100000 bench/kafka_latency_bench.sh 60
#
# Environment: BUILD (build dir holding novapulse and latency_probe, built
# with -DNOVAPULSE_BENCH=ON; default build), RATE (events/s, default
# 100000), THREADS (pipeline.threads, default 0), BATCH_TIMEOUT,
# BATCH_SIZE (kafka.batch_timeout and batch_size, defaults 100ms, 10000),
# PROPERTIES (producer properties for the probe, "k=v k=v"), TRACE (a file
# for every scrape's time, duration and count).
set -euo pipefail
name=kafka_latency_bench
# shellcheck source=bench/kafka_bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kafka_bench_lib.sh"
duration="${1:-30}"
rate="${RATE:-100000}"
probe="$build/latency_probe"
[[ -x "$probe" ]] || die "$probe not found; build it (cmake -DNOVAPULSE_BENCH=ON -DCMAKE_PREFIX_PATH=\"\$(scripts/librdkafka)\", ninja latency_probe)"

bench_start_broker
bench_topic novagift.access-log
bench_topic novagift.outbox
bench_run_novapulse latency "${THREADS:-0}"
bench_wait_assigned
for ((i = 0; i < 300; i++)); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || die "novapulse not ready: $(curl -s "http://127.0.0.1:$port/readyz")"

echo "producing $rate events/s for $duration s to $addr; novapulse (threads ${THREADS:-0}, batch_timeout ${BATCH_TIMEOUT:-100ms}) on 127.0.0.1:$port" >&2
np0=$(cpu_seconds "$np_pid")
br0=$(cpu_seconds "$broker_pid")
probe_args=()
for kv in ${PROPERTIES:-}; do probe_args+=(--property "$kv"); done
[[ -z "${TRACE:-}" ]] || probe_args+=(--trace "$TRACE")
status=0
bench_fg "$probe" --brokers "$addr" --metrics "127.0.0.1:$port" --rate "$rate" \
  --duration "$duration" "${probe_args[@]}" || status=$?
np1=$(cpu_seconds "$np_pid")
br1=$(cpu_seconds "$broker_pid")
awk -v np0="$np0" -v np1="$np1" -v br0="$br0" -v br1="$br1" -v c="$cores" 'BEGIN {
  printf "CPU s over the run (%d cores): novapulse %.2f, broker %.2f\n", c, np1 - np0, br1 - br0 }'
exit "$status"
