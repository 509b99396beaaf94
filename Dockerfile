# novapulse image: built on Debian 12 from the same packages as scripts/lib.sh
# (NOVAPULSE_PACKAGES), run on debian:12-slim with only the runtime libraries.
#
#   docker build -t novapulse .
#   docker run --rm novapulse help
#
# NOVAPULSE_MARCH: -march of the build. The default "native" of CMake would tie
# the image to the build machine's CPU; x86-64-v2 (SSE4.2) runs on any x86-64
# server of the last decade and keeps simdjson's SIMD kernel. Use x86-64-v3
# (AVX2) where every host has it.

FROM debian:12 AS build
ARG NOVAPULSE_MARCH=x86-64-v2
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config clang curl ca-certificates \
      libsimdjson-dev prometheus-cpp-dev libabsl-dev libtbb-dev \
      libgtest-dev libgmock-dev libyaml-cpp-dev zlib1g-dev libzstd-dev \
      libre2-dev libboost-dev libssl-dev libsasl2-dev libsnappy-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# librdkafka 2.12.1 from source, linked statically (see scripts/librdkafka);
# its own layer, so a change to novapulse's sources does not rebuild it.
COPY scripts/lib.sh scripts/librdkafka scripts/
COPY scripts/patches scripts/patches
RUN NOVAPULSE_DEPS=/deps scripts/librdkafka > /deps.prefix
COPY CMakeLists.txt ./
COPY base base
COPY rules rules
COPY parsers parsers
COPY spec spec
COPY aggregators aggregators
COPY sinks sinks
COPY gen gen
COPY pipeline pipeline
COPY tests tests
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$(cat /deps.prefix)" \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DNOVAPULSE_BENCH=OFF -DNOVAPULSE_MARCH=${NOVAPULSE_MARCH} \
 && ninja -C build novapulse \
 && strip build/novapulse

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsasl2-2 libsimdjson14 libprometheus-cpp-core1.0 libabsl20220623 libtbb12 \
      libssl3 libre2-9 libyaml-cpp0.7 libzstd1 zlib1g libcrypt1 libsnappy1v5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin novapulse
COPY --from=build /src/build/novapulse /usr/local/bin/novapulse
COPY configs/novapulse.yaml /etc/novapulse/novapulse.yaml
COPY configs/alerts /etc/novapulse/alerts
USER novapulse
# /metrics, /healthz, /readyz (http.listen; the compose file sets NOVAPULSE_LISTEN=:9464)
EXPOSE 9464
ENTRYPOINT ["novapulse"]
CMD ["run", "--config", "/etc/novapulse/novapulse.yaml"]
