#!/usr/bin/env bash
# Peak RSS of `novapulse replay` against input size, to show that memory does
# not grow with the input: the pipeline holds a bounded number of chunks and
# one cell per series, never the records.
#
# Generates (once, cached under out/bench/rss-<MB>mb/) an access-log file of
# about each size given in MB, then replays each under GNU time and prints
# peak RSS, wall time and events/s. A first row replays the first 1000 lines
# of the smallest file, for the fixed cost.
#
#   bench/rss_vs_input.sh                 # 1000 and 5000 MB
#   bench/rss_vs_input.sh 200 600         # a quick check
#   BUILD=build-bench THREADS=2 bench/rss_vs_input.sh 1000
#
# Environment: BUILD (build dir holding novapulse, default build), THREADS
# (replay --threads, default 2), DATA (cache dir, default out/bench).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-build}"
[[ "$build" = /* ]] || build="$root/$build"
novapulse="$build/novapulse"
threads="${THREADS:-2}"
data="${DATA:-$root/out/bench}"
rate=20000
if (($# > 0)); then sizes=("$@"); else sizes=(1000 5000); fi

die() {
  echo "rss_vs_input: $*" >&2
  exit 1
}

[[ -x "$novapulse" ]] || die "$novapulse not found; build it or set BUILD"
[[ -x /usr/bin/time ]] && /usr/bin/time -f '%M' true >/dev/null 2>&1 ||
  die "GNU time not found at /usr/bin/time (Debian: apt-get install time)"
for mb in "${sizes[@]}"; do
  [[ "$mb" =~ ^[1-9][0-9]*$ ]] || die "size '$mb' is not a whole number of MB"
done
mkdir -p "$data"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Bytes of NDJSON per second of event time at --rate $rate, measured on a
# short sample at 09:00 UTC, where the generator's diurnal factor is 1.0.
gen() {
  "$novapulse" gen "$@" >"$scratch/gen.log" 2>&1 || {
    cat "$scratch/gen.log" >&2
    die "novapulse gen failed"
  }
}
gen --out "$scratch/sample" --rate "$rate" --gifts-per-minute 0 --wallet-per-minute 0 \
  --start 2026-11-26T09:00:00Z --duration 5s
bytes_per_second=$(($(stat -c %s "$scratch/sample/access-log.ndjson") / 5))
rm -rf "$scratch/sample"

path_for() { echo "$data/rss-${1}mb/access-log.ndjson"; }

# Disk space for the files not cached yet, plus 10% and 1 GiB of slack.
need_mb=0
for mb in "${sizes[@]}"; do
  [[ -f "$(path_for "$mb")" ]] || need_mb=$((need_mb + mb))
done
if ((need_mb > 0)); then
  avail_mb=$(($(df -Pk "$data" | awk 'NR == 2 { print $4 }') / 1024))
  want_mb=$((need_mb + need_mb / 10 + 1024))
  ((avail_mb >= want_mb)) ||
    die "need ~${want_mb} MB free in $data to generate ${need_mb} MB, have ${avail_mb} MB"
fi

for mb in "${sizes[@]}"; do
  path="$(path_for "$mb")"
  [[ -f "$path" ]] && continue
  seconds=$(((mb * 1000000 + bytes_per_second - 1) / bytes_per_second))
  # Centre the span on 09:00 UTC so the diurnal rate averages ~1.0 over it.
  start=$(date -u -d "@$((1795683600 - seconds / 2))" +%Y-%m-%dT%H:%M:%SZ)
  echo "generating ~${mb} MB (${seconds}s of event time at ${rate}/s) into $(dirname "$path")" >&2
  tmp="$(dirname "$path").partial"
  rm -rf "$tmp"
  gen --out "$tmp" --rate "$rate" --gifts-per-minute 0 --wallet-per-minute 0 \
    --start "$start" --duration "${seconds}s" --seed 11
  rm -rf "$(dirname "$path")"
  mv "$tmp" "$(dirname "$path")"
done

# Prints one result row for replaying $2 (label $1).
replay() {
  local label="$1" file="$2"
  cat "$file" >/dev/null # warm the page cache: measure the pipeline, not the disk
  local lines bytes
  lines=$(wc -l <"$file")
  bytes=$(stat -c %s "$file")
  /usr/bin/time -f '%M %e' -o "$scratch/time" "$novapulse" replay --threads "$threads" \
    --topic access-log --output /dev/null -q "$file"
  local rss_kb wall
  read -r rss_kb wall <"$scratch/time"
  # GNU time has 10 ms resolution: no rates for runs shorter than 0.1 s.
  awk -v label="$label" -v bytes="$bytes" -v lines="$lines" -v kb="$rss_kb" -v s="$wall" 'BEGIN {
    eps = s >= 0.1 ? sprintf("%.0f", lines / s) : "-"
    mbps = s >= 0.1 ? sprintf("%.0f", bytes / 1e6 / s) : "-"
    printf "%-10s %10.0f %12d %12.1f %8.2f %12s %8s\n",
      label, bytes / 1e6, lines, kb / 1024, s, eps, mbps
  }'
}

smallest="${sizes[0]}"
for mb in "${sizes[@]}"; do
  if ((mb < smallest)); then smallest=$mb; fi
done
head -n 1000 "$(path_for "$smallest")" >"$scratch/baseline.ndjson"

echo "novapulse replay --threads $threads --topic access-log (peak RSS from GNU time; wall time)"
printf "%-10s %10s %12s %12s %8s %12s %8s\n" input MB lines "peak RSS MB" wall_s events/s MB/s
replay "1k-lines" "$scratch/baseline.ndjson"
for mb in "${sizes[@]}"; do
  replay "${mb}MB" "$(path_for "$mb")"
done
