#!/usr/bin/env bash
# packaging/install-deps.sh
# Installs, idempotently, the Debian 12 packages tenancy needs: --build (default) for building and running,
# --test adds what make check and the benchmarks use, --deb what make deb uses. apt-get runs only when something is
# missing.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config git ca-certificates openssl
  postgresql-15 postgresql-client-15 postgresql-server-dev-15 postgresql-contrib libpq-dev
  libssl-dev libmodpbase64-dev libcpp-httplib-dev libyaml-cpp-dev nlohmann-json3-dev
  nginx)
TEST_PKGS=(googletest libgtest-dev libgmock-dev pgbouncer curl wrk redis-server redis-tools procps iproute2
  clang-format python3-yaml jq)

# make deb: debhelper and lintian, plus the package's Build-Depends (the unit tests build with the daemon).
DEB_PKGS=(debhelper lintian dpkg-dev fakeroot libgtest-dev libgmock-dev)

want=("${BUILD_PKGS[@]}")
[ "${1:-}" = --test ] && want+=("${TEST_PKGS[@]}")
[ "${1:-}" = --deb ] && want+=("${DEB_PKGS[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]}; run this script as root (or with sudo)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian starts a main cluster and services on install; make check never uses them.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
