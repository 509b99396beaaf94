# shellcheck shell=bash
# Shared by the Kafka benchmarks in this folder (kafka_consume_bench.sh,
# kafka_latency_bench.sh, scrape_load_bench.sh): one scratch folder, a local
# broker started by scripts/kafka-broker, topics made by scripts/kafka-topic,
# `novapulse run` with a generated config, and a cleanup that always stops
# novapulse and the broker. Source it after setting `name`; do not run it.
#
#   name=my_bench; source "$(dirname "${BASH_SOURCE[0]}")/kafka_bench_lib.sh"
#   bench_start_broker          # sets addr, broker_pid
#   bench_topic novagift.access-log
#   bench_run_novapulse group-1 2 "series_limit: 200000"   # sets np_pid, port
#   bench_wait_assigned; ...; bench_stop_novapulse
# The variables set here are for the scripts that source this file.
# shellcheck disable=SC2034,SC2154
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-build}"
[[ "$build" = /* ]] || build="$root/$build"
novapulse="$build/novapulse"
cores=$(nproc)
np_pid=""
fg_pid=""
addr=""
broker_pid=""

die() {
  echo "$name: $*" >&2
  exit 1
}
[[ -x "$novapulse" ]] || die "$novapulse not found; build it or set BUILD"
command -v curl >/dev/null || die "curl not found (Debian: apt-get install curl)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/novapulse-$name.XXXXXX")
bench_cleanup() {
  if [[ -n "$fg_pid" ]]; then kill "$fg_pid" 2>/dev/null || true; fi
  if [[ -n "$np_pid" ]]; then
    kill "$np_pid" 2>/dev/null || true
    wait "$np_pid" 2>/dev/null || true
  fi
  # Extra cleanup of a script (its own background jobs) runs first.
  if declare -F bench_extra_cleanup >/dev/null; then bench_extra_cleanup || true; fi
  "$root/scripts/kafka-broker" stop --dir "$dir/kafka" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# bench_fg CMD...: runs CMD in the background and waits for it: bash runs a
# trap only once a foreground command ends, but interrupts `wait`, so a
# Ctrl-C or SIGTERM ends the script at once and the cleanup kills CMD.
bench_fg() {
  local rc=0
  "$@" &
  fg_pid=$!
  wait "$fg_pid" || rc=$?
  fg_pid=""
  return "$rc"
}

# utime + stime of a process (or of one thread: /proc/PID/task/TID), seconds.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_start_broker() {
  mkdir -p "$dir/kafka"
  addr=$("$root/scripts/kafka-broker" start --dir "$dir/kafka" 2>"$dir/broker-start.log" | tail -1) || {
    cat "$dir/broker-start.log" >&2
    die "the broker did not start"
  }
  broker_pid=$(cat "$dir/kafka/pid")
}

# bench_topic NAME [PARTITIONS]: no size-based retention, so a large pre-fill
# is never cut before it is consumed.
bench_topic() {
  "$root/scripts/kafka-topic" --bootstrap "$addr" create "$1" --partitions "${2:-4}" \
    --config retention.bytes=-1 >"$dir/topic.log" 2>&1 || {
    cat "$dir/topic.log" >&2
    die "creating topic $1 failed"
  }
}

# bench_run_novapulse GROUP THREADS [PIPELINE_YAML [KAFKA_PROPS]]: starts
# `novapulse run` on a new consumer group reading from the earliest offset,
# with the batching of configs/novapulse.yaml (BATCH_SIZE, BATCH_TIMEOUT
# override it); PIPELINE_YAML is more of the pipeline section, e.g.
# "series_limit: 200000"; KAFKA_PROPS are librdkafka properties, "k=v k=v".
# With CHECKPOINT_INTERVAL set (e.g. 1s), it also writes checkpoints that
# often, to a directory of the group's own. RULES: rule files (absolute
# paths, space-separated) to evaluate. LOG_LEVEL: novapulse's log level
# (default warn).
bench_run_novapulse() {
  local group=$1 threads=$2 extra=${3:-} props=${4:-} kv props_yaml="" checkpoint=""
  local rules=""
  if [[ -n "${RULES:-}" ]]; then
    rules=$'rules:\n  files:'
    for f in $RULES; do rules+=$'\n    - '"$f"; done
  fi
  if [[ -n "${CHECKPOINT_INTERVAL:-}" ]]; then
    checkpoint=$'checkpoint:\n  dir: '"$dir/checkpoint-$group"$'\n  interval: '"$CHECKPOINT_INTERVAL"
  fi
  for kv in $props; do props_yaml+=$'\n'"    ${kv%%=*}: \"${kv#*=}\""; done
  port=$(free_port)
  cat >"$dir/novapulse.yaml" <<YAML
kafka:
  brokers: "$addr"
  group_id: $group
  batch_size: ${BATCH_SIZE:-10000}
  batch_timeout: ${BATCH_TIMEOUT:-100ms}
  properties:
    auto.offset.reset: earliest$props_yaml
http:
  listen: "127.0.0.1:$port"
log:
  level: ${LOG_LEVEL:-warn}
pipeline:
  threads: $threads
  ${extra}
$checkpoint
$rules
YAML
  "$novapulse" run --config "$dir/novapulse.yaml" 2>>"$dir/run.log" &
  np_pid=$!
}

# Waits (60 s at most) until novapulse has its partitions assigned.
bench_wait_assigned() {
  local reason i
  for ((i = 0; i < 600; i++)); do
    kill -0 "$np_pid" 2>/dev/null || { cat "$dir/run.log" >&2; die "novapulse exited"; }
    reason=$(curl -s "http://127.0.0.1:$port/readyz" || true)
    # Assigned: ready, or held back only by the lag.
    if [[ "$reason" == ready* || "$reason" == *lag* ]]; then return 0; fi
    sleep 0.1
  done
  die "novapulse got no partitions within 60 s"
}

bench_stop_novapulse() {
  [[ -n "$np_pid" ]] || return 0
  kill "$np_pid" 2>/dev/null || true
  wait "$np_pid" 2>/dev/null || true
  np_pid=""
}

# The values of the /metrics lines matching an awk regex, summed.
metric_sum() {
  { curl -sf "http://127.0.0.1:$port/metrics" || true; } |
    awk -v re="$1" '$0 ~ re {s += $NF} END {printf "%d\n", s}'
}

# median of the numbers on stdin
median() {
  sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
