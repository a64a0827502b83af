// A runtime estimator that learns from the jobs that finished: gradient-boosted
// trees (XGBoost) on what a cluster knows when a job is submitted, retrained as
// jobs finish. Its estimates drive shortest-job-first ordering and backfill
// where users give no (or useless) time limits, as in Helios' QSSF (Hu et al.,
// SC'21) and the Alibaba PAI study (Weng et al., NSDI'22).
//
// Features of a job, all known at submission: GPU count, hour of day and day of
// week, the queue (virtual cluster), the run-time history of similar jobs that
// finished before it was submitted (same queue and GPU count, same queue, same
// user and GPU count, same user, same name template and GPU count, same name
// template; the template masks digits, "bert-ft-lr3e-5-run2" ->
// "bert-ft-lr#e-#-run#"), and submission bursts (seconds since the previous
// submission and submissions in the last hour of the same queue and GPU count,
// and of the same user and GPU count: sweeps are submitted together). History
// is kept as a count, a mean, an exponentially weighted mean and the last value
// of log run time; a missing history is a missing value, which the trees handle
// natively.
//
// The estimate is the history's (the closest group that has any, then the mean
// of all finished jobs, then `prior_s`), corrected by the trees: they are
// trained on log(1 + run time) minus that history estimate (residual
// boosting). On Philly, trees fitted to the run time itself estimated worse
// than the history alone (docs/results.md); fitted to the residual they keep
// the history's quick adaptation and learn its biases.
//
// Thread-safety: not thread-safe; one owner (the simulator or the controller's
// scheduling loop) calls it. With background_training, fits run on a thread
// the estimator owns and joins; the owner still calls from one thread.
#ifndef ICOS_LEARN_RUNTIME_ESTIMATOR_H_
#define ICOS_LEARN_RUNTIME_ESTIMATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace icos::learn {

// What the cluster knows about a job when it is submitted.
struct JobFacts {
  std::string user;   // may be empty (Philly has none)
  std::string queue;  // virtual cluster / tenant
  std::string name;   // job name as submitted; may be empty
  int32_t gpus = 0;
  double submit_unix_s = -1;  // wall-clock submission time (UTC); < 0 unknown
};

struct EstimatorOptions {
  int32_t min_train = 200;          // finished jobs before the first model
  double retrain_growth = 1.25;     // retrain when the finished count grew by this factor...
  int32_t max_retrain_gap = 4'000;  // ...or by this many jobs, whichever comes first
  int32_t window = 40'000;          // the most recent finished jobs kept for training
  int32_t trees = 60;
  int32_t max_depth = 6;
  double learning_rate = 0.15;
  double prior_s = 3'600;  // estimate when nothing has finished yet
  int32_t error_window = 2'000;
  double burst_gap_s = 60;  // 0: no burst estimates
  double prior_log_sd = 1.5;
  // Estimates are handed out once this many jobs have finished
  // (HandsOutEstimates): with less history an estimate is mostly the prior,
  // and a made-up run time would let backfill delay a reserved job. Burst
  // revisions are handed out always: they rest on real run times. The
  // simulator and the controller both obey it, so that a -learned policy
  // measured in `icos sim` sees in production the estimates it saw there.
  int32_t min_finished_to_estimate = 20;
  // Fit models on a thread of their own: the owner prepares the training set
  // (cheap) and goes on estimating with the model it has, and the new model
  // replaces it at the first call after the fit ends. For the controller,
  // whose scheduling loop must not stop for a fit (half a second at 40,000
  // jobs). Off for the simulator, whose results must not depend on timing.
  bool background_training = false;
};

class RuntimeEstimator {
 public:
  // Fails only on invalid options.
  static absl::StatusOr<std::unique_ptr<RuntimeEstimator>> Create(const EstimatorOptions& options = {});
  virtual ~RuntimeEstimator() = default;

  // Estimated run time in seconds (>= 1) of a job submitted now (`key` must be
  // new and `facts.submit_unix_s` non-decreasing over calls). The features
  // are remembered under `key` so that, when the job finishes, it trains the
  // model with what was known at its submission (no look-ahead).
  virtual double EstimateAtSubmit(int64_t key, const JobFacts& facts) = 0;
  // Job `key` finished after `runtime_s` seconds of work (counted in whole
  // seconds). Adds it to the history and the training set and retrains when
  // due. A key never estimated is featurised now. Errors only from XGBoost (the estimator keeps working on
  // history alone).
  virtual absl::Status ObserveFinish(int64_t key, const JobFacts& facts, double runtime_s) = 0;

  // While paused, ObserveFinish only adds to the history and the training
  // set; ResumeTraining then fits one model if one is due. For feeding a
  // long stored history at once (a controller start): one fit at the end
  // instead of one per growth step. Errors as ObserveFinish.
  virtual void PauseTraining() = 0;
  virtual absl::Status ResumeTraining() = 0;
  // With background_training: waits for a fit in flight and puts its model
  // to use (its error, if it failed). Otherwise OK at once.
  virtual absl::Status AwaitTraining() = 0;

  // Job `key` ended without a run time worth learning from (cancelled,
  // failed, or never estimated): its remembered features and estimate are
  // dropped, and it leaves its burst. A long-running owner (the controller)
  // calls this for every job that does not reach ObserveFinish.
  virtual void Forget(int64_t key) = 0;

  // How far off the estimate now held for open job `key` may be: the root
  // mean square of log(actual / estimate) over the last `error_window`
  // finished jobs whose estimate was of the same kind (model, or burst where a
  // sibling had finished); `prior_log_sd` until 30 have.
  virtual double EstimateLogSd(int64_t key) const = 0;

  // Jobs submitted in one burst (same queue, user, GPU count and name
  // template, each within `burst_gap_s` of the previous) mostly run alike: on Philly 85-89% of
  // consecutive such jobs run within 2x of each other, against under half of
  // the model's estimates. So when a job finishes, the open jobs of its burst
  // are re-estimated at the geometric mean of the burst's finished run times
  // (and a job submitted into a burst with finished members gets that
  // estimate at once). TakeRevisions hands over the new estimates made since
  // its last call.
  struct Revision {
    int64_t key = 0;
    double runtime_s = 0;
  };
  virtual std::vector<Revision> TakeRevisions() = 0;

  // Whether an estimate made now is worth handing out to the scheduler:
  // at least `min_finished_to_estimate` jobs have finished.
  virtual bool HandsOutEstimates() const = 0;

  virtual int32_t models_trained() const = 0;
  virtual double train_wall_s() const = 0;  // real seconds spent training, in all
  // Estimates the model could not make (answered from history instead), and
  // XGBoost's message for the last one. Anything but 0 is a bug to report.
  virtual int64_t failed_predictions() const = 0;
  virtual const std::string& last_prediction_error() const = 0;
};

// "bert-ft-lr3e-5-run2" -> "bert-ft-lr#e-#-run#": runs of digits become '#'.
std::string NameTemplate(const std::string& name);

}  // namespace icos::learn

#endif  // ICOS_LEARN_RUNTIME_ESTIMATOR_H_
