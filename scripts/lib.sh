# Shared by the scripts in this folder: installing Debian packages and
# building novapulse. Source it; do not run it.
set -euo pipefail

NOVAPULSE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian 12 packages novapulse builds and tests with.
NOVAPULSE_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libsimdjson-dev prometheus-cpp-dev libabsl-dev libtbb-dev
  libgtest-dev libgmock-dev libyaml-cpp-dev zlib1g-dev libzstd-dev
  libre2-dev libboost-dev libssl-dev libsasl2-dev libsnappy-dev
  libbenchmark-dev clang clang-format clang-tidy libclang-rt-14-dev
  python3 python3-yaml zstd gzip prometheus prometheus-alertmanager kcat openssl curl
  dpkg-dev systemd
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs whatever of the given packages is missing (as root, or via sudo).
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [cmake args...]: configures and builds DIR; NINJA_TARGETS
# (space-separated) limits what is built, default everything. librdkafka comes
# from scripts/librdkafka (built once, then reused).
build() {
  local dir=$1
  shift
  local rdkafka
  rdkafka=$("$NOVAPULSE_ROOT/scripts/librdkafka")
  # clang: its code for simdjson's On-Demand iteration is ~20% faster than
  # GCC 12's here (GCC reloads each object field through a stalled store).
  CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S "$NOVAPULSE_ROOT" -B "$dir" -G Ninja \
    -DCMAKE_PREFIX_PATH="$rdkafka" "$@" >/dev/null
  # shellcheck disable=SC2086  # NINJA_TARGETS is a list of words
  ninja -C "$dir" -j "$(nproc)" ${NINJA_TARGETS:-all}
}
