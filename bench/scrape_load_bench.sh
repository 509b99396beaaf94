#!/usr/bin/env bash
# Ingestion throughput of `novapulse run` while /metrics is scraped once a
# second, against the same without scrapes (target: within 10%), at about
# 100 000 series.
#
# Fills novagift.access-log (4 partitions) with EVENTS access-log lines
# (kcat, lz4) cycling over ROUTES routes x 4 statuses: ROUTES x 4
# http_requests_total series and ROUTES http_request_duration_seconds
# histograms, 100 000 series at the default 20 000 routes, all created by the
# first 80 000 events (the shape of the 100k-series render figure of
# build/cells_bench, BM_SnapshotAndRender). pipeline.series_limit is 200 000
# so nothing folds into __overflow__. Every event has the same second of
# event time (a minute ago), so none is late whatever the partition order.
#
# Then consumes the topic on fresh consumer groups, alternating "unscraped"
# and "scraped" (curl fetching /metrics once a second with Prometheus's
# headers: OpenMetrics preferred, gzip; each scrape's duration and size
# recorded) REPEAT times each. The consumption phase is found from
# /proc alone (bench/kafka_watch.py --mode idle: from the first to the last
# 50 ms in which novapulse's pipeline threads burn CPU), so the unscraped
# runs are really unscraped. Prints every run, the medians, the ratio, the
# scrape durations (p50, max) and the series count; and, once, the duration
# of scrapes of the idle service (after a run) as Prometheus and as plain
# curl (Prometheus text, no gzip) make them.
#
# novapulse runs with larger librdkafka fetch queues (TUNED, as in
# bench/kafka_consume_bench.sh): with the defaults it waits on librdkafka's
# 1 s fetch backoff, has CPU to spare, and a scrape costs no throughput.
#
#   bench/scrape_load_bench.sh
#   BUILD=build-bench EVENTS=20000000 REPEAT=3 bench/scrape_load_bench.sh
#
# Environment: SCRAPE_AS (prometheus, the default, or plain: the scraped runs'
# headers), BUILD (build dir holding novapulse, default build), EVENTS
# (default 10 000 000), ROUTES (default 20 000), REPEAT (runs of each mode,
# default 3), THREADS (pipeline.threads, default 0 = every core), TUNED
# (librdkafka properties "k=v k=v"; empty for the defaults).
set -euo pipefail
name=scrape_load_bench
# shellcheck source=bench/kafka_bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kafka_bench_lib.sh"
events="${EVENTS:-10000000}"
routes="${ROUTES:-20000}"
repeat="${REPEAT:-3}"
threads="${THREADS:-0}"
scrape_as="${SCRAPE_AS:-prometheus}"
tuned="${TUNED-queued.min.messages=10000000 queued.max.messages.kbytes=262144}"
command -v kcat >/dev/null || die "kcat not found (Debian: apt-get install kcat)"
scraper_pid=""
bench_extra_cleanup() {
  if [[ -n "$scraper_pid" ]]; then kill "$scraper_pid" 2>/dev/null || true; fi
}

bench_start_broker
bench_topic novagift.access-log
bench_topic novagift.outbox
echo "producing $events access-log lines over $routes routes x 4 statuses to $addr" >&2
python3 - "$routes" "$events" <<'EOF' |
import sys, time
routes, events = int(sys.argv[1]), int(sys.argv[2])
second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 60))
block = []
for r in range(routes):
    for i, status in enumerate((200, 404, 500, 503)):
        n = r * 4 + i
        block.append(
            f'{{"ts":"{second}.{n % 1000:03d}Z","method":"GET","route":"/api/bench/{r}",'
            f'"path":"/api/bench/{r}","status":{status},"duration_ms":{(r * 7 + i * 13) % 800 + 0.5},'
            f'"bytes_out":512,"request_id":"req-{n:08x}","instance":"api-{i}"}}\n')
data = "".join(block).encode()
written = 0
while written + len(block) <= events:
    sys.stdout.buffer.write(data)
    written += len(block)
sys.stdout.buffer.write("".join(block[: events - written]).encode())
EOF
  kcat -P -b "$addr" -t novagift.access-log -X compression.codec=lz4 -X linger.ms=20 \
    -X queue.buffering.max.messages=1000000 -X batch.num.messages=10000
total=$(kcat -Q -b "$addr" -t novagift.access-log:0:-1 -t novagift.access-log:1:-1 \
  -t novagift.access-log:2:-1 -t novagift.access-log:3:-1 | awk '{s += $NF} END {print s + 0}')
[[ "$total" -eq "$events" ]] || die "the topic holds $total messages, not $events"

# The headers of a Prometheus 2.x scrape.
openmetrics='Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
prometheus_headers=(-H "$openmetrics" -H 'Accept-Encoding: gzip')
# scrape [CURL_ARGS]: one scrape of /metrics: seconds and bytes received.
scrape() {
  curl -sf -o /dev/null -w '%{time_total} %{size_download}' "$@" "http://127.0.0.1:$port/metrics"
}
case $scrape_as in
prometheus) loop_headers=("${prometheus_headers[@]}") ;;
plain) loop_headers=() ;;
*) die "SCRAPE_AS must be prometheus or plain, not '$scrape_as'" ;;
esac
# Scrapes once a second; one line per scrape: start time, seconds (or
# "failed"), bytes.
scrape_loop() {
  local t0 took
  while :; do
    t0=$(date +%s.%N)
    took=$(scrape "${loop_headers[@]}") || took="failed 0"
    echo "$t0 $took"
    sleep "$(awk -v t="${took%% *}" 'BEGIN {s = 1 - t; print (s > 0 && s <= 1) ? s : 1}')"
  done
}

echo "scraped runs: once a second, as $scrape_as; $cores cores"
echo "mode       events/s  (events, seconds; novapulse CPU s; scrapes in the phase: count, p50 / max ms, MB)"
: >"$dir/results"
run=0
for ((r = 0; r < repeat; r++)); do
  for mode in unscraped scraped; do
    run=$((run + 1))
    bench_run_novapulse "scrape-$run" "$threads" "series_limit: 200000" "$tuned"
    : >"$dir/scrapes"
    if [[ "$mode" = scraped ]]; then
      scrape_loop >"$dir/scrapes" &
      scraper_pid=$!
    fi
    bench_fg python3 "$root/bench/kafka_watch.py" --mode idle --port "$port" --pid "$np_pid" \
      --broker-pid "$broker_pid" --total "$total" >"$dir/watch" ||
      { cat "$dir/run.log" >&2; die "watching novapulse failed"; }
    if [[ -n "$scraper_pid" ]]; then
      kill "$scraper_pid" 2>/dev/null || true
      wait "$scraper_pid" 2>/dev/null || true
      scraper_pid=""
    fi
    if ((run == 2)); then
      # Once, on the idle service after a run: the exposition, and scrapes.
      curl -s "http://127.0.0.1:$port/metrics" >"$dir/metrics.txt"
      for kind in prometheus plain gzip openmetrics; do
        case $kind in
        prometheus) headers=("${prometheus_headers[@]}") ;;
        plain) headers=() ;;
        gzip) headers=(-H 'Accept-Encoding: gzip') ;;
        openmetrics) headers=(-H "$openmetrics") ;;
        esac
        for ((i = 0; i < 5; i++)); do
          scrape "${headers[@]}"
          echo
        done >"$dir/idle-$kind"
      done
    fi
    bench_stop_novapulse
    declare -A w=()
    while IFS='=' read -r key value; do w[$key]=$value; done <"$dir/watch"
    # Scrapes that started within the phase: milliseconds and bytes, sorted.
    failed=$(awk -v t0="${w[t_start]}" -v t1="${w[t_end]}" '$1 >= t0 && $1 <= t1 && $2 == "failed"' \
      "$dir/scrapes" | wc -l)
    ((failed == 0)) || echo "warning: $failed scrapes failed in this run" >&2
    awk -v t0="${w[t_start]}" -v t1="${w[t_end]}" '$1 >= t0 && $1 <= t1 && $2 != "failed" {
      print $2 * 1000, $3 }' "$dir/scrapes" | sort -g >"$dir/phase-scrapes"
    k=$(wc -l <"$dir/phase-scrapes")
    p50=$(cut -d' ' -f1 "$dir/phase-scrapes" | median)
    max=$(tail -1 "$dir/phase-scrapes" | cut -d' ' -f1)
    awk -v mode="$mode" -v n="${w[events]}" -v wall="${w[wall]}" -v np="${w[novapulse_cpu]}" \
      -v k="$k" -v p50="$p50" -v mx="${max:-0}" -v mb="$(awk '{b = $2} END {print b / 1e6}' "$dir/phase-scrapes")" 'BEGIN {
      printf "%-9s %9.0f  (%d events, %.2f s; CPU %.2f s; scrapes %d, %.0f / %.0f ms, %.1f MB)\n",
        mode, n / wall, n, wall, np, k, p50, mx, mb }'
    echo "$mode $(awk -v n="${w[events]}" -v wall="${w[wall]}" 'BEGIN {printf "%.0f", n / wall}') ${p50/nan/0} ${max:-0} $k" >>"$dir/results"
  done
done

series=$(awk '/^novapulse_series\{/ {s += $NF} END {print s + 0}' "$dir/metrics.txt")
samples=$(grep -vc '^#' "$dir/metrics.txt")
bytes=$(wc -c <"$dir/metrics.txt")
overflow=$(awk '/^novapulse_series_overflow_total\{/ {s += $NF} END {print s + 0}' "$dir/metrics.txt")
unscraped=$(awk '$1 == "unscraped" {print $2}' "$dir/results" | median)
scraped=$(awk '$1 == "scraped" {print $2}' "$dir/results" | median)
p50=$(awk '$1 == "scraped" {print $3}' "$dir/results" | median)
max=$(awk '$1 == "scraped" {if ($4 > m) m = $4} END {print m + 0}' "$dir/results")
for kind in prometheus plain gzip openmetrics; do
  awk -v kind="$kind" '{d = $1 * 1000; b = $2; if (d > m) m = d; v[NR] = d} END {
    # median of 5
    for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (v[j] < v[i]) {t = v[i]; v[i] = v[j]; v[j] = t}
    printf "idle scrape, %-11s p50 %.0f ms, max %.0f ms, %.1f MB\n", kind, v[int((NR + 1) / 2)], m, b / 1e6 }' "$dir/idle-$kind"
done
awk -v u="$unscraped" -v s="$scraped" -v p50="$p50" -v mx="$max" -v series="$series" \
  -v samples="$samples" -v bytes="$bytes" -v overflow="$overflow" -v c="$cores" 'BEGIN {
  printf "medians: unscraped %.0f events/s, scraped %.0f events/s: ratio %.3f (%+.1f%%)\n", u, s, s / u, 100 * (s / u - 1)
  printf "scrapes during ingestion: median of the runs'"'"' p50 %.0f ms, max %.0f ms\n", p50, mx
  printf "exposition: %d series (sum of novapulse_series), %d sample lines, %.1f MB, %d events folded into __overflow__\n",
    series, samples, bytes / 1e6, overflow }'
