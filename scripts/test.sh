#!/usr/bin/env bash
# Install what is needed, build everything (debug, -Werror) and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build-web.sh  # the dashboard, embedded into icos at build time
cmake --preset debug >/dev/null
cmake --build --preset debug
ctest --preset debug -j"$(nproc)"
