#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests and the demo need, or, given package names
# as arguments, those instead (bench/install-bench-deps.sh does). Idempotent and quick when
# everything is already there: apt is only called for packages dpkg does not report as installed.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake make pkg-config clang-format
  # libraries
  prometheus-cpp-dev libpqxx-dev libpaho-mqttpp-dev libpaho-mqtt-dev libcivetweb-dev
  libyaml-cpp-dev zlib1g-dev libcurl4-openssl-dev nlohmann-json3-dev libssl-dev libargon2-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcrypt-dev
  # the broker plugin (exporter/plugin) and the benchmark's plain publisher
  mosquitto-dev libmosquitto-dev
  # certificates for the TLS tests
  openssl
  # services the tests and the demo start privately on 127.0.0.1
  postgresql-15 postgresql-client-15 mosquitto mosquitto-clients prometheus python3-aiosmtpd
  # the long-term store the usage job is also tested against (single node and vmagent)
  victoria-metrics
  # chart tests: Go text/template + Sprig for tools/chart-render (Helm's engine, built offline in
  # GOPATH mode), JSON Schema validation of rendered objects and values, yamllint
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev golang-gopkg-yaml.v2-dev
  python3 python3-jsonschema python3-yaml yamllint
  # `make fuzz`: clang 14 with libFuzzer and the sanitizer runtimes (make test SANITIZE=... uses
  # g++'s own libasan/libubsan/libtsan, which come with g++)
  clang libclang-rt-14-dev libfuzzer-14-dev
)

if (($# > 0)); then
  packages=("$@")
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Installing a server package must not start a system-wide instance: the tests start their own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
