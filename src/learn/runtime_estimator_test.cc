#include "learn/runtime_estimator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace icos::learn {
namespace {

TEST(NameTemplate, MasksDigitRuns) {
  EXPECT_EQ(NameTemplate("bert-ft-lr3e-5-run2"), "bert-ft-lr#e-#-run#");
  EXPECT_EQ(NameTemplate("job12345"), "job#");
  EXPECT_EQ(NameTemplate(""), "");
}

TEST(RuntimeEstimator, RejectsNonsenseOptions) {
  EstimatorOptions o;
  o.trees = 0;
  EXPECT_FALSE(RuntimeEstimator::Create(o).ok());
  o = {};
  o.retrain_growth = 0.5;
  EXPECT_FALSE(RuntimeEstimator::Create(o).ok());
  o = {};
  o.error_window = 0;
  EXPECT_FALSE(RuntimeEstimator::Create(o).ok());
  o = {};
  o.prior_log_sd = 0;
  EXPECT_FALSE(RuntimeEstimator::Create(o).ok());
}

// A sweep: five jobs of one user, queue and GPU count within seconds. When the
// first ends after 30 s, the four still open are re-estimated at 30 s; a job
// of the same group submitted later than the gap is another burst and keeps
// its estimate.
TEST(RuntimeEstimator, ABurstIsReestimatedWhenOneOfItEnds) {
  EstimatorOptions o;
  o.prior_s = 3'600;
  o.min_train = 1'000;  // no model: the history and bursts only
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  auto facts = [](double t) { return JobFacts{.user = "u", .queue = "vc", .gpus = 8, .submit_unix_s = t}; };
  for (int k = 0; k < 5; ++k) EXPECT_NEAR((*e)->EstimateAtSubmit(k, facts(1'000 + 10 * k)), 3'600, 1);
  EXPECT_TRUE((*e)->TakeRevisions().empty());
  ASSERT_TRUE((*e)->ObserveFinish(0, facts(1'000), 30).ok());
  std::vector<RuntimeEstimator::Revision> revised = (*e)->TakeRevisions();
  ASSERT_EQ(revised.size(), 4u);
  for (size_t k = 0; k < revised.size(); ++k) {
    EXPECT_EQ(revised[k].key, static_cast<int64_t>(k + 1));
    EXPECT_NEAR(revised[k].runtime_s, 30, 0.5);
  }
  EXPECT_TRUE((*e)->TakeRevisions().empty());  // handed over once
  // The second ends after 120 s: the rest get the geometric mean, about 60 s.
  ASSERT_TRUE((*e)->ObserveFinish(1, facts(1'010), 120).ok());
  revised = (*e)->TakeRevisions();
  ASSERT_EQ(revised.size(), 3u);
  EXPECT_NEAR(revised[0].runtime_s, std::sqrt(31.0 * 121.0) - 1, 0.5);
  // A job submitted into the burst now starts from it...
  EXPECT_NEAR((*e)->EstimateAtSubmit(10, facts(1'040 + 30)), std::sqrt(31.0 * 121.0) - 1, 0.5);
  // ... one submitted more than the gap after the last is another burst.
  const double history = (*e)->EstimateAtSubmit(11, facts(1'070 + 61));
  ASSERT_TRUE((*e)->ObserveFinish(2, facts(1'020), 60).ok());
  revised = (*e)->TakeRevisions();
  ASSERT_EQ(revised.size(), 3u);  // 3, 4 and 10
  for (const RuntimeEstimator::Revision& r : revised) EXPECT_NE(r.key, 11);
  EXPECT_GT(history, 0);
}

// A cancelled member leaves its burst: it is not revised when a sibling ends,
// and a forgotten key that later "finishes" teaches as a job never estimated.
TEST(RuntimeEstimator, AForgottenJobLeavesItsBurst) {
  EstimatorOptions o;
  o.min_train = 1'000;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  auto facts = [](double t) { return JobFacts{.user = "u", .queue = "vc", .gpus = 1, .submit_unix_s = t}; };
  for (int k = 0; k < 3; ++k) (*e)->EstimateAtSubmit(k, facts(100 + k));
  (*e)->Forget(1);
  (*e)->Forget(42);  // unknown: nothing happens
  ASSERT_TRUE((*e)->ObserveFinish(0, facts(100), 50).ok());
  std::vector<RuntimeEstimator::Revision> revised = (*e)->TakeRevisions();
  ASSERT_EQ(revised.size(), 1u);
  EXPECT_EQ(revised[0].key, 2);
}

// Submitted together but named differently (a sweep and an evaluation job):
// two bursts, so the evaluation's quick end does not re-estimate the sweep.
TEST(RuntimeEstimator, DifferentNameTemplatesAreDifferentBursts) {
  EstimatorOptions o;
  o.min_train = 1'000;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  auto facts = [](const std::string& name, double t) {
    return JobFacts{.user = "u", .queue = "vc", .name = name, .gpus = 1, .submit_unix_s = t};
  };
  (*e)->EstimateAtSubmit(0, facts("eval-1", 100));
  (*e)->EstimateAtSubmit(1, facts("sweep-lr1", 101));
  (*e)->EstimateAtSubmit(2, facts("sweep-lr2", 102));
  (*e)->EstimateAtSubmit(3, facts("eval-2", 103));
  ASSERT_TRUE((*e)->ObserveFinish(0, facts("eval-1", 100), 5).ok());
  std::vector<RuntimeEstimator::Revision> revised = (*e)->TakeRevisions();
  ASSERT_EQ(revised.size(), 1u);
  EXPECT_EQ(revised[0].key, 3);
}

TEST(RuntimeEstimator, NoBurstsWhenTheGapIsZero) {
  EstimatorOptions o;
  o.min_train = 1'000;
  o.burst_gap_s = 0;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  auto facts = [](double t) { return JobFacts{.user = "u", .queue = "vc", .gpus = 1, .submit_unix_s = t}; };
  (*e)->EstimateAtSubmit(0, facts(0));
  (*e)->EstimateAtSubmit(1, facts(1));
  ASSERT_TRUE((*e)->ObserveFinish(0, facts(0), 30).ok());
  EXPECT_TRUE((*e)->TakeRevisions().empty());
}

// The spread of an estimate is that of its kind: burst estimates that were
// right have a small one, model (here history) estimates that were 10x off a
// large one; the prior before 30 of a kind have finished.
TEST(RuntimeEstimator, EachKindOfEstimateHasItsOwnSpread) {
  EstimatorOptions o;
  o.min_train = 100'000;
  o.prior_log_sd = 1.5;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  (*e)->EstimateAtSubmit(0, JobFacts{.queue = "vc", .gpus = 1, .submit_unix_s = 0});
  EXPECT_DOUBLE_EQ((*e)->EstimateLogSd(0), 1.5);
  double t = 0;
  for (int b = 0; b < 40; ++b) {
    // Bursts of two, an hour apart; run times alternate 100 s and 10,000 s
    // from burst to burst, so history is 10x off and the sibling is exact.
    const double run = b % 2 == 0 ? 100 : 10'000;
    t += 3'600;
    const JobFacts f{.queue = "vc", .gpus = 1, .submit_unix_s = t};
    const int64_t k = 1 + 2 * b;
    (*e)->EstimateAtSubmit(k, f);
    (*e)->EstimateAtSubmit(k + 1, f);
    ASSERT_TRUE((*e)->ObserveFinish(k, f, run).ok());
    (*e)->TakeRevisions();
    ASSERT_TRUE((*e)->ObserveFinish(k + 1, f, run).ok());
  }
  const JobFacts f{.queue = "vc", .gpus = 1, .submit_unix_s = t + 3'600};
  (*e)->EstimateAtSubmit(100, f);
  (*e)->EstimateAtSubmit(101, f);
  EXPECT_GT((*e)->EstimateLogSd(100), 2.0);  // history: log(100) off
  ASSERT_TRUE((*e)->ObserveFinish(100, f, 50).ok());
  EXPECT_LT((*e)->EstimateLogSd(101), 0.01);  // 101 now holds a burst estimate
}

TEST(RuntimeEstimator, PriorThenHistoryBeforeAnyModel) {
  EstimatorOptions o;
  o.prior_s = 600;
  o.min_train = 1000;  // no model in this test
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  JobFacts a{.user = "u", .queue = "vc1", .name = "resnet-7", .gpus = 1};
  EXPECT_NEAR((*e)->EstimateAtSubmit(1, a), 600, 1);
  ASSERT_TRUE((*e)->ObserveFinish(1, a, 100).ok());
  // Same template, different digits: its history answers.
  JobFacts b = a;
  b.name = "resnet-8";
  EXPECT_NEAR((*e)->EstimateAtSubmit(2, b), 100, 1);
  EXPECT_EQ((*e)->models_trained(), 0);
}

// Jobs whose run time follows their name template and GPU count, with noise;
// the learned model must get most of them within 2x, where the global mean
// would not.
TEST(RuntimeEstimator, LearnsRunTimesFromSimilarJobs) {
  EstimatorOptions o;
  o.min_train = 100;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  std::mt19937_64 rng(7);
  const std::vector<std::string> kinds = {"bert", "gpt", "resnet", "yolo", "vit", "t5"};
  const std::vector<double> base = {600, 36'000, 3'000, 120, 9'000, 50'000};
  std::uniform_int_distribution<int> kind(0, 5);
  std::uniform_int_distribution<int> gpu_pow(0, 3);
  std::lognormal_distribution<double> noise(0.0, 0.2);
  int within = 0, scored = 0;
  for (int i = 0; i < 1500; ++i) {
    const int k = kind(rng);
    const int p = gpu_pow(rng);  // 1, 2, 4 or 8 GPUs, each size a bit longer
    const int g = 1 << p;
    JobFacts f{.user = "user" + std::to_string(i % 7),
               .queue = "vc" + std::to_string(i % 3),
               .name = kinds[k] + "-run" + std::to_string(i),
               .gpus = g,
               .submit_unix_s = 1.5e9 + 600.0 * i};
    const double truth = base[k] * (1 + 0.5 * p) * noise(rng);
    const double est = (*e)->EstimateAtSubmit(i, f);
    EXPECT_GE(est, 1.0);
    if (i >= 1000) {
      ++scored;
      if (est <= 2 * truth && truth <= 2 * est) ++within;
    }
    ASSERT_TRUE((*e)->ObserveFinish(i, f, truth).ok());
  }
  EXPECT_GT((*e)->models_trained(), 3);
  EXPECT_EQ((*e)->failed_predictions(), 0) << (*e)->last_prediction_error();
  EXPECT_GE(within, scored * 9 / 10) << within << " of " << scored << " within 2x";
}

// Run time set by the hour of submission only (even hours 100 s, odd hours
// 10,000 s), one queue, no user or name: the history of similar jobs mixes
// both and is never within 2x, so only a working model gets these right.
TEST(RuntimeEstimator, TheModelAnswersWhatHistoryCannot) {
  EstimatorOptions o;
  o.min_train = 100;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  int within = 0, scored = 0;
  for (int i = 0; i < 600; ++i) {
    JobFacts f{.queue = "vc", .gpus = 1, .submit_unix_s = 1.5e9 + 3'600.0 * i + 60};
    const int64_t hour = static_cast<int64_t>(f.submit_unix_s / 3'600) % 24;
    const double truth = hour % 2 == 0 ? 100 : 10'000;
    const double est = (*e)->EstimateAtSubmit(i, f);
    if (i >= 300) {
      ++scored;
      if (est <= 2 * truth && truth <= 2 * est) ++within;
    }
    ASSERT_TRUE((*e)->ObserveFinish(i, f, truth).ok());
  }
  EXPECT_EQ((*e)->failed_predictions(), 0) << (*e)->last_prediction_error();
  EXPECT_GE(within, scored * 9 / 10) << within << " of " << scored << " within 2x";
}

// 600 finished jobs, one an hour, whose run time is set by the hour's parity
// (even 100 s, odd 10,000 s), fed with training paused as a stored history is.
void FeedHourParityHistory(RuntimeEstimator& e) {
  e.PauseTraining();
  for (int i = 0; i < 600; ++i) {
    JobFacts f{.queue = "vc", .gpus = 1, .submit_unix_s = 1.5e9 + 3'600.0 * i + 60};
    const int64_t hour = static_cast<int64_t>(f.submit_unix_s / 3'600) % 24;
    ASSERT_TRUE(e.ObserveFinish(i, f, hour % 2 == 0 ? 100 : 10'000).ok());
  }
}

// The fitted model tells the parity apart: run times alternate, which the
// trees can read from the hour or from the group's last run time, so the
// even hour's job is short and, once it has run, the odd hour's is long.
void ExpectHourParityLearned(RuntimeEstimator& e) {
  JobFacts even{.queue = "vc", .gpus = 1, .submit_unix_s = 1.5e9 + 3'600.0 * 1'000 + 60};
  JobFacts odd = even;
  odd.submit_unix_s += 3'600;
  const double e0 = e.EstimateAtSubmit(1'000, even);
  ASSERT_TRUE(e.ObserveFinish(1'000, even, 100).ok());
  const double e1 = e.EstimateAtSubmit(1'001, odd);
  EXPECT_EQ(e.failed_predictions(), 0) << e.last_prediction_error();
  EXPECT_GT(std::max(e0, e1) / std::min(e0, e1), 20) << e0 << " " << e1;  // hour parity learned
  EXPECT_LT(e0, 200);
}

// A stored history fed with training paused fits one model, at the resume,
// instead of one per growth step; the model then answers as before.
TEST(RuntimeEstimator, PausedTrainingFitsOnceAtTheResume) {
  EstimatorOptions o;
  o.min_train = 100;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  FeedHourParityHistory(**e);
  EXPECT_EQ((*e)->models_trained(), 0);
  ASSERT_TRUE((*e)->ResumeTraining().ok());
  EXPECT_EQ((*e)->models_trained(), 1);
  ExpectHourParityLearned(**e);
  ASSERT_TRUE((*e)->ResumeTraining().ok());
  EXPECT_EQ((*e)->models_trained(), 1);  // nothing new: none due
}

// With background_training the resume only starts the fit: the estimator
// answers from history meanwhile, and the model, once taken into use,
// answers what history cannot.
TEST(RuntimeEstimator, BackgroundTrainingKeepsAnsweringAndThenUsesTheModel) {
  EstimatorOptions o;
  o.min_train = 100;
  o.background_training = true;
  auto e = RuntimeEstimator::Create(o);
  ASSERT_TRUE(e.ok());
  FeedHourParityHistory(**e);
  ASSERT_TRUE((*e)->ResumeTraining().ok());  // returns before the fit is done
  JobFacts meanwhile{.queue = "vc", .gpus = 1, .submit_unix_s = 1.5e9 + 3'600.0 * 999 + 60};
  EXPECT_GT((*e)->EstimateAtSubmit(999, meanwhile), 0);  // history (or the model, if already done)
  ASSERT_TRUE((*e)->AwaitTraining().ok());
  EXPECT_EQ((*e)->models_trained(), 1);
  ExpectHourParityLearned(**e);
  EXPECT_GT((*e)->train_wall_s(), 0);
}

TEST(RuntimeEstimator, SameHistorySameEstimates) {
  std::vector<double> runs[2];
  for (auto& out : runs) {
    EstimatorOptions o;
    o.min_train = 50;
    auto e = RuntimeEstimator::Create(o);
    ASSERT_TRUE(e.ok());
    for (int i = 0; i < 300; ++i) {
      JobFacts f{.queue = "vc" + std::to_string(i % 4), .gpus = 1 + i % 8, .submit_unix_s = 1.5e9 + 97.0 * i};
      out.push_back((*e)->EstimateAtSubmit(i, f));
      ASSERT_TRUE((*e)->ObserveFinish(i, f, 10.0 + (i * 37) % 5000).ok());
    }
  }
  EXPECT_EQ(runs[0], runs[1]);
}

}  // namespace
}  // namespace icos::learn
