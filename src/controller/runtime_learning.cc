#include "controller/runtime_learning.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"

namespace icos::controller {

int32_t SpecDevices(const api::JobSpec& spec) {
  int32_t n = 0;
  for (const api::TaskSpec& t : spec.tasks) {
    const bool shares_one = t.devices == 0 && (t.device_percent > 0 || t.device_memory_mib > 0);
    n += t.replicas * (shares_one ? 1 : t.devices);
  }
  return n;
}

absl::StatusOr<int32_t> StoredSpecDevices(const std::string& spec_json) {
  const nlohmann::json spec = nlohmann::json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  const auto tasks = spec.is_object() ? spec.find("tasks") : spec.end();
  if (!spec.is_object() || tasks == spec.end() || !tasks->is_array()) {
    return absl::InvalidArgumentError("stored spec is not a JSON object with a tasks array");
  }
  int64_t n = 0;
  try {
    for (const nlohmann::json& t : *tasks) {
      const nlohmann::json r = t.is_object() ? t.value("resources", nlohmann::json::object()) : nlohmann::json();
      if (!r.is_object()) return absl::InvalidArgumentError("stored spec has a task without resources");
      const int64_t replicas = t.value("replicas", int64_t{1});
      const int64_t devices = r.value("devices", int64_t{0});
      const bool shares_one = devices == 0 && (r.contains("device_share") || r.contains("device_memory"));
      n += replicas * (shares_one ? 1 : devices);
    }
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type
    return absl::InvalidArgumentError(absl::StrCat("stored spec: ", e.what()));
  }
  if (n < 0 || n > 1'000'000) return absl::InvalidArgumentError(absl::StrCat("stored spec holds ", n, " devices"));
  return static_cast<int32_t>(n);
}

learn::JobFacts FactsOf(const store::JobRecord& job, int32_t devices) {
  return learn::JobFacts{.user = job.user,
                         .queue = job.queue,
                         .name = job.name,
                         .gpus = devices,
                         .submit_unix_s = static_cast<double>(job.submit_ms) / 1000.0};
}

double RunSeconds(const store::JobRecord& job, const std::vector<store::TaskRecord>& tasks, int64_t restore_cost_ms) {
  if (job.attempt == 0 || tasks.empty()) {
    return job.start_ms > 0 && job.end_ms >= job.start_ms ? static_cast<double>(job.end_ms - job.start_ms) / 1000.0
                                                          : 0.0;
  }
  std::map<int32_t, std::pair<int64_t, int64_t>> span;  // attempt -> first start, last end
  for (const store::TaskRecord& t : tasks) {
    if (t.start_ms <= 0 || t.end_ms < t.start_ms) continue;  // never ran
    auto [it, fresh] = span.try_emplace(t.attempt, t.start_ms, t.end_ms);
    if (!fresh) {
      it->second.first = std::min(it->second.first, t.start_ms);
      it->second.second = std::max(it->second.second, t.end_ms);
    }
  }
  int64_t ms = 0;
  bool first = true;
  for (const auto& [attempt, s] : span) {
    ms += std::max<int64_t>(0, s.second - s.first - (first ? 0 : restore_cost_ms));
    first = false;
  }
  return static_cast<double>(ms) / 1000.0;
}

absl::StatusOr<std::unique_ptr<RuntimeLearning>> RuntimeLearning::Create(const RuntimeLearningOptions& options) {
  auto estimator = learn::RuntimeEstimator::Create(options.estimator);
  if (!estimator.ok()) return estimator.status();
  std::unique_ptr<RuntimeLearning> r(new RuntimeLearning(options));
  r->estimator_ = *std::move(estimator);
  return r;
}

void RuntimeLearning::Submitted(int64_t id, const learn::JobFacts& facts) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back({.id = id, .facts = facts});
}

void RuntimeLearning::FromHistory(int64_t id, const learn::JobFacts& facts, double runtime_s) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back({.id = id, .facts = facts, .ended = true, .history = true, .runtime_s = runtime_s});
}

void RuntimeLearning::Ended(int64_t id, const learn::JobFacts& facts, double runtime_s, int64_t end_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back({.id = id, .facts = facts, .ended = true, .runtime_s = runtime_s, .end_ms = end_ms});
}

std::vector<RuntimeLearning::Estimate> RuntimeLearning::Apply() {
  std::vector<Pending> events;
  {
    std::lock_guard<std::mutex> lock(mu_);
    events.swap(queue_);
  }
  // Ends of one moment in id order: the order nodes reported them in is
  // chance, and the estimator's bursts and training window depend on order.
  for (size_t i = 0; i < events.size();) {
    size_t j = i;
    auto same_moment = [&](const Pending& e) { return e.ended && !e.history && e.end_ms == events[i].end_ms; };
    while (j < events.size() && same_moment(events[j])) ++j;
    if (j - i > 1) {
      std::sort(events.begin() + static_cast<std::ptrdiff_t>(i), events.begin() + static_cast<std::ptrdiff_t>(j),
                [](const Pending& a, const Pending& b) { return a.id < b.id; });
    }
    i = std::max(j, i + 1);
  }
  std::map<int64_t, double> made;  // by job id; a later revision replaces an estimate
  std::string error;
  bool paused = false;
  auto resume = [&] {
    if (!paused) return;
    paused = false;
    if (absl::Status st = estimator_->ResumeTraining(); !st.ok()) error = std::string(st.message());
  };
  for (const Pending& e : events) {
    if (e.history && !paused) {
      estimator_->PauseTraining();
      paused = true;
    } else if (!e.history) {
      resume();
    }
    if (!e.ended) {
      const double s = estimator_->EstimateAtSubmit(e.id, e.facts);
      if (estimator_->HandsOutEstimates()) made[e.id] = s;
      continue;
    }
    made.erase(e.id);
    if (e.runtime_s < 0) {
      estimator_->Forget(e.id);
      continue;
    }
    if (absl::Status st = estimator_->ObserveFinish(e.id, e.facts, e.runtime_s); !st.ok()) {
      error = std::string(st.message());
    }
    ++finished_;
    for (const learn::RuntimeEstimator::Revision& r : estimator_->TakeRevisions()) made[r.key] = r.runtime_s;
  }
  resume();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.finished = finished_;
    stats_.models_trained = estimator_->models_trained();
    stats_.failed_predictions = estimator_->failed_predictions();
    if (!error.empty()) stats_.last_error = error;
  }
  std::vector<Estimate> out;
  out.reserve(made.size());
  for (const auto& [id, s] : made) out.push_back({id, s, estimator_->EstimateLogSd(id)});
  return out;
}

void RuntimeLearning::AwaitTraining() {
  const absl::Status st = estimator_->AwaitTraining();
  std::lock_guard<std::mutex> lock(mu_);
  stats_.models_trained = estimator_->models_trained();
  if (!st.ok()) stats_.last_error = std::string(st.message());
}

RuntimeLearning::Stats RuntimeLearning::GetStats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace icos::controller
