#!/usr/bin/env bash
# The main job: install what is needed, build icos (release), and run it.
# Until the control plane lands this schedules a generated mixed-vendor
# cluster with icos::core and prints every decision with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target icos
./build/release/src/cli/icos demo "$@"
