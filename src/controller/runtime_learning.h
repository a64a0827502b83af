// Learned run-time estimates for the live cluster: the controller's side of
// learn::RuntimeEstimator, the estimator the simulator measures on Philly
// (docs/results.md). A job submitted without `runtime_estimate` gets one
// learned from the jobs that succeeded before it (same name template, user,
// queue, GPU count, submission burst); icos::core then orders (sjf, srtf,
// gittins) and backfills with it as with a user's estimate.
//
// Why a queue in between: the controller reports submissions and ends under
// its state lock, where nothing slow may run, while the estimator may retrain
// its trees when a job ends (a fraction of a second on 40,000 jobs). So
// Submitted / Ended only queue, in the order the controller saw them, and the
// scheduling pass calls Apply outside the lock: the estimator is fed in that
// order from one thread, as it requires.
//
// Thread-safety: Submitted, Ended and Stats are thread-safe; Apply is called
// from one thread at a time (the scheduling pass).
#ifndef ICOS_CONTROLLER_RUNTIME_LEARNING_H_
#define ICOS_CONTROLLER_RUNTIME_LEARNING_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/job_spec.h"
#include "learn/runtime_estimator.h"
#include "store/records.h"

namespace icos::controller {

struct RuntimeLearningOptions {
  bool enabled = true;
  // estimator.min_finished_to_estimate: learned estimates are handed out once
  // that many jobs have succeeded (stored history included).
  // background_training on: a fit (half a second at 40,000 jobs) must not
  // hold up the scheduling pass; the new model is used once it is ready.
  learn::EstimatorOptions estimator = {.background_training = true};
};

// The devices a job holds, as the estimator counts them: whole devices, plus
// one per fractional slice.
int32_t SpecDevices(const api::JobSpec& spec);
// The same from a stored spec (the canonical JSON api::JobSpecToJson writes),
// read without the full parser: a start reads tens of thousands of them, and
// the YAML parser takes most of a second per ten thousand.
absl::StatusOr<int32_t> StoredSpecDevices(const std::string& spec_json);

// What the estimator knows of a job at submission.
learn::JobFacts FactsOf(const store::JobRecord& job, int32_t devices);

// The seconds a job that ended ran: job start to end for a first attempt;
// with restarts (preemption, gang restart) the sum of each attempt's span,
// first task start to last task end, so time spent waiting between attempts
// does not count. With `restore_cost_ms`, each attempt after the first counts
// less the restore it began with: the job's work, as the scheduler's
// estimates count it (core/estimates.h), at the reference speed.
double RunSeconds(const store::JobRecord& job, const std::vector<store::TaskRecord>& tasks,
                  int64_t restore_cost_ms = 0);

class RuntimeLearning {
 public:
  static absl::StatusOr<std::unique_ptr<RuntimeLearning>> Create(const RuntimeLearningOptions& options);

  // Job `id` was submitted (or is open at a controller start, in id order).
  void Submitted(int64_t id, const learn::JobFacts& facts);
  // Job `id` ended at `end_ms`. `runtime_s` >= 0 for a success (it is
  // learned from); anything else (failed, cancelled) is forgotten. Jobs that
  // ended at the same moment are learned from in id order, whatever order
  // their nodes reported them in (as the simulator does).
  void Ended(int64_t id, const learn::JobFacts& facts, double runtime_s, int64_t end_ms);
  // Jobs that succeeded before this controller started, oldest end first:
  // learned from as Ended, with one model fitted after the last of them.
  void FromHistory(int64_t id, const learn::JobFacts& facts, double runtime_s);

  struct Estimate {
    int64_t id = 0;
    double runtime_s = 0;
    double log_sd = 0;  // how far off it may be (log scale), for gittins
  };
  // Feeds the queued events to the estimator and returns the estimates made
  // or revised meanwhile, for jobs still open. An XGBoost error does not stop
  // it (the estimator goes on with history alone); Stats keeps the last one.
  std::vector<Estimate> Apply();

  // Waits for a model fit in flight and puts it to use (tests; a fit
  // otherwise lands at the first Apply after it ends). Call from Apply's thread.
  void AwaitTraining();

  // For /metrics.
  struct Stats {
    int64_t finished = 0;  // successes learned from since this controller started, stored history included
    int32_t models_trained = 0;
    int64_t failed_predictions = 0;
    std::string last_error;  // the estimator's last training error; empty: none
  };
  Stats GetStats() const;

 private:
  explicit RuntimeLearning(const RuntimeLearningOptions& options) : options_(options) {}

  struct Pending {
    int64_t id = 0;
    learn::JobFacts facts;
    bool ended = false;
    bool history = false;  // FromHistory
    double runtime_s = -1;
    int64_t end_ms = 0;
  };

  const RuntimeLearningOptions options_;
  mutable std::mutex mu_;
  std::vector<Pending> queue_;  // guarded by mu_
  Stats stats_;                 // guarded by mu_

  // Only the Apply thread touches these.
  std::unique_ptr<learn::RuntimeEstimator> estimator_;
  int64_t finished_ = 0;  // for Stats
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_RUNTIME_LEARNING_H_
