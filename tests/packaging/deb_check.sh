#!/usr/bin/env bash
# The .deb that CPack makes of BUILD_DIR: its control fields and file list,
# the unit checked by systemd-analyze, then installed into a scratch root with
# dpkg (the dependencies judged against this machine's package database),
# run from there, reinstalled over an edited conffile, removed and purged.
#   tests/packaging/deb_check.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Built from the tree as it is.
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out") >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; fail "cpack"; }
debs=("$work"/out/novapulse_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "cpack made no single .deb: ${debs[*]}"
deb=${debs[0]}
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = novapulse ] || fail "Package: $(field Package)"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture: $(field Architecture)"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), project $version"
depends=$(field Depends)
for lib in libc6 libstdc++6 libsimdjson14 libre2-9 libyaml-cpp0.7 libssl3 libcrypt1; do
  [[ ", $depends," == *", $lib ("* ]] || fail "Depends lacks $lib: $depends"
done
[[ "$depends" != *librdkafka* ]] || fail "librdkafka is linked statically, yet Depends names it: $depends"

# The files, exactly.
want="/etc/default/novapulse
/etc/novapulse/alerts/novagift.yml
/etc/novapulse/novapulse.yaml
/lib/systemd/system/novapulse.service
/usr/bin/novapulse
/usr/share/doc/novapulse/README.md
/usr/share/novapulse/metrics/examples/caddy.yaml
/usr/share/novapulse/metrics/examples/traefik.yaml
/usr/share/novapulse/metrics/novagift.yaml"
got=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}' | sort)
[ "$got" = "$want" ] || fail "files differ from the list:$(diff <(echo "$want") <(echo "$got") || true)"
dpkg-deb -e "$deb" "$work/control"
[ "$(sort "$work/control/conffiles")" = "$(printf '%s\n' /etc/default/novapulse \
  /etc/novapulse/alerts/novagift.yml /etc/novapulse/novapulse.yaml)" ] ||
  fail "conffiles: $(cat "$work/control/conffiles")"
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "$script is missing or not executable"
  sh -n "$work/control/$script" || fail "$script: syntax"
done

# Install into a scratch root that knows this machine's packages, so that
# dpkg checks the dependencies as an install here would. Maintainer scripts
# run outside it with DPKG_ROOT set (they touch systemd only without it).
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
touch "$root/var/lib/dpkg/available"
dpkg_root=(dpkg "--root=$root" --force-script-chrootless --log=/dev/null)
[ "$(id -u)" -eq 0 ] || dpkg_root+=(--force-not-root)
"${dpkg_root[@]}" -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
status=$("${dpkg_root[@]}" -s novapulse)
[[ "$status" == *"Status: install ok installed"* ]] || fail "not installed: $status"

bin="$root/usr/bin/novapulse"
if ldd "$bin" | grep -q "not found"; then fail "unresolved libraries: $(ldd "$bin" | grep 'not found')"; fi
if readelf -S "$bin" | grep -q '\.debug_info'; then fail "the binary is not stripped"; fi
"$bin" --version | grep -q "$version" || fail "--version: $("$bin" --version)"
NOVAPULSE_CHECKPOINT_DIR=/var/lib/novapulse "$bin" check-config "$root/etc/novapulse/novapulse.yaml" >"$work/config.txt" ||
  fail "check-config of the installed config"
grep -qx "checkpoint.dir: /var/lib/novapulse" "$work/config.txt" || fail "checkpoint.dir: $(cat "$work/config.txt")"
"$bin" check-rules "$root/etc/novapulse/alerts/novagift.yml" >/dev/null || fail "check-rules"
for spec in "$root"/usr/share/novapulse/metrics/novagift.yaml "$root"/usr/share/novapulse/metrics/examples/*.yaml; do
  "$bin" check-metrics "$spec" >/dev/null || fail "check-metrics $spec"
done

# The unit, as systemd reads it (with the binary where the scratch root has
# it). verify exits 0 on unknown keys and bad values: any output fails.
unit="$work/novapulse.service"
sed "s|^ExecStart=/usr/bin/novapulse|ExecStart=$bin|" "$root/lib/systemd/system/novapulse.service" >"$unit"
verify=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
grep -qx "DynamicUser=yes" "$unit" && grep -qx "ProtectSystem=strict" "$unit" &&
  grep -qx "StateDirectory=novapulse" "$unit" || fail "the unit lost its hardening"
exposure=$(systemd-analyze security --offline=yes "$unit" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure above 2.0"

# An edited conffile survives a reinstall; remove keeps it, purge does not.
echo "# edited" >>"$root/etc/novapulse/novapulse.yaml"
"${dpkg_root[@]}" -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "reinstall"; }
tail -n 1 "$root/etc/novapulse/novapulse.yaml" | grep -qx "# edited" || fail "the edited config was replaced"
"${dpkg_root[@]}" -r novapulse >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
[ ! -e "$bin" ] || fail "dpkg -r left the binary"
[ -f "$root/etc/novapulse/novapulse.yaml" ] || fail "dpkg -r removed the config"
"${dpkg_root[@]}" -P novapulse >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P"; }
[ ! -e "$root/etc/novapulse" ] && [ ! -e "$root/etc/default/novapulse" ] || fail "dpkg -P left the config"
echo "ok"
