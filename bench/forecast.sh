#!/usr/bin/env bash
# Start-time forecasts against what really happened (issue #19): Philly
# replayed in the simulator with learned run-time estimates; at the
# submission of every EVERY-th job its start is forecast from the cluster's
# state then (core::ForecastStarts: the scheduler run forward over run times
# drawn from the learned estimator's error, SAMPLES samples), beside the
# point forecast of a Slurm-style planner (every job ends at its estimate).
# One line per cluster:
#   forecast cluster=C policy=P jobs=N forecasts=F waited_10min=W samples=S
#     coverage=X% p50_error=Y% calibrated_coverage=X% calibrated_p50_error=Y%
#     slurm_style_error=Z% slurm_style_coverage=V%
#     forecast_ms_p50=... forecast_ms_max=...
# coverage: share of forecast jobs whose start lies in [P10, P90] (goal >= 80%);
# p50_error: median |P50 - start| / wait of jobs that waited > 10 min (goal <= 30%).
# calibrated_*: the same for the forecasts as the controller shows them, each
# calibrated by the earlier ones whose jobs had started (core/forecast_calibration.h).
# FORECAST_WINDOW_S=3600 takes the last hour's work to come again (ForecastOptions::arrival_window_ms).
# Usage: bench/forecast.sh   (needs a release build; BIN=build dir, ICOS_TRACES=trace dir,
#        JOBS=first N jobs (default 10000), EVERY=100, SAMPLES=8, CLUSTERS="88x8xV100 60x8xV100")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
TRACES=${ICOS_TRACES:-$PWD/../shared/data/traces}
BENCH=$BIN/bench/icos_forecast_bench
[ -x "$BENCH" ] || { echo "no $BENCH: cmake --build --preset release --target icos_forecast_bench" >&2; exit 1; }
[ -f "$TRACES/philly/philly.csv" ] || { echo "no Philly trace under $TRACES (set ICOS_TRACES)" >&2; exit 1; }
for cluster in ${CLUSTERS:-88x8xV100 60x8xV100}; do
  "$BENCH" "$TRACES/philly/philly.csv" "$cluster" "${POLICY:-default}" "${JOBS:-10000}" "${EVERY:-100}" "${SAMPLES:-8}"
done
