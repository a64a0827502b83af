// Controller: start-time forecasts of pending jobs (core/forecast.h), made
// from a scheduling pass's own snapshot on a thread of their own, so that a
// forecast never delays a pass and always starts from what the scheduler saw.
#include <algorithm>

#include "common/log.h"
#include "controller/controller.h"
#include "learn/seeded_noise.h"

namespace icos::controller {

void Controller::OfferForecastInput(const core::Snapshot& snap) {
  if (options_.forecast_interval_ms <= 0) return;
  std::lock_guard<std::mutex> lock(forecast_mu_);
  if (forecast_input_ms_ >= 0) {
    const int64_t since = snap.now_ms - forecast_input_ms_;
    // Due on the cadence, or sooner (but not more than every 2 s) when a job
    // waits that has no forecast yet: a user asks right after submitting.
    bool due = since >= options_.forecast_interval_ms;
    if (!due && since >= std::min<int64_t>(2'000, options_.forecast_interval_ms)) {
      for (const core::Job& j : snap.pending) {
        if (!forecasts_.count(j.id.value())) {
          due = true;
          break;
        }
      }
    }
    if (!due) return;
  }
  forecast_input_ = std::make_shared<const core::Snapshot>(snap);
  forecast_input_ms_ = snap.now_ms;
  forecast_cv_.notify_all();
}

absl::StatusOr<bool> Controller::RefreshForecasts() {
  std::shared_ptr<const core::Snapshot> input;
  {
    std::lock_guard<std::mutex> lock(forecast_mu_);
    input = std::move(forecast_input_);
  }
  if (input == nullptr) return false;
  // Within the budget, in passes the size of the last one (a forward pass
  // sees no more jobs than it did).
  core::ForecastOptions o = options_.forecast;
  const double pass_ms = std::max(0.05, last_decide_s_.load() * 1000);
  const double affordable = static_cast<double>(options_.forecast_budget_ms) / pass_ms / std::max(1, o.samples);
  o.max_passes = static_cast<int32_t>(std::clamp(affordable, 1.0, static_cast<double>(o.max_passes)));
  // The scheduling pass is pure and const: it may run beside the loop's.
  learn::SeededNoise noise;  // one seed: the same snapshot, the same forecast
  auto made = core::ForecastStarts(scheduler_, *input, {}, o, noise);
  if (!made.ok()) return made.status();
  Calibrate(*input, *made);
  std::map<int64_t, core::StartForecast> by_job;
  for (const core::StartForecast& f : *made) by_job[f.job.value()] = f;
  std::lock_guard<std::mutex> lock(forecast_mu_);
  forecasts_ = std::move(by_job);
  forecasts_made_ms_ = input->now_ms;
  return true;
}

void Controller::Calibrate(const core::Snapshot& input, std::vector<core::StartForecast>& made) {
  // What became of the first forecasts of jobs that have started since is
  // what calibrates (core/forecast_calibration.h).
  std::lock_guard<std::mutex> lock(calibration_mu_);
  calibrator_.ObserveStarts(input);
  for (core::StartForecast& f : made) {
    calibrator_.Keep(input.now_ms, f);
    f = calibrator_.Calibrate(input.now_ms, f);
  }
}

void Controller::ForecastLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(forecast_mu_);
      forecast_cv_.wait(lock, [this] { return stop_ || forecast_input_ != nullptr; });
      if (stop_) return;
    }
    // One that cannot be made leaves the last standing; the next due pass
    // offers a new snapshot.
    if (absl::StatusOr<bool> done = RefreshForecasts(); !done.ok()) log::Failure("start-time forecast", done.status());
  }
}

std::map<int64_t, core::StartForecast> Controller::Forecasts(const std::vector<int64_t>& ids) const {
  std::map<int64_t, core::StartForecast> out;
  std::lock_guard<std::mutex> lock(forecast_mu_);
  for (int64_t id : ids) {
    if (auto it = forecasts_.find(id); it != forecasts_.end()) out.emplace(id, it->second);
  }
  return out;
}

int64_t Controller::ForecastsMadeMs() const {
  std::lock_guard<std::mutex> lock(forecast_mu_);
  return forecasts_made_ms_;
}

}  // namespace icos::controller
