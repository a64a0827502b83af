// Calibrating start-time forecasts by what became of earlier ones: online
// split-conformal prediction (as conformalized quantile regression does it).
//
// ForecastStarts' quantiles come from the scheduler run forward over run
// times drawn from each estimate's error. What it cannot see makes them
// wrong in a consistent way: jobs submitted after the forecast overtake under
// fair share and backfill (starts come later than forecast), and on a loaded
// cluster the spread of a long queue is wider than the samples show. Each
// forecast whose job has since started is one observation. On the log of the
// wait (plus a minute, so a job that starts at once counts), the calibrator
// moves P50 by the median error seen, and moves P10 and P90 out (or in) until the wanted share of the observed
// starts would have fallen between them. With fewer than min_observations
// it changes nothing.
//
// Pure and deterministic; not thread-safe (one owner feeds and reads it).
#ifndef ICOS_CORE_FORECAST_CALIBRATION_H_
#define ICOS_CORE_FORECAST_CALIBRATION_H_

#include <cstdint>
#include <deque>
#include <map>
#include <utility>

#include "core/forecast.h"
#include "core/model/snapshot.h"

namespace icos::core {

struct CalibrationOptions {
  int32_t window = 500;           // the latest observations kept
  int32_t min_observations = 20;  // fewer: forecasts pass unchanged
  double coverage = 0.8;          // the share of starts [P10, P90] should hold
};

class ForecastCalibrator {
 public:
  explicit ForecastCalibrator(CalibrationOptions options = {}) : options_(options) {}

  // Forecast `f`, made at made_ms, of a job that then started at start_ms.
  // Forecasts without a P50 (beyond the horizon) are not observed.
  void Observe(int64_t made_ms, const StartForecast& f, int64_t start_ms);
  // `f` (made at made_ms) calibrated by the observations so far. Keeps
  // made_ms <= P10 <= P50 <= P90; a P90 of -1 (beyond the horizon) stays.
  StartForecast Calibrate(int64_t made_ms, StartForecast f) const;
  size_t observations() const { return seen_.size(); }

  // Following forecasts to their outcome, as the controller and
  // bench/forecast.sh do. Keep holds `f` (made at made_ms) as its job's
  // first forecast, unless one is held already. ObserveStarts then observes
  // the held forecasts of jobs `snap` shows running (from their run's
  // start) and forgets those it shows neither pending nor running: a job
  // that started and ended between two snapshots, or left the queue
  // otherwise (cancelled, held), is not seen and not used.
  void Keep(int64_t made_ms, const StartForecast& f);
  void ObserveStarts(const Snapshot& snap);

 private:
  struct Seen {
    double lo, mid, hi;  // log-waits of P10, P50, P90 (hi: +inf when beyond the horizon)
    double actual;       // log-wait of the start
  };
  // Recomputes what Calibrate uses from seen_ after a new observation.
  void Refresh() const;

  const CalibrationOptions options_;
  std::deque<Seen> seen_;
  std::map<int64_t, std::pair<int64_t, StartForecast>> kept_;  // job -> (made_ms, its first forecast)
  // What Refresh computed; valid while fresh_.
  mutable bool fresh_ = false;
  mutable double shift_ = 0, widen_ = 0;
};

}  // namespace icos::core

#endif  // ICOS_CORE_FORECAST_CALIBRATION_H_
