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
  libpq-dev              # PostgreSQL state store (client library, pg_config)
  postgresql             # server binaries (initdb, pg_ctl) the PostgreSQL store tests start privately
  libxgboost-dev         # learned runtime estimator (gradient-boosted trees)
  gnuplot-nox            # icos sim --out draws its plots (SVG)
  libcpp-httplib-dev     # REST API client (CLI, agents) and the agents' log server
  libboost1.81-dev       # Beast/Asio (header-only): the controller's asynchronous API server (src/net)
  libssl-dev             # TLS for the API server and clients
  libhwloc-dev           # host topology: NUMA nodes, cores, PCIe locality of devices (icos_devices)
  libspdlog-dev libfmt-dev # process logging (controller, agent)
  clang-format           # scripts/check-format.sh (CI)
  python3-torch          # real PyTorch DDP jobs (examples, e2e tests), for /usr/bin/python3
  procps curl            # e2e tests
  iproute2 iptables      # e2e.netns_*: hosts in network namespaces; NFQUEUE latency where the kernel lacks netem
  dpkg-dev file          # cpack's Debian package: dpkg-shlibdeps finds its library dependencies
  prometheus             # the /metrics integration test scrapes icos with a real Prometheus; brings promtool
  chromium               # the dashboard's browser test (driven by playwright-core from npm)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# The dashboard (web/) builds with Node.js and npm. A newer Node from another
# source (e.g. NodeSource, which bundles npm) is fine; Debian's only if none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's prometheus and postgresql packages start their services on install
# (port 9090; a cluster on port 5432). The tests run their own servers (a free
# port; a private unix socket), so keep the services from starting now: a
# policy-rc.d that denies starts, only while we install and only when the
# machine has none of its own. postgresql still creates its default cluster,
# which is harmless.
policy=/usr/sbin/policy-rc.d
added_policy=""
if [[ " ${missing[*]} " == *" prometheus "* || " ${missing[*]} " == *" postgresql "* ]] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  added_policy=1
fi
status=0
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
[ -z "$added_policy" ] || $SUDO rm -f "$policy"
exit $status
