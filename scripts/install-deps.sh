#!/usr/bin/env bash
# Installs every Debian 12 package icos needs to build, test and run.
# Idempotent: packages already present are skipped, so a second run is quick.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev            # Status/StatusOr, flat_hash_map, StrFormat (icos::core)
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  libcli11-dev           # argument parsing of the icos binary
  nlohmann-json3-dev     # JSON at the edges (API, CLI output)
  libyaml-cpp-dev        # job specs
  libsqlite3-dev         # embedded state store
  libxgboost-dev         # learned runtime estimator (gradient-boosted trees)
  gnuplot-nox            # icos sim --out draws its plots (SVG)
  libcpp-httplib-dev     # REST API server and client
  libspdlog-dev libfmt-dev
  python3-torch          # real PyTorch DDP jobs (examples, e2e tests), for /usr/bin/python3
  procps curl            # e2e tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
