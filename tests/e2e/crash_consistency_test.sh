#!/usr/bin/env bash
# Exactly once under random kill -9 of the controller, the agent and both:
# a short run of bench/chaos.sh (its docs say what is counted). Fails unless
# no job is lost, none ran twice and none was wrongly failed.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
exec bash "$here/bench/chaos.sh" 200 8 --seed "${ICOS_CHAOS_SEED:-$RANDOM}"
