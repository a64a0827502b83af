#include "learn/runtime_estimator.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <deque>
#include <future>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace icos::learn {
namespace {

constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();

// Run-time history of one group of similar jobs, in log(1 + seconds).
struct History {
  int64_t count = 0;
  double sum = 0;
  double ewma = 0;
  double last = 0;
  void Add(double y) {
    ewma = count == 0 ? y : 0.7 * ewma + 0.3 * y;  // recent jobs weigh more
    ++count;
    sum += y;
    last = y;
  }
  double mean() const { return sum / static_cast<double>(count); }
};

// Feature layout; kNumFeatures columns per row.
enum Feature : int {
  kGpus,
  kHour,
  kWeekday,
  kQueueCode,
  // queue + gpus: count, mean, ewma, last
  kQgCount,
  kQgMean,
  kQgEwma,
  kQgLast,
  kQCount,
  kQMean,
  kQEwma,
  kUgCount,
  kUgMean,
  kUgEwma,
  kUgLast,
  kUCount,
  kUMean,
  kUEwma,
  kNameCount,
  kNameMean,
  kNameEwma,
  kNameLast,
  // name template + gpus: count, mean, ewma, last
  kNgCount,
  kNgMean,
  kNgEwma,
  kNgLast,
  kGlobalEwma,
  // Submission bursts (sweeps are submitted together and tend to run alike):
  // log seconds since the previous submission and submissions in the last
  // hour, of the same queue + GPUs and of the same user + GPUs.
  kQgSinceSubmit,
  kQgSubmitsHour,
  kUgSinceSubmit,
  kUgSubmitsHour,
  kNumFeatures
};
using Row = std::array<float, kNumFeatures>;

std::string XgbError(const char* what) { return absl::StrCat("xgboost ", what, ": ", XGBGetLastError()); }

class XgbRuntimeEstimator final : public RuntimeEstimator {
 public:
  explicit XgbRuntimeEstimator(const EstimatorOptions& o) : options_(o) {}
  ~XgbRuntimeEstimator() override {
    AdoptFinishedFit(/*wait=*/true);  // the fit's thread must not outlive us
    if (booster_ != nullptr) XGBoosterFree(booster_);
  }

  double EstimateAtSubmit(int64_t key, const JobFacts& facts) override {
    AdoptFinishedFit(/*wait=*/false);  // a failed fit is reported by ObserveFinish or AwaitTraining
    const Row x = Featurise(facts, /*submitting=*/true);
    pending_[key] = x;
    // The trees learn a correction to the history estimate (residual boosting).
    double y = FromHistory(x);
    if (booster_ != nullptr) {
      if (const std::optional<double> correction = Predict(x)) y += *correction;
    }
    Given& given = estimated_[key];
    given.log_runtime = std::max(0.0, y);
    given.burst = JoinBurst(key, facts);
    if (auto b = bursts_.find(given.burst); b != bursts_.end() && b->second.finished > 0) {
      given.log_runtime = b->second.sum_log / b->second.finished;
      given.from_burst = true;
    }
    return Seconds(given.log_runtime);
  }

  double EstimateLogSd(int64_t key) const override {
    auto it = estimated_.find(key);
    const ErrorLog& log = it != estimated_.end() && it->second.from_burst ? burst_errors_ : model_errors_;
    return log.Sd(options_.prior_log_sd);
  }

  std::vector<Revision> TakeRevisions() override { return std::exchange(revisions_, {}); }

  absl::Status ObserveFinish(int64_t key, const JobFacts& facts, double runtime_s) override {
    AdoptFinishedFit(/*wait=*/false);
    Row x;
    if (auto it = pending_.find(key); it != pending_.end()) {
      x = it->second;
      pending_.erase(it);
    } else {
      x = Featurise(facts, /*submitting=*/false);  // never estimated: no burst to note
    }
    // Whole seconds: a run time measured from a cluster's clocks (the live
    // cluster sums its runs' spans) then teaches what the same run time given
    // exactly (the simulator's) does, and no estimate turns on a millisecond.
    const double y = std::log1p(std::max(0.0, std::round(runtime_s)));
    if (auto it = estimated_.find(key); it != estimated_.end()) {
      const Given given = it->second;
      estimated_.erase(it);
      (given.from_burst ? burst_errors_ : model_errors_).Add(y - given.log_runtime, options_.error_window);
      FinishInBurst(key, given.burst, y);
    }
    examples_.push_back({x, static_cast<float>(y)});
    if (static_cast<int32_t>(examples_.size()) > options_.window) examples_.pop_front();
    ++finished_;
    // History after featurising: a job's own run time must not leak into its features.
    Group(absl::StrCat("qg|", facts.queue, "|", facts.gpus)).Add(y);
    Group(absl::StrCat("q|", facts.queue)).Add(y);
    if (!facts.user.empty()) {
      Group(absl::StrCat("ug|", facts.user, "|", facts.gpus)).Add(y);
      Group(absl::StrCat("u|", facts.user)).Add(y);
    }
    if (!facts.name.empty()) {
      Group(absl::StrCat("n|", NameTemplate(facts.name))).Add(y);
      Group(absl::StrCat("ng|", NameTemplate(facts.name), "|", facts.gpus)).Add(y);
    }
    global_.Add(y);
    absl::Status trained = paused_ ? absl::OkStatus() : TrainIfDue();
    absl::Status fitted = std::exchange(fit_error_, absl::OkStatus());
    return fitted.ok() ? trained : fitted;
  }

  void PauseTraining() override { paused_ = true; }
  absl::Status ResumeTraining() override {
    paused_ = false;
    return TrainIfDue();
  }
  absl::Status AwaitTraining() override {
    AdoptFinishedFit(/*wait=*/true);
    return std::exchange(fit_error_, absl::OkStatus());
  }

 private:
  absl::Status TrainIfDue() {
    if (finished_ >= next_train_) {
      next_train_ = std::max<int64_t>(
          finished_ + 1, std::min<int64_t>(static_cast<int64_t>(std::ceil(finished_ * options_.retrain_growth)),
                                           finished_ + options_.max_retrain_gap));
      return Train();
    }
    return absl::OkStatus();
  }

 public:
  void Forget(int64_t key) override {
    pending_.erase(key);
    auto it = estimated_.find(key);
    if (it == estimated_.end()) return;
    const int64_t burst = it->second.burst;
    estimated_.erase(it);
    if (auto b = bursts_.find(burst); b != bursts_.end()) {
      std::vector<int64_t>& open = b->second.open;
      open.erase(std::remove(open.begin(), open.end(), key), open.end());
      if (open.empty() && !b->second.current) bursts_.erase(b);
    }
  }

  bool HandsOutEstimates() const override { return finished_ >= options_.min_finished_to_estimate; }
  int32_t models_trained() const override { return models_trained_; }
  int64_t failed_predictions() const override { return failed_predictions_; }
  const std::string& last_prediction_error() const override { return last_prediction_error_; }
  double train_wall_s() const override { return train_wall_s_; }

  void Init() { next_train_ = std::max(1, options_.min_train); }

 private:
  struct Example {
    Row x;
    float y;
  };

  // log1p(run time) errors of estimates, the most recent ones.
  struct ErrorLog {
    std::deque<double> errors;
    double sq_sum = 0;
    void Add(double e, int32_t window) {
      errors.push_back(e);
      sq_sum += e * e;
      if (static_cast<int32_t>(errors.size()) > window) {
        sq_sum -= errors.front() * errors.front();
        errors.pop_front();
      }
    }
    double Sd(double prior) const {
      return errors.size() < 30 ? prior : std::sqrt(std::max(0.0, sq_sum) / static_cast<double>(errors.size()));
    }
  };
  // What an open job was told.
  struct Given {
    double log_runtime = 0;  // log1p of the estimate now held
    bool from_burst = false;
    int64_t burst = -1;  // its burst; -1: none
  };
  struct SubmitBurst {
    std::vector<int64_t> open;  // submitted, not finished
    double sum_log = 0;         // over finished members, log1p(run time)
    int32_t finished = 0;
    bool current = true;  // its group's latest: later submissions may join
  };
  struct BurstCursor {
    double last_submit_s = 0;
    int64_t burst = -1;
  };

  static double Seconds(double log_runtime) { return std::max(1.0, std::expm1(log_runtime)); }

  // Puts the job submitted now into its group's current burst or a new one;
  // returns the burst's id, -1 for none.
  int64_t JoinBurst(int64_t key, const JobFacts& f) {
    if (options_.burst_gap_s <= 0 || f.submit_unix_s < 0) return -1;
    // The name template too where jobs have names: a user's sweep and the
    // evaluation job submitted beside it are different bursts.
    BurstCursor& c = burst_cursors_[absl::StrCat(f.queue, "|", f.user, "|", f.gpus, "|", NameTemplate(f.name))];
    if (c.burst < 0 || f.submit_unix_s - c.last_submit_s > options_.burst_gap_s) {
      if (auto old = bursts_.find(c.burst); old != bursts_.end()) {
        old->second.current = false;
        if (old->second.open.empty()) bursts_.erase(old);
      }
      c.burst = next_burst_++;
    }
    c.last_submit_s = f.submit_unix_s;
    bursts_[c.burst].open.push_back(key);
    return c.burst;
  }

  // Job `key` of `burst` ran log1p(run time) `y`: the burst's open jobs are
  // re-estimated.
  void FinishInBurst(int64_t key, int64_t burst, double y) {
    auto it = bursts_.find(burst);
    if (it == bursts_.end()) return;
    SubmitBurst& b = it->second;
    b.open.erase(std::remove(b.open.begin(), b.open.end(), key), b.open.end());
    b.sum_log += y;
    ++b.finished;
    const double estimate = b.sum_log / b.finished;
    for (int64_t other : b.open) {
      Given& given = estimated_[other];
      given.log_runtime = estimate;
      given.from_burst = true;
      revisions_.push_back({other, Seconds(estimate)});
    }
    if (b.open.empty() && !b.current) bursts_.erase(it);
  }

  History& Group(const std::string& k) { return groups_[k]; }
  const History* Find(const std::string& k) const {
    auto it = groups_.find(k);
    return it == groups_.end() ? nullptr : &it->second;
  }

  // Notes a submission of group `k` at `t` and writes the burst features.
  void Burst(const std::string& k, double t, Row& x, int since, int in_hour) {
    std::deque<double>& times = submits_[k];
    if (!times.empty()) x[since] = static_cast<float>(std::log1p(std::max(0.0, t - times.back())));
    while (!times.empty() && times.front() < t - 3600) times.pop_front();
    x[in_hour] = static_cast<float>(std::log1p(static_cast<double>(times.size())));
    times.push_back(t);
  }

  Row Featurise(const JobFacts& f, bool submitting) {
    Row x;
    x.fill(kMissing);
    if (submitting && f.submit_unix_s >= 0) {
      Burst(absl::StrCat("qg|", f.queue, "|", f.gpus), f.submit_unix_s, x, kQgSinceSubmit, kQgSubmitsHour);
      if (!f.user.empty()) {
        Burst(absl::StrCat("ug|", f.user, "|", f.gpus), f.submit_unix_s, x, kUgSinceSubmit, kUgSubmitsHour);
      }
    }
    x[kGpus] = static_cast<float>(f.gpus);
    if (f.submit_unix_s >= 0) {
      const int64_t t = static_cast<int64_t>(f.submit_unix_s);
      x[kHour] = static_cast<float>((t / 3600) % 24);
      x[kWeekday] = static_cast<float>((t / 86400 + 4) % 7);  // 1970-01-01 was a Thursday
    }
    auto [code, inserted] = queue_codes_.try_emplace(f.queue, static_cast<int32_t>(queue_codes_.size()));
    x[kQueueCode] = static_cast<float>(code->second);
    auto put = [&x](const History* h, int first, bool with_last) {
      if (h == nullptr || h->count == 0) return;
      x[first] = static_cast<float>(std::log1p(static_cast<double>(h->count)));
      x[first + 1] = static_cast<float>(h->mean());
      x[first + 2] = static_cast<float>(h->ewma);
      if (with_last) x[first + 3] = static_cast<float>(h->last);
    };
    put(Find(absl::StrCat("qg|", f.queue, "|", f.gpus)), kQgCount, true);
    put(Find(absl::StrCat("q|", f.queue)), kQCount, false);
    if (!f.user.empty()) {
      put(Find(absl::StrCat("ug|", f.user, "|", f.gpus)), kUgCount, true);
      put(Find(absl::StrCat("u|", f.user)), kUCount, false);
    }
    if (!f.name.empty()) {
      put(Find(absl::StrCat("n|", NameTemplate(f.name))), kNameCount, true);
      put(Find(absl::StrCat("ng|", NameTemplate(f.name), "|", f.gpus)), kNgCount, true);
    }
    if (global_.count > 0) x[kGlobalEwma] = static_cast<float>(global_.ewma);
    return x;
  }

  // The closest group with a history; then all jobs; then the prior.
  double FromHistory(const Row& x) const {
    for (int f : {kNgEwma, kNameEwma, kUgEwma, kQgEwma, kUEwma, kQEwma}) {
      if (!std::isnan(x[f])) return x[f];
    }
    if (global_.count > 0) return global_.mean();
    return std::log1p(options_.prior_s);
  }

  std::optional<double> Predict(const Row& x) {
    // In-place prediction reads the row where it is (an array-interface
    // description of it), with no DMatrix built per estimate.
    const std::string array = absl::StrCat(R"({"data":[)", reinterpret_cast<uintptr_t>(x.data()),
                                           R"(,true],"shape":[1,)", kNumFeatures, R"(],"typestr":"<f4","version":3})");
    // XGBoost 1.7 requires "cache_id" (0) here; without it every prediction
    // fails and estimates silently came from history alone.
    static constexpr char kConfig[] =
        R"({"type":0,"training":false,"iteration_begin":0,"iteration_end":0,"strict_shape":false,"missing":NaN,"cache_id":0})";
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* out = nullptr;
    if (XGBoosterPredictFromDense(booster_, array.c_str(), kConfig, nullptr, &shape, &dim, &out) != 0 ||
        out == nullptr) {
      ++failed_predictions_;
      last_prediction_error_ = XGBGetLastError();
      return std::nullopt;
    }
    return out[0];
  }

  // A fitted model (or why the fit failed) and the real seconds it took.
  struct Fit {
    BoosterHandle booster = nullptr;
    absl::Status status;
    double wall_s = 0;
  };

  // The training set (labels: residuals over the history estimate as it is
  // now), then the fit: here, or on its own thread with background_training.
  absl::Status Train() {
    // One fit at a time: a fit due while one is in flight is skipped (the
    // next is due after the next growth step, as scheduled).
    if (fit_.valid()) return absl::OkStatus();
    std::vector<float> data;
    std::vector<float> labels;
    data.reserve(examples_.size() * kNumFeatures);
    labels.reserve(examples_.size());
    for (const Example& e : examples_) {
      data.insert(data.end(), e.x.begin(), e.x.end());
      labels.push_back(e.y - static_cast<float>(FromHistory(e.x)));
    }
    if (options_.background_training) {
      fit_ = std::async(std::launch::async,
                        [this, data = std::move(data), labels = std::move(labels)] { return FitModel(data, labels); });
      return absl::OkStatus();
    }
    return UseFit(FitModel(data, labels));
  }

  // Takes a finished background fit into use (with `wait`, waits for one in
  // flight); a failed one is kept in fit_error_ until reported.
  void AdoptFinishedFit(bool wait) {
    if (!fit_.valid()) return;
    if (!wait && fit_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    if (absl::Status s = UseFit(fit_.get()); !s.ok()) fit_error_ = s;
  }

  absl::Status UseFit(Fit fit) {
    if (!fit.status.ok()) return fit.status;  // the previous model (or history) stays in use
    if (booster_ != nullptr) XGBoosterFree(booster_);
    booster_ = fit.booster;
    ++models_trained_;
    train_wall_s_ += fit.wall_s;
    return absl::OkStatus();
  }

  // Touches nothing of the estimator but its options: safe on another thread.
  Fit FitModel(const std::vector<float>& data, const std::vector<float>& labels) const {
    const auto start = std::chrono::steady_clock::now();
    Fit fit;
    DMatrixHandle train = nullptr;
    if (XGDMatrixCreateFromMat(data.data(), labels.size(), kNumFeatures, kMissing, &train) != 0) {
      fit.status = absl::InternalError(XgbError("cannot create the training matrix"));
      return fit;
    }
    BoosterHandle b = nullptr;
    if (XGDMatrixSetFloatInfo(train, "label", labels.data(), labels.size()) != 0 ||
        XGBoosterCreate(&train, 1, &b) != 0) {
      fit.status = absl::InternalError(XgbError("cannot set up training"));
    }
    const std::string depth = absl::StrCat(options_.max_depth);
    const std::string eta = absl::StrCat(options_.learning_rate);
    const std::pair<const char*, const char*> params[] = {{"objective", "reg:squarederror"},
                                                          {"tree_method", "hist"},
                                                          {"max_depth", depth.c_str()},
                                                          {"eta", eta.c_str()},
                                                          {"nthread", "1"},
                                                          {"seed", "0"},
                                                          {"verbosity", "0"},
                                                          {"base_score", "0"},
                                                          {"min_child_weight", "3"}};
    for (const auto& [k, v] : params) {
      if (fit.status.ok() && XGBoosterSetParam(b, k, v) != 0) {
        fit.status = absl::InternalError(XgbError("bad parameter"));
      }
    }
    for (int i = 0; fit.status.ok() && i < options_.trees; ++i) {
      if (XGBoosterUpdateOneIter(b, i, train) != 0) fit.status = absl::InternalError(XgbError("training failed"));
    }
    XGDMatrixFree(train);
    if (!fit.status.ok()) {
      if (b != nullptr) XGBoosterFree(b);
      return fit;
    }
    fit.booster = b;
    fit.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return fit;
  }

  EstimatorOptions options_;
  absl::flat_hash_map<int64_t, Row> pending_;
  absl::flat_hash_map<int64_t, Given> estimated_;  // open jobs' current estimates
  ErrorLog model_errors_, burst_errors_;
  absl::flat_hash_map<std::string, BurstCursor> burst_cursors_;
  absl::flat_hash_map<int64_t, SubmitBurst> bursts_;
  int64_t next_burst_ = 0;
  std::vector<Revision> revisions_;
  absl::flat_hash_map<std::string, History> groups_;
  absl::flat_hash_map<std::string, int32_t> queue_codes_;
  absl::flat_hash_map<std::string, std::deque<double>> submits_;  // submit times in the last hour
  History global_;
  std::deque<Example> examples_;
  int64_t finished_ = 0;
  int64_t next_train_ = 0;
  bool paused_ = false;
  BoosterHandle booster_ = nullptr;
  std::future<Fit> fit_;    // a background fit in flight (background_training)
  absl::Status fit_error_;  // a background fit that failed, until reported
  int32_t models_trained_ = 0;
  int64_t failed_predictions_ = 0;
  std::string last_prediction_error_;
  double train_wall_s_ = 0;
};

}  // namespace

std::string NameTemplate(const std::string& name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    const bool digit = c >= '0' && c <= '9';
    if (!digit) {
      out.push_back(c);
    } else if (out.empty() || out.back() != '#') {
      out.push_back('#');
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RuntimeEstimator>> RuntimeEstimator::Create(const EstimatorOptions& options) {
  if (options.trees < 1 || options.max_depth < 1 || options.window < 1 || options.retrain_growth < 1 ||
      options.learning_rate <= 0 || options.error_window < 1 || !(options.prior_log_sd > 0) ||
      options.min_finished_to_estimate < 0) {
    return absl::InvalidArgumentError(
        "estimator options: trees, max_depth, window and error_window must be >= 1, "
        "retrain_growth >= 1, learning_rate > 0, prior_log_sd > 0 and min_finished_to_estimate >= 0");
  }
  auto e = std::make_unique<XgbRuntimeEstimator>(options);
  e->Init();
  return std::unique_ptr<RuntimeEstimator>(std::move(e));
}

}  // namespace icos::learn
