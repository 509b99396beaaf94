#!/usr/bin/env bash
# Sustained consumption of `novapulse run` from the project's local broker
# (target: >= 1 million access-log events/s from 4 partitions).
#
# Fills novagift.access-log (4 partitions) with `novapulse gen --kafka`
# first, so neither the producer nor the broker's produce work overlaps the
# measurement. Then, for each pipeline.threads value, starts novapulse on a
# fresh consumer group and, between the first /metrics scrape (every 50 ms)
# showing events and the first showing all of them, measures:
#   - events/s;
#   - CPU seconds of novapulse and of the broker's JVM in that phase
#     (utime + stime from /proc/PID/stat before and after), and of each
#     novapulse thread (grouped by name: main = Fill + a parse worker,
#     rdk:broker1 = librdkafka's fetch and lz4 thread, novapulse = TBB worker);
#   - events per novapulse CPU-second, and novapulse's ceiling on this
#     machine: that times nproc, but no more than the busiest thread allows
#     (a serial stage does not scale with cores);
#   - which process is the limit.
# The broker runs on the same cores, which is why the ceiling is computed
# from novapulse's own CPU.
#
# Each thread count runs twice: with librdkafka's defaults (kafka.properties
# as in configs/novapulse.yaml), and "tuned" with larger local fetch queues.
# librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s by
# default) once its local queue holds queued.min.messages (100 000) messages
# or queued.max.messages.kbytes (64 MiB), librdkafka issue #2879; above
# ~400 000 events/s novapulse drains 4 such queues within that second and
# then waits. (The figures in the README were measured with Debian 12's
# librdkafka 2.0.2, where that backoff could not be set.)
# The tuned queues hold over a second of input, at the price of memory
# (peak RSS is printed).
#
#   bench/kafka_consume_bench.sh [DURATION]   # event time generated at --rate 1000 (default 1h: ~3.9 M lines)
#   BUILD=build-bench THREADS="1 2" REPEAT=2 bench/kafka_consume_bench.sh 2h
#
# Environment: BUILD (build dir holding novapulse, default build), THREADS
# (pipeline.threads values, default "1 2"), REPEAT (runs of each, alternating;
# default 1), TUNED (the tuned librdkafka properties, "k=v k=v"; empty: only
# the defaults run).
set -euo pipefail
name=kafka_consume_bench
# shellcheck source=bench/kafka_bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kafka_bench_lib.sh"
duration="${1:-1h}"
read -r -a thread_counts <<<"${THREADS:-1 2}"
repeat="${REPEAT:-1}"
tuned="${TUNED-queued.min.messages=10000000 queued.max.messages.kbytes=262144}"
variants=(default)
[[ -z "$tuned" ]] || variants+=(tuned)
[[ -x /usr/bin/time ]] || die "GNU time not found at /usr/bin/time (Debian: apt-get install time)"

bench_start_broker
bench_topic novagift.access-log
bench_topic novagift.outbox
echo "producing $duration of access-log traffic (rate 1000/s of event time) to $addr" >&2
broker0=$(cpu_seconds "$broker_pid")
/usr/bin/time -f '%U %S %e' -o "$dir/gen.time" "$novapulse" gen --kafka "$addr" \
  --duration "$duration" --rate 1000 --gifts-per-minute 0 --wallet-per-minute 0 --speed max \
  --start 2026-11-26T09:00:00Z 2>"$dir/gen.log" || { cat "$dir/gen.log" >&2; die "gen failed"; }
broker1=$(cpu_seconds "$broker_pid")
# Every line delivered, both topics: novapulse_events_total counts both.
total=$(awk '/lines produced/ {s += $(NF - 1)} END {print s + 0}' "$dir/gen.log")
read -r gen_user gen_sys gen_wall <"$dir/gen.time"
awk -v n="$total" -v u="$gen_user" -v s="$gen_sys" -v w="$gen_wall" \
  -v b0="$broker0" -v b1="$broker1" 'BEGIN {
  printf "pre-fill: %d lines in %.2f s (%.0f lines/s); CPU s: novapulse gen %.2f, broker %.2f\n",
    n, w, n / w, u + s, b1 - b0 }'

echo "consumption ($cores cores; CPU seconds within the phase; ceiling = events per novapulse CPU-s x $cores, capped by the busiest thread)"
echo "tuned = $tuned"
run=0
runs=()
for variant in "${variants[@]}"; do
  for threads in "${thread_counts[@]}"; do runs+=("$variant $threads"); done
done
for ((r = 0; r < repeat; r++)); do
  for spec in "${runs[@]}"; do
    read -r variant threads <<<"$spec"
    run=$((run + 1))
    props=""
    [[ "$variant" = default ]] || props=$tuned
    bench_run_novapulse "bench-$run" "$threads" "" "$props"
    bench_fg python3 "$root/bench/kafka_watch.py" --mode count --port "$port" --pid "$np_pid" \
      --broker-pid "$broker_pid" --total "$total" >"$dir/watch" ||
      { cat "$dir/run.log" >&2; die "watching novapulse failed"; }
    counts=$({ curl -sf "http://127.0.0.1:$port/metrics" || true; } | awk '
      /^novapulse_events_total\{.*result="accepted"/ {a += $NF}
      /^novapulse_events_total\{.*result="rejected"/ {r += $NF}
      /^novapulse_late_events_total/ {l += $NF}
      END {printf "accepted=%d rejected=%d late=%d", a, r, l}')
    bench_stop_novapulse
    declare -A w=()
    while IFS='=' read -r key value; do w[$key]=$value; done <"$dir/watch"
    awk -v var="$variant" -v rss="${w[peak_rss_mb]}" -v t="$threads" -v c="$cores" -v w="${w[wall]}" -v n="${w[events]}" \
      -v np="${w[novapulse_cpu]}" -v br="${w[broker_cpu]}" -v me="${w[watcher_cpu]}" -v all="${w[machine_cpu]}" \
      -v th="${w[thread_cpu]}" -v bt="${w[busiest_thread]}" -v btc="${w[busiest_thread_cpu]}" \
      -v counts="$counts" 'BEGIN {
      per_cpu = n / np; ceil = per_cpu * c; serial = btc > 0 ? n / btc : ceil
      if (serial < ceil) ceil = serial
      used = all / (w * c)
      if (btc / w >= 0.9) limit = sprintf("novapulse thread %s (%.0f%% of a core: a serial stage)", bt, 100 * btc / w)
      else if (used >= 0.9) limit = sprintf("the machine: %.0f%% of %d cores busy", 100 * used, c)
      else limit = sprintf("no process CPU-bound (machine %.0f%% busy): waits (fetch backoff, round trips, batching)", 100 * used)
      printf "%s threads=%d: %d events in %.2f s = %.0f events/s; CPU s: novapulse %.2f (%.2f cores), broker %.2f (%.2f cores), watcher %.2f, other processes %.2f\n",
        var, t, n, w, n / w, np, np / w, br, br / w, me, all - np - br - me
      printf "  novapulse CPU s per thread: %s\n", th
      printf "  %.0f events per novapulse CPU-s; ceiling %.0f events/s (min of %.0f x %d cores and the serial bound %.0f); limit: %s\n",
        per_cpu, ceil, per_cpu, c, serial, limit
      printf "  peak RSS %d MB; %s\n", rss, counts }'
  done
done
