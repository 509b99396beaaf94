# shellcheck shell=bash
# Shared by scripts/kafka-broker and scripts/kafka-topic: where the Apache
# Kafka jars live, how they are fetched from Maven Central, and how a Kafka
# tool is run from them. Source it; do not run it.
#
# Apache Kafka is not packaged by Debian, so we take its jars from Maven
# Central with Maven (scripts/kafka/pom.xml lists them). They are cached
# outside the work tree, keyed by version, so a fresh clone (as CI makes) and
# a second run download nothing.
#
# Environment:
#   NOVAPULSE_KAFKA_VERSION  Kafka version (default below; 4.x only)
#   NOVAPULSE_CACHE          cache root (default ~/.cache/novapulse)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

KAFKA_SCRIPTS_DIR=$NOVAPULSE_ROOT/scripts/kafka
# The newest 4.x release that Maven Central served here when this was written.
KAFKA_VERSION=${NOVAPULSE_KAFKA_VERSION:-4.4.0}
NOVAPULSE_CACHE=${NOVAPULSE_CACHE:-$HOME/.cache/novapulse}
KAFKA_HOME=$NOVAPULSE_CACHE/kafka-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
# Written last by kafka_fetch, holding the version and a checksum of the pom:
# its presence means libs/ is complete, and a changed pom (a jar added or
# removed) makes the cache stale, so it is fetched again.
KAFKA_MARKER=$KAFKA_HOME/fetch-complete

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Kafka 4 brokers need Java 17 or newer. Debian 12 ships 17 and the machines
# normally have it, so look before installing anything.
kafka_ensure_java() {
  local major=0
  if command -v java >/dev/null 2>&1; then
    # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15' on stderr.
    major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1)
  fi
  if [ "${major:-0}" -lt 17 ]; then
    ensure_packages openjdk-17-jre-headless
    major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1)
    [ "${major:-0}" -ge 17 ] ||
      die "Kafka $KAFKA_VERSION needs Java 17 or newer; 'java' on PATH is version ${major:-none}"
  fi
}

kafka_pom_checksum() {
  sha256sum "$KAFKA_SCRIPTS_DIR/pom.xml" | cut -d' ' -f1
}

kafka_is_fetched() {
  [ -f "$KAFKA_MARKER" ] &&
    [ "$(cat "$KAFKA_MARKER")" = "$KAFKA_VERSION $(kafka_pom_checksum)" ]
}

# Downloads Kafka's jars into $KAFKA_LIBS unless they are already there.
kafka_fetch() {
  case $KAFKA_VERSION in
  4.*) ;;
  *) die "NOVAPULSE_KAFKA_VERSION=$KAFKA_VERSION: only Apache Kafka 4.x is supported (KRaft-only, log4j2)" ;;
  esac
  kafka_ensure_java
  kafka_is_fetched && return 0

  command -v mvn >/dev/null 2>&1 || ensure_packages maven
  command -v flock >/dev/null 2>&1 || ensure_packages util-linux
  mkdir -p "$KAFKA_HOME"
  # Two test runs may start at once on a fresh machine: one fetches, the other
  # waits for it and then finds the marker.
  exec {lock_fd}>"$KAFKA_HOME/.lock"
  flock "$lock_fd"
  if ! kafka_is_fetched; then
    log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
    # Maven runs on a copy of the pom in a staging folder: it writes nothing
    # into the work tree, and a half-finished download never looks complete.
    local stage
    stage=$(mktemp -d "$KAFKA_HOME/stage.XXXXXX")
    cp "$KAFKA_SCRIPTS_DIR/pom.xml" "$stage/pom.xml"
    # Maven's output is kept for a failure only: even with -q it prints
    # terminal escape codes, and it puts its errors on stdout.
    if ! mvn -q -B -Dstyle.color=never -f "$stage/pom.xml" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$stage/libs" >"$stage/mvn.log" 2>&1; then
      sed 's/\x1b\[[0-9;]*m//g' "$stage/mvn.log" | tail -n 40 >&2
      rm -rf "$stage"
      die "could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (and its dependencies) with Maven; see its messages above"
    fi
    [ -f "$stage/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || {
      rm -rf "$stage"
      die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing from the fetched jars"
    }
    rm -rf "$KAFKA_LIBS"
    mv "$stage/libs" "$KAFKA_LIBS"
    rm -rf "$stage"
    echo "$KAFKA_VERSION $(kafka_pom_checksum)" >"$KAFKA_MARKER"
    log "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1))"
  fi
  flock -u "$lock_fd"
  exec {lock_fd}>&-
}

# kafka_tool CLASS ARGS...: runs one of Kafka's command-line tools from the
# cached jars, logging warnings to stderr only.
kafka_tool() {
  # C1 only: these JVMs live a second or two, so startup matters, not peak speed.
  java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_SCRIPTS_DIR/log4j2-tools.xml" \
    -cp "$KAFKA_LIBS/*" "$@"
}
