#include "sim/simulator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sim/metrics.h"
#include "sim/trace.h"

namespace icos::sim {
namespace {

using ::testing::HasSubstr;

SimJob Job(double arrival_s, int32_t gpus, double duration_s) {
  SimJob j;
  j.arrival_s = arrival_s;
  j.gpus = gpus;
  j.duration_s = duration_s;
  return j;
}

std::vector<SimJob> Finalized(std::vector<SimJob> jobs) {
  FinalizeTrace(jobs, /*rebase=*/false);
  return jobs;
}

SimOptions Policy(const std::string& name) {
  SimOptions o;
  o.policy = name;
  o.scheduler = *core::PolicyPreset(name);
  return o;
}

SimResult MustSimulate(const std::string& cluster, const std::vector<SimJob>& jobs, const SimOptions& options) {
  auto nodes = ParseClusterSpec(cluster);
  EXPECT_TRUE(nodes.ok()) << nodes.status();
  auto r = Simulate(*nodes, jobs, options);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  absl::Status inv = CheckInvariants(jobs, *r);
  EXPECT_TRUE(inv.ok()) << inv;
  return *std::move(r);
}

double Jct(const SimResult& r, int64_t id) { return r.jobs[id].finish_s - r.jobs[id].arrival_s; }

// --- cluster specs and policy table -------------------------------------------------------

TEST(ClusterSpecTest, GpusInNodesOfFour) {
  auto nodes = ParseClusterSpec("36xV100,6xK80");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  // 36 V100 = 9 nodes of 4; 6 K80 = a node of 4 and one of 2.
  ASSERT_EQ(nodes->size(), 11u);
  EXPECT_EQ((*nodes)[0].devices.size(), 4u);
  EXPECT_EQ((*nodes)[0].devices[0].model, "V100");
  EXPECT_EQ((*nodes)[10].devices.size(), 2u);
  EXPECT_EQ((*nodes)[10].devices[0].model, "K80");
}

TEST(ClusterSpecTest, NodesTimesPerNode) {
  auto nodes = ParseClusterSpec("250x8xV100");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ(nodes->size(), 250u);
  EXPECT_EQ(nodes->back().devices.size(), 8u);
}

TEST(ClusterSpecTest, RejectsGarbage) {
  EXPECT_THAT(std::string(ParseClusterSpec("lots of GPUs").status().message()), HasSubstr("'lots of GPUs'"));
  EXPECT_FALSE(ParseClusterSpec("0xV100").ok());
  EXPECT_FALSE(ParseClusterSpec("").ok());
}

TEST(PolicyTableTest, KnowsEveryNameAndRejectsOthers) {
  for (const std::string& name : core::PolicyPresetNames()) {
    auto o = core::PolicyPreset(name);
    ASSERT_TRUE(o.ok()) << name;
    EXPECT_TRUE(core::Scheduler::Create(*o).ok()) << name;
  }
  EXPECT_EQ(core::PolicyPreset("gavel")->order, "las");
  EXPECT_TRUE(core::PolicyPreset("gavel")->heterogeneity_aware);
  EXPECT_FALSE(core::PolicyPreset("las")->heterogeneity_aware);
  EXPECT_EQ(core::PolicyPreset("sjf")->order, "sjf");
  EXPECT_THAT(std::string(core::PolicyPreset("lottery").status().message()), HasSubstr("known: default, fifo"));
}

// --- golden runs ------------------------------------------------------------------------------

// One node of 2 GPUs; FIFO order with EASY backfill (the fifo policy keeps it):
//   job 0: t=0,  1 GPU, 100 s -> starts 0, ends 100                       JCT 100
//   job 1: t=10, 2 GPUs, 50 s -> 1 GPU free: blocked, reserved for t=100;
//                                starts 100 when job 0 ends, ends 150      JCT 140
//   job 2: t=20, 1 GPU, 30 s  -> ends at 50 < 100, so it backfills at 20   JCT 30
// Average (100 + 140 + 30) / 3 = 90; makespan 150. Devices in use: 1 on [0,20),
// 2 on [20,50), 1 on [50,100), 2 on [100,150): (20 + 60 + 50 + 100) / (150 x 2) = 23/30.
TEST(GoldenTest, FifoWithBackfillOnTwoGpus) {
  const auto jobs = Finalized({Job(0, 1, 100), Job(10, 2, 50), Job(20, 1, 30)});
  SimResult r = MustSimulate("1x2xV100", jobs, Policy("fifo"));
  EXPECT_DOUBLE_EQ(Jct(r, 0), 100);
  EXPECT_DOUBLE_EQ(Jct(r, 1), 140);
  EXPECT_DOUBLE_EQ(Jct(r, 2), 30);
  Summary s = Summarize(r);
  EXPECT_DOUBLE_EQ(s.avg_jct_s, 90);
  EXPECT_DOUBLE_EQ(s.median_jct_s, 100);
  EXPECT_DOUBLE_EQ(s.makespan_s, 150);
  EXPECT_NEAR(s.avg_utilisation, 23.0 / 30.0, 1e-9);
  // Queueing: 0 + 90 + 0.
  EXPECT_DOUBLE_EQ(s.avg_queue_s, 30);
  EXPECT_DOUBLE_EQ(s.lower_bound_jct_s, 60);
}

// Strict FIFO: job 2 may not overtake job 1, so it starts when job 1 ends at 150
// and finishes at 180: JCT 160; the others as above.
TEST(GoldenTest, StrictFifoDoesNotBackfill) {
  const auto jobs = Finalized({Job(0, 1, 100), Job(10, 2, 50), Job(20, 1, 30)});
  SimOptions o = Policy("fifo");
  o.scheduler.backfill = core::BackfillMode::kStrict;
  SimResult r = MustSimulate("1x2xV100", jobs, o);
  EXPECT_DOUBLE_EQ(Jct(r, 0), 100);
  EXPECT_DOUBLE_EQ(Jct(r, 1), 140);
  EXPECT_DOUBLE_EQ(Jct(r, 2), 160);
}

// SJF with oracle durations on one GPU: all arrive at 0 with 30, 10, 20 s.
// Order 10, 20, 30: finishes at 10, 30, 60 -> JCTs 60, 10, 30 (by id), mean 100/3.
// FIFO runs them by id: finishes 30, 40, 60 -> mean 130/3.
TEST(GoldenTest, SjfRunsShortestFirst) {
  const auto jobs = Finalized({Job(0, 1, 30), Job(0, 1, 10), Job(0, 1, 20)});
  SimResult sjf = MustSimulate("1x1xV100", jobs, Policy("sjf"));
  EXPECT_DOUBLE_EQ(Jct(sjf, 0), 60);
  EXPECT_DOUBLE_EQ(Jct(sjf, 1), 10);
  EXPECT_DOUBLE_EQ(Jct(sjf, 2), 30);
  SimResult fifo = MustSimulate("1x1xV100", jobs, Policy("fifo"));
  EXPECT_NEAR(Summarize(fifo).avg_jct_s, 130.0 / 3, 1e-9);
}

// Two jobs at t=0 on one V100 and one K80. Job 0 hardly cares (1.2 vs 1 steps/s),
// job 1 runs 4x faster on V100. Durations are 100 s on each job's fastest type.
// Agnostic (las): both try V100 first; job 0 gets it (100 s), job 1 runs on K80
// at a quarter of the speed: 400 s. Mean 250.
// Gavel: normalized throughput sends job 0 to K80 (100 x 1.2 = 120 s) and job 1
// to V100 (100 s). Mean 110.
TEST(GoldenTest, GavelPlacesByComparativeAdvantage) {
  SimJob a = Job(0, 1, 100);
  a.throughput = {{"V100", 1.2}, {"K80", 1.0}};
  SimJob b = Job(0, 1, 100);
  b.throughput = {{"V100", 4.0}, {"K80", 1.0}};
  const auto jobs = Finalized({a, b});
  SimResult las = MustSimulate("1x1xV100,1x1xK80", jobs, Policy("las"));
  EXPECT_DOUBLE_EQ(Jct(las, 0), 100);
  EXPECT_DOUBLE_EQ(Jct(las, 1), 400);
  SimResult gavel = MustSimulate("1x1xV100,1x1xK80", jobs, Policy("gavel"));
  EXPECT_DOUBLE_EQ(Jct(gavel, 0), 120);
  EXPECT_DOUBLE_EQ(Jct(gavel, 1), 100);
}

// Upgrade migration. Job 0 holds the only V100 until t=20,100. Job 1 (10,000 s
// on a V100, 4x slower on the K80) arrives at t=1: waiting for the V100 would
// end at 30,100, later than 75% of the K80's 40,001, so it starts on the K80.
// When the V100 frees, 4,975.25 V100-seconds are left: gavel moves it there,
// paying the 30 s restore, and it ends at 20,100 + 30 + 4,975.25. Agnostic LAS
// leaves it on the K80 until 40,001.
TEST(GoldenTest, GavelMovesARunningJobToAFasterFreeType) {
  SimJob a = Job(0, 1, 20'100);
  a.throughput = {{"V100", 1.0}};
  SimJob b = Job(1, 1, 10'000);
  b.throughput = {{"V100", 4.0}, {"K80", 1.0}};
  const auto jobs = Finalized({a, b});
  SimResult gavel = MustSimulate("1x1xV100,1x1xK80", jobs, Policy("gavel"));
  EXPECT_EQ(gavel.migrations, 1);
  EXPECT_EQ(gavel.preemptions, 0);
  EXPECT_NEAR(Jct(gavel, 1), 20'100 + 30 + 4'975.25 - 1, 1e-3);
  SimResult las = MustSimulate("1x1xV100,1x1xK80", jobs, Policy("las"));
  EXPECT_EQ(las.migrations, 0);
  EXPECT_NEAR(Jct(las, 1), 40'000, 1e-3);
}

// SRTF with oracle estimates: a 100 s job arriving while a 10,000 s job runs
// on the only GPU preempts it, and the long job resumes after a 30 s restore.
// Gittins with oracle estimates ranks by time left and does the same. SJF lets
// the long job finish first.
TEST(GoldenTest, SrtfPreemptsALongJobForAShortOne) {
  const auto jobs = Finalized({Job(0, 1, 10'000), Job(10, 1, 100)});
  for (const char* policy : {"srtf", "gittins"}) {
    SCOPED_TRACE(policy);
    SimResult srtf = MustSimulate("1x1xV100", jobs, Policy(policy));
    EXPECT_EQ(srtf.preemptions, 1);
    EXPECT_NEAR(Jct(srtf, 1), 100, 1e-3);
    EXPECT_NEAR(Jct(srtf, 0), 10'000 + 100 + 30, 1e-3);
  }
  SimResult sjf = MustSimulate("1x1xV100", jobs, Policy("sjf"));
  EXPECT_EQ(sjf.preemptions, 0);
  EXPECT_NEAR(Jct(sjf, 1), 10'000 - 10 + 100, 1e-3);
}

// On one GPU: a sweep of four 30 s jobs of user u (t = 0, 1, 2, 3) and user
// v's 2,000 s job at t = 0.5. Nothing has finished, so all are estimated at
// the prior (1 h). When the first sweep job ends, its siblings are
// re-estimated at 30 s and learned SJF runs them before v's job; without
// burst estimates v's job, submitted earlier, goes first.
TEST(LearnedEstimatorSimTest, ASweepIsReestimatedWhenItsFirstJobEnds) {
  std::vector<SimJob> jobs;
  for (double t : {0.0, 0.5, 1.0, 2.0, 3.0}) {
    SimJob j = Job(t, 1, t == 0.5 ? 2'000 : 30);
    j.user = t == 0.5 ? "v" : "u";
    j.queue = "vc";
    j.submit_unix_s = 1.7e9 + t;
    jobs.push_back(j);
  }
  jobs = Finalized(jobs);
  SimOptions learned = Policy("sjf-learned");
  learned.estimator = "learned";
  learned.learned.prior_s = 3'600;
  learned.learned.min_finished_to_estimate = 0;  // the prior is handed out here
  SimResult r = MustSimulate("1x1xV100", jobs, learned);
  EXPECT_NEAR(Jct(r, 2), 60 - 1, 1e-3);
  EXPECT_NEAR(Jct(r, 4), 120 - 3, 1e-3);
  EXPECT_NEAR(Jct(r, 1), 2'120 - 0.5, 1e-3);
  Summary s = Summarize(r);
  EXPECT_DOUBLE_EQ(s.est_within_2x, 1.0 / 5);        // only v's job (1 h against 2,000 s)
  EXPECT_DOUBLE_EQ(s.est_final_within_2x, 4.0 / 5);  // and the three revised
  learned.learned.burst_gap_s = 0;
  SimResult plain = MustSimulate("1x1xV100", jobs, learned);
  EXPECT_NEAR(Jct(plain, 1), 2'030 - 0.5, 1e-3);
}

// As in the live cluster, no estimate is handed out before
// `min_finished_to_estimate` jobs have finished: the sweep's first job is
// unknown (not counted by the accuracy figures) though the estimator made one.
TEST(LearnedEstimatorSimTest, NoEstimateIsHandedOutBeforeEnoughJobsFinished) {
  std::vector<SimJob> jobs;
  for (double t : {0.0, 100.0, 200.0}) {
    SimJob j = Job(t, 1, 30);
    j.user = "u";
    j.queue = "vc";
    j.submit_unix_s = 1.7e9 + t;
    jobs.push_back(j);
  }
  jobs = Finalized(jobs);
  SimOptions learned = Policy("sjf-learned");
  learned.estimator = "learned";
  learned.learned.min_finished_to_estimate = 2;
  SimResult r = MustSimulate("1x1xV100", jobs, learned);
  EXPECT_LT(r.jobs[0].estimate_s, 0);
  EXPECT_LT(r.jobs[1].estimate_s, 0);  // one job had finished at its arrival
  EXPECT_GT(r.jobs[2].estimate_s, 0);  // two had
}

TEST(MetricsTest, JobsCsvHasOneRowPerJob) {
  SimResult r = MustSimulate("1x1xV100", Finalized({Job(0, 1, 100), Job(10, 1, 50)}), Policy("fifo"));
  std::ostringstream out;
  WriteJobsCsv(r, out);
  EXPECT_EQ(out.str(),
            "id,arrival_s,gpus,duration_s,estimate_s,final_estimate_s,first_start_s,finish_s,jct_s,preemptions\n"
            "0,0.000,1,100.000,100.000,100.000,0.000,100.000,100.000,0\n"
            "1,10.000,1,50.000,50.000,50.000,100.000,150.000,140.000,0\n");
}

// Reclaim with the default policy: queues a and b each guarantee 1 of 2 GPUs.
//   job 0 (b): t=0, 2 GPUs, 100 s: borrows a's idle GPU.
//   job 1 (a): t=10, 1 GPU, 10 s: a is within its guarantee and b borrows, so
//              job 0 is preempted at 10 with 90 s of work left; job 1 runs 10-20.
//   job 0 restarts at 20 when both GPUs are free, pays the 30 s restore and
//              ends at 20 + 30 + 90 = 140: JCT 140.
TEST(GoldenTest, PreemptedJobKeepsProgressAndPaysRestore) {
  SimJob x = Job(0, 2, 100);
  x.queue = "b";
  SimJob y = Job(10, 1, 10);
  y.queue = "a";
  const auto jobs = Finalized({x, y});
  SimOptions o = Policy("default");
  o.queues = {core::Queue{.name = "a", .guaranteed = {{"devices", 1000}}},
              core::Queue{.name = "b", .guaranteed = {{"devices", 1000}}}};
  SimResult r = MustSimulate("1x2xV100", jobs, o);
  EXPECT_EQ(r.jobs[0].preemptions, 1);
  EXPECT_EQ(r.preemptions, 1);
  EXPECT_DOUBLE_EQ(Jct(r, 1), 10);
  EXPECT_DOUBLE_EQ(Jct(r, 0), 140);
}

TEST(GoldenTest, JobThatCanNeverFitIsRejected) {
  const auto jobs = Finalized({Job(0, 1, 10), Job(0, 16, 10)});
  SimResult r = MustSimulate("1x8xV100", jobs, Policy("default"));
  EXPECT_FALSE(r.jobs[0].rejected);
  EXPECT_TRUE(r.jobs[1].rejected);
  EXPECT_FALSE(r.jobs[1].reason.empty());
  EXPECT_EQ(Summarize(r).rejected, 1);
}

TEST(GoldenTest, FractionalJobsShareOneGpu) {
  // Two 50% jobs at t=0 on one GPU run side by side: both end at 100.
  SimJob a = Job(0, 1, 100);
  a.gpu_milli = 500;
  SimJob b = a;
  const auto jobs = Finalized({a, b});
  SimResult r = MustSimulate("1x1xT4", jobs, Policy("fgd"));
  EXPECT_DOUBLE_EQ(Jct(r, 0), 100);
  EXPECT_DOUBLE_EQ(Jct(r, 1), 100);
  EXPECT_NEAR(Summarize(r).avg_utilisation, 1.0, 1e-9);
}

// --- invariants on random synthetic runs ------------------------------------------------------

TEST(SimulatorPropertyTest, EveryPolicyKeepsInvariantsAndIsDeterministic) {
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    // 150 jobs at 30 jobs/h on 24 GPUs: busy enough to queue.
    const auto jobs = GenerateGavelSynthetic({.seed = seed, .jobs = 150, .jobs_per_hour = 30});
    for (const std::string& name : core::PolicyPresetNames()) {
      SCOPED_TRACE(name + " seed " + std::to_string(seed));
      SimResult a = MustSimulate("8xV100,8xP100,8xK80", jobs, Policy(name));
      SimResult b = MustSimulate("8xV100,8xP100,8xK80", jobs, Policy(name));
      ASSERT_EQ(a.jobs.size(), jobs.size());
      for (size_t i = 0; i < jobs.size(); ++i) {
        ASSERT_EQ(a.jobs[i].finish_s, b.jobs[i].finish_s) << "job " << i;
        ASSERT_FALSE(a.jobs[i].rejected);
      }
      EXPECT_GE(Summarize(a).avg_jct_s, Summarize(a).lower_bound_jct_s);
      EXPECT_LE(Summarize(a).avg_utilisation, 1.0);
    }
  }
}

TEST(SimulatorTest, RejectsUnsortedTrace) {
  std::vector<SimJob> jobs = {Job(10, 1, 1), Job(0, 1, 1)};
  jobs[1].id = 1;
  auto nodes = ParseClusterSpec("4xV100");
  auto r = Simulate(*nodes, jobs, Policy("fifo"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("sort the trace"));
}

TEST(MetricsTest, UtilisationCsvHasOneRowPerChange) {
  const auto jobs = Finalized({Job(0, 1, 100), Job(10, 2, 50), Job(20, 1, 30)});
  SimResult r = MustSimulate("1x2xV100", jobs, Policy("fifo"));
  std::ostringstream csv;
  WriteUtilisationCsv(r, csv);
  // Changes at 0 (1), 20 (2), 50 (1), 100 (2), 150 (0).
  EXPECT_EQ(csv.str(), "t_s,used_devices,utilisation\n0,1,0.5\n20,2,1\n50,1,0.5\n100,2,1\n150,0,0\n");
}

TEST(MetricsTest, InvariantCatchesAJobFinishingTooEarly) {
  const auto jobs = Finalized({Job(0, 1, 100)});
  SimResult r = MustSimulate("1x1xV100", jobs, Policy("fifo"));
  r.jobs[0].finish_s = 50;
  EXPECT_THAT(std::string(CheckInvariants(jobs, r).message()), HasSubstr("job 0 finished at 50 s"));
  r.jobs[0].finish_s = -1;
  EXPECT_THAT(std::string(CheckInvariants(jobs, r).message()), HasSubstr("job 0 never finished"));
}

// --- real traces, when present ---------------------------------------------------------------

std::string TracesDir() { return FindTracesDir(); }

TEST(RealTraceSimTest, PhillyFirst1000JobsOn2000Gpus) {
  const std::string dir = TracesDir();
  if (dir.empty()) GTEST_SKIP() << "no traces: set ICOS_TRACES or put them at ../shared/data/traces";
  auto jobs = LoadPhilly(dir + "/philly/philly.csv");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  jobs->resize(1'000);
  SimResult r = MustSimulate("250x8xV100", *jobs, Policy("default"));
  Summary s = Summarize(r);
  EXPECT_EQ(s.finished, 1'000);
  EXPECT_GE(s.avg_jct_s, s.lower_bound_jct_s);
}

TEST(RealTraceSimTest, GavelTraceOnTheGavelCluster) {
  const std::string dir = TracesDir();
  if (dir.empty()) GTEST_SKIP() << "no traces: set ICOS_TRACES or put them at ../shared/data/traces";
  auto t = LoadGavelThroughputs(dir + "/gavel/simulation_throughputs.json");
  ASSERT_TRUE(t.ok()) << t.status();
  auto jobs = LoadGavelTraceDir(dir + "/gavel/msr-seed0", *t);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  jobs->resize(300);
  SimResult r = MustSimulate("36xV100,36xP100,36xK80", *jobs, Policy("gavel"));
  EXPECT_EQ(Summarize(r).finished, 300);
}

TEST(RealTraceSimTest, OpenbPodsOnOpenbNodes) {
  const std::string dir = TracesDir();
  if (dir.empty()) GTEST_SKIP() << "no traces: set ICOS_TRACES or put them at ../shared/data/traces";
  auto nodes = LoadOpenbNodes(dir + "/alibaba-openb/openb_node_list_gpu_node.csv");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  auto jobs = LoadOpenbPods(dir + "/alibaba-openb/openb_pod_list_default.csv");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  jobs->resize(500);
  auto r = Simulate(*nodes, *jobs, Policy("fgd"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(CheckInvariants(*jobs, *r).ok()) << CheckInvariants(*jobs, *r);
}

}  // namespace
}  // namespace icos::sim

namespace icos::sim {
namespace {

// The FIFO-with-backfill run above: job 0 (1 GPU, 100 s) alone on a 2-GPU
// cluster with jobs 1 and 2; job 1 waits 90 s behind job 0 while 2 jobs are
// in the system. Finish-time fairness of a job that ran as if alone is 1; one
// that waited is above 1.
TEST(MetricsTest, FinishTimeFairnessIsOneForAJobThatRanAsIfAlone) {
  SimResult alone = MustSimulate("1x2xV100", Finalized({Job(0, 1, 100)}), Policy("fifo"));
  Summary s = Summarize(alone);
  EXPECT_DOUBLE_EQ(s.ftf_mean, 1.0);
  EXPECT_DOUBLE_EQ(s.ftf_worst, 1.0);
  SimResult queued = MustSimulate("1x2xV100", Finalized({Job(0, 2, 100), Job(0, 2, 100)}), Policy("fifo"));
  s = Summarize(queued);
  // Job 1 (2 GPUs, JCT 200) shares the cluster with job 0 for 100 of its 200 s:
  // 1.5 jobs on average, each fair share 2/1.5 GPUs < its 2, stretch 1.5; rho = 200 / 150.
  EXPECT_NEAR(s.ftf_worst, 200.0 / 150.0, 1e-9);
}

TEST(MetricsTest, OracleEstimatesHaveNoError) {
  SimResult r = MustSimulate("1x2xV100", Finalized({Job(0, 1, 100), Job(5, 1, 30)}), Policy("sjf"));
  Summary s = Summarize(r);
  EXPECT_EQ(s.estimated, 2);
  EXPECT_DOUBLE_EQ(s.est_median_abs_error_s, 0);
  EXPECT_DOUBLE_EQ(s.est_within_2x, 1.0);
}

TEST(MetricsTest, JctCdfEndsAtOne) {
  SimResult r = MustSimulate("1x2xV100", Finalized({Job(0, 1, 100), Job(10, 2, 50), Job(20, 1, 30)}), Policy("fifo"));
  std::ostringstream out;
  WriteJctCdfCsv(r, out);
  EXPECT_EQ(out.str(), "jct_s,cdf\n30,0.333333\n100,0.666667\n140,1\n");
}

TEST(PolicyTableTest, LearnedSuffixSelectsTheLearnedEstimator) {
  EXPECT_EQ(EstimatorFor("sjf-learned", "oracle"), "learned");
  EXPECT_EQ(EstimatorFor("sjf", "oracle"), "oracle");
  auto o = core::PolicyPreset("sjf-learned");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->order, "sjf");
}

// Bursts of one long and two short jobs (1000 s, 10 s; the long one first),
// whose names tell their kind, every 1100 s on one GPU. Once the
// estimator has seen some, learned SJF runs the short kind first, as the
// oracle does, and its estimates of the later jobs are close.
TEST(LearnedEstimatorSimTest, LearnsToRunShortJobsFirst) {
  std::vector<SimJob> jobs;
  for (int i = 0; i < 600; ++i) {
    SimJob j = Job((i / 3) * 1'100.0, 1, i % 3 == 0 ? 1'000 : 10);
    j.name = i % 3 == 0 ? absl::StrCat("train-", i) : absl::StrCat("eval-", i);
    j.queue = "vc";
    jobs.push_back(j);
  }
  jobs = Finalized(jobs);
  SimOptions learned = Policy("sjf-learned");
  learned.estimator = "learned";
  learned.learned.min_train = 50;
  SimResult r = MustSimulate("1x1xV100", jobs, learned);
  Summary s = Summarize(r);
  EXPECT_EQ(s.estimator, "learned");
  EXPECT_GT(s.models_trained, 0);
  EXPECT_GT(s.est_within_2x, 0.8);
  SimResult fifo = MustSimulate("1x1xV100", jobs, Policy("fifo"));
  SimResult oracle = MustSimulate("1x1xV100", jobs, Policy("sjf"));
  EXPECT_LT(s.avg_jct_s, Summarize(fifo).avg_jct_s);
  EXPECT_LT(s.avg_jct_s, 1.1 * Summarize(oracle).avg_jct_s);
}

TEST(LearnedEstimatorSimTest, UnknownEstimatorIsAnError) {
  SimOptions o = Policy("sjf");
  o.estimator = "crystal-ball";
  auto nodes = ParseClusterSpec("1x1xV100");
  ASSERT_TRUE(nodes.ok());
  auto r = Simulate(*nodes, Finalized({Job(0, 1, 10)}), o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("known: oracle, learned, none"));
}

}  // namespace
}  // namespace icos::sim

namespace icos::sim {
namespace {

// Sample times that fall on bin edges up to rounding must not stall the walk;
// the binned series keeps the time-weighted mean.
TEST(MetricsTest, BinnedUtilisationIsTheTimeWeightedMean) {
  SimResult r;
  r.total_devices = 10;
  r.jobs.push_back(JobOutcome{.arrival_s = 0, .finish_s = 0.3});
  r.utilisation = {{0, 10}, {0.1, 5}, {0.2, 0}};
  std::ostringstream out;
  WriteUtilisationBinnedCsv(r, out, 3);
  std::istringstream in(out.str());
  std::string header, row;
  std::getline(in, header);
  std::vector<double> util;
  while (std::getline(in, row)) util.push_back(std::stod(row.substr(row.find(',') + 1)));
  ASSERT_EQ(util.size(), 3u);
  EXPECT_NEAR(util[0], 1.0, 1e-9);
  EXPECT_NEAR(util[1], 0.5, 1e-9);
  EXPECT_NEAR(util[2], 0.0, 1e-9);
}

// --- checkpoints (issue #20) -------------------------------------------------------------

// Without a checkpoint interval (or a minimum run, or a cap) nothing changes:
// SRTF and LAS on a busy synthetic run, which preempt hundreds of times,
// give the mean JCT the simulator gave before it modelled checkpoints
// (`icos sim --trace synthetic --jobs 300 --cluster 8xV100,8xP100,8xK80` built
// at 2f834c1, the core's victim choice by work lost: 138405.6923799287 s with
// 139 preemptions, 254031.9399632621 s with 444). Every stop then loses only
// the restore it pays.
TEST(CheckpointSimTest, IntervalZeroKeepsTodaysResults) {
  const auto jobs = GenerateGavelSynthetic({.seed = 1, .jobs = 300});
  for (const auto& [name, jct, preemptions] :
       {std::tuple<std::string, double, int64_t>{"srtf", 138405.6923799287, 139}, {"las", 254031.9399632621, 444}}) {
    SCOPED_TRACE(name);
    SimOptions o = Policy(name);
    o.checkpoint_interval_s = 0;
    SimResult r = MustSimulate("8xV100,8xP100,8xK80", jobs, o);
    EXPECT_NEAR(Summarize(r).avg_jct_s, jct, 1e-6);
    EXPECT_EQ(r.preemptions, preemptions);
    double lost = 0;
    for (const JobOutcome& j : r.jobs) {
      EXPECT_LE(j.lost_gpu_s, j.preemptions * j.gpu_share * o.restore_delay_s + 1e-6) << "job " << j.id;
      lost += j.lost_gpu_s;
    }
    EXPECT_GT(lost, 0);  // the restores
  }
}

// Reclaim with the default policy on 2 GPUs: queues a and b guarantee 1 each.
//   job 0 (b): t=0,     1 GPU, 10,000 s; checkpoints at 1,800 and 3,600 ...
//   job 1 (b): t=1,000, 1 GPU, 10,000 s: borrows a's GPU; checkpoint due 2,800.
//   job 2 (a): t=2,000, 1 GPU, 100 s: reclaims one GPU from b.
// Perfect checkpoints: the victim loses nothing; the one that ran least (job
// 1, 1,000 s against 2,000 s) is stopped, resumes at 2,100 with 9,000 s left
// after a 30 s restore: ends 11,130.
// Every 1,800 s: job 0 loses 200 s (since its checkpoint at 1,800), job 1
// would lose 1,000 s, so job 0 is stopped; 8,200 s are left; it resumes at
// 2,100 and ends at 2,100 + 30 + 8,200 = 10,330, having lost 230 GPU-s.
TEST(CheckpointSimTest, AStopLosesTheWorkSinceTheLastCheckpoint) {
  SimJob x = Job(0, 1, 10'000), y = Job(1'000, 1, 10'000), z = Job(2'000, 1, 100);
  x.queue = y.queue = "b";
  z.queue = "a";
  const auto jobs = Finalized({x, y, z});
  SimOptions o = Policy("default");
  o.queues = {core::Queue{.name = "a", .guaranteed = {{"devices", 1000}}},
              core::Queue{.name = "b", .guaranteed = {{"devices", 1000}}}};
  SimResult perfect = MustSimulate("1x2xV100", jobs, o);
  EXPECT_EQ(perfect.jobs[1].preemptions, 1);
  EXPECT_DOUBLE_EQ(perfect.jobs[0].finish_s, 10'000);
  EXPECT_DOUBLE_EQ(perfect.jobs[1].finish_s, 11'130);
  EXPECT_DOUBLE_EQ(perfect.jobs[1].lost_gpu_s, 30);

  o.checkpoint_interval_s = 1'800;
  SimResult r = MustSimulate("1x2xV100", jobs, o);
  EXPECT_EQ(r.preemptions, 1);
  EXPECT_EQ(r.jobs[0].preemptions, 1);
  EXPECT_DOUBLE_EQ(Jct(r, 2), 100);
  EXPECT_DOUBLE_EQ(r.jobs[0].finish_s, 10'330);
  EXPECT_DOUBLE_EQ(r.jobs[1].finish_s, 11'000);
  EXPECT_DOUBLE_EQ(r.jobs[0].lost_gpu_s, 230);
  EXPECT_DOUBLE_EQ(r.jobs[1].lost_gpu_s, 0);
  EXPECT_DOUBLE_EQ(r.jobs[2].lost_gpu_s, 0);
  // Lost GPU-hours add up; used ones are the runs: 2,000 + 8,230 + 10,000 + 100 s.
  EXPECT_NEAR(r.gpu_hours_lost, 230.0 / 3600, 1e-12);
  EXPECT_NEAR(r.gpu_hours_used, 20'330.0 / 3600, 1e-9);
}

// SRTF on one GPU, checkpoints every 1,800 s: a 100 s job arrives at 1,000 s
// while a 10,000 s job runs. Without a minimum run time it is preempted at
// once and loses 1,000 s; with 1,800 s it is preempted when its first
// checkpoint is done and loses only the restore; with 20,000 s never.
TEST(CheckpointSimTest, MinRunDelaysOrPreventsAPreemption) {
  const auto jobs = Finalized({Job(0, 1, 10'000), Job(1'000, 1, 100)});
  SimOptions o = Policy("srtf");
  o.checkpoint_interval_s = 1'800;
  SimResult now = MustSimulate("1x1xV100", jobs, o);
  EXPECT_EQ(now.preemptions, 1);
  EXPECT_DOUBLE_EQ(Jct(now, 1), 100);
  EXPECT_DOUBLE_EQ(now.jobs[0].lost_gpu_s, 1'030);
  EXPECT_DOUBLE_EQ(now.jobs[0].finish_s, 1'100 + 30 + 10'000);

  o.min_run_s = 1'800;
  SimResult later = MustSimulate("1x1xV100", jobs, o);
  EXPECT_EQ(later.preemptions, 1);
  EXPECT_DOUBLE_EQ(Jct(later, 1), 900);
  EXPECT_DOUBLE_EQ(later.jobs[0].lost_gpu_s, 30);
  EXPECT_DOUBLE_EQ(later.jobs[0].finish_s, 1'900 + 30 + 8'200);

  o.min_run_s = 20'000;
  SimResult never = MustSimulate("1x1xV100", jobs, o);
  EXPECT_EQ(never.preemptions, 0);
  EXPECT_DOUBLE_EQ(Jct(never, 1), 10'000 - 1'000 + 100);
  EXPECT_DOUBLE_EQ(never.gpu_hours_lost, 0);
}

// SRTF on one GPU: short jobs at 1,000 s and 1,200 s each preempt the long
// one. With at most one interruption an hour, the second waits until the
// first stop is an hour old (4,600 s).
TEST(CheckpointSimTest, InterruptionCapDefersASecondPreemption) {
  const auto jobs = Finalized({Job(0, 1, 10'000), Job(1'000, 1, 100), Job(1'200, 1, 100)});
  SimOptions o = Policy("srtf");
  SimResult free = MustSimulate("1x1xV100", jobs, o);
  EXPECT_EQ(free.jobs[0].preemptions, 2);
  EXPECT_DOUBLE_EQ(Jct(free, 2), 100);

  o.max_interruptions_per_hour = 1;
  SimResult capped = MustSimulate("1x1xV100", jobs, o);
  EXPECT_EQ(capped.jobs[0].preemptions, 2);
  EXPECT_DOUBLE_EQ(capped.jobs[2].finish_s, 4'700);
}

// Lost GPU-hours are the sum of the jobs' and less than those used; no job
// loses more than its stops can throw away (an interval and a restore each),
// with or without a minimum run and a cap.
TEST(CheckpointSimTest, LostGpuHoursAddUp) {
  const auto jobs = GenerateGavelSynthetic({.seed = 2, .jobs = 200, .jobs_per_hour = 30});
  for (const char* policy : {"srtf", "las"}) {
    for (const double min_run_s : {0.0, 1'800.0}) {
      SCOPED_TRACE(absl::StrCat(policy, " min_run_s ", min_run_s));
      SimOptions o = Policy(policy);
      o.checkpoint_interval_s = 1'800;
      o.restore_delay_s = 60;
      o.min_run_s = min_run_s;
      o.max_interruptions_per_hour = min_run_s > 0 ? 1 : 0;
      SimResult r = MustSimulate("8xV100,8xP100,8xK80", jobs, o);
      double lost_s = 0;
      for (const JobOutcome& j : r.jobs) {
        lost_s += j.lost_gpu_s;
        EXPECT_LE(j.lost_gpu_s, j.preemptions * j.gpu_share * (1'800 + 60) + 1e-6) << "job " << j.id;
      }
      EXPECT_NEAR(r.gpu_hours_lost * 3600, lost_s, 1e-6);
      EXPECT_GT(r.preemptions, 0);
      EXPECT_GT(r.gpu_hours_lost, 0);
      EXPECT_LT(r.gpu_hours_lost, r.gpu_hours_used);
    }
  }
}

// Fair share over time in the simulator, as in the live engine: queue a kept
// all 4 GPUs busy for 10 hours; when a and b each wait with 4 one-hour jobs,
// plain DRF splits the GPUs 2/2, while with a one-hour half-life b, which
// used nothing, gets all four first.
TEST(FairShareOverTimeSimTest, AQueueThatUsedMuchYieldsToOneThatUsedNone) {
  std::vector<SimJob> jobs;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(Job(0, 1, 36'000));
    jobs.back().queue = "a";
  }
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(Job(35'999, 1, 3'600));
    jobs.back().queue = "b";
    jobs.push_back(Job(36'000, 1, 3'600));
    jobs.back().queue = "a";
  }
  jobs = Finalized(jobs);
  auto started_at_10h = [&](const SimResult& r, const std::string& queue) {
    int n = 0;
    for (size_t i = 4; i < jobs.size(); ++i) n += jobs[i].queue == queue && r.jobs[i].first_start_s == 36'000;
    return n;
  };
  SimOptions o = Policy("default");
  SimResult plain = MustSimulate("1x4xV100", jobs, o);
  EXPECT_EQ(started_at_10h(plain, "a"), 2);
  EXPECT_EQ(started_at_10h(plain, "b"), 2);
  o.usage_half_life_s = 3'600;
  SimResult over_time = MustSimulate("1x4xV100", jobs, o);
  EXPECT_EQ(started_at_10h(over_time, "a"), 0);
  EXPECT_EQ(started_at_10h(over_time, "b"), 4);
}

// --- the fault model -------------------------------------------------------------------------

// One 4-GPU node failing every 10 h on average under a 4-GPU job of 100,000
// s. Without checkpoints each failure throws away the whole run so far, the
// job waits out the repair (3,600 s: nothing else can run it, and the
// simulation must not end while it waits) and restores (30 s): its end is
// the work plus what was lost plus 3,630 s per failure.
TEST(FaultSimTest, AFailedNodesJobWaitsForTheRepairAndLosesItsRunWithoutCheckpoints) {
  const auto jobs = Finalized({Job(0, 4, 100'000)});
  SimOptions o = Policy("default");
  o.device_mtbf_h = 40;
  o.repair_s = 3'600;
  o.restore_delay_s = 30;
  SimResult r = MustSimulate("1x4xV100", jobs, o);
  ASSERT_GE(r.fault_stops, 1);
  EXPECT_EQ(r.jobs[0].fault_stops, r.fault_stops);
  EXPECT_GE(r.faults, r.fault_stops);
  EXPECT_EQ(r.preemptions, 0);
  const double lost_s = r.gpu_hours_lost_to_faults * 3'600 / 4;
  EXPECT_GT(lost_s, 0);
  EXPECT_NEAR(r.jobs[0].finish_s, 100'000 + lost_s + 3'630.0 * r.fault_stops, 1e-3);
  // The restores are lost device time too.
  EXPECT_NEAR(r.gpu_hours_lost, r.gpu_hours_lost_to_faults + 4 * 30.0 * r.fault_stops / 3'600, 1e-9);

  // The same seed, the same failures; another seed, others.
  SimResult again = MustSimulate("1x4xV100", jobs, o);
  EXPECT_EQ(again.jobs[0].finish_s, r.jobs[0].finish_s);
  o.fault_seed = 2;
  EXPECT_NE(MustSimulate("1x4xV100", jobs, o).jobs[0].finish_s, r.jobs[0].finish_s);

  // With a checkpoint every 1,800 s of work, a failure loses less than that.
  o.checkpoint_interval_s = 1'800;
  SimResult ckpt = MustSimulate("1x4xV100", jobs, o);
  ASSERT_GE(ckpt.fault_stops, 1);
  EXPECT_LT(ckpt.gpu_hours_lost_to_faults * 3'600, ckpt.fault_stops * 4 * 1'800.0);
  EXPECT_LT(ckpt.jobs[0].finish_s, 100'000 + ckpt.fault_stops * (3'630.0 + 1'800));

  // No model, no faults.
  o.device_mtbf_h = 0;
  SimResult none = MustSimulate("1x4xV100", jobs, o);
  EXPECT_EQ(none.faults, 0);
  EXPECT_DOUBLE_EQ(none.jobs[0].finish_s, 100'000);
}

// A failure elsewhere moves nothing: only the failed node's jobs stop, and
// a node without devices never fails.
TEST(FaultSimTest, OnlyTheFailedNodesJobsStop) {
  const auto jobs = Finalized({Job(0, 4, 50'000), Job(0, 4, 50'000)});
  SimOptions o = Policy("default");
  o.device_mtbf_h = 20;  // a node fails every 5 h on average
  SimResult r = MustSimulate("2x4xV100", jobs, o);
  ASSERT_GE(r.faults, 1);
  int64_t stops = 0;
  for (const JobOutcome& j : r.jobs) stops += j.fault_stops;
  EXPECT_EQ(stops, r.fault_stops);
  EXPECT_LE(r.fault_stops, r.faults);  // one job per node: at most one stop per failure
  EXPECT_GE(r.jobs[0].finish_s, 0);
  EXPECT_GE(r.jobs[1].finish_s, 0);
  std::vector<core::Node> cpu_only(1);
  cpu_only[0].name = "cpu";
  cpu_only[0].cpu_milli = 8'000;
  cpu_only[0].memory_mib = 8'192;
  absl::StatusOr<SimResult> quiet = Simulate(cpu_only, {}, o);
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  EXPECT_EQ(quiet->faults, 0);
}

// Correlated failures: a rack takes all its nodes down at once, so both
// jobs of a two-node rack stop together, wait for one repair and come back
// together; node-hours down count both nodes.
TEST(FaultSimTest, ARackFailureStopsEveryNodeOfItsRackAtOnce) {
  const auto jobs = Finalized({Job(0, 4, 50'000), Job(0, 4, 50'000)});
  SimOptions o = Policy("default");
  o.rack_nodes = 2;
  o.rack_mtbf_h = 5;
  o.repair_s = 3'600;
  SimResult r = MustSimulate("2x4xV100", jobs, o);
  ASSERT_GE(r.rack_faults, 1);
  EXPECT_EQ(r.faults, 2 * r.rack_faults);  // every node of the rack, each time
  EXPECT_EQ(r.jobs[0].fault_stops, r.jobs[1].fault_stops);
  EXPECT_EQ(r.fault_stops, 2 * r.jobs[0].fault_stops);
  EXPECT_EQ(r.jobs[0].finish_s, r.jobs[1].finish_s);  // stopped and restarted together
  // Every repair ended before the jobs did is counted: 2 nodes x 1 h each.
  EXPECT_GE(r.node_hours_down, 2.0 * r.jobs[0].fault_stops - 1e-9);
  // Racks of one node each: the failures no longer line up.
  o.rack_nodes = 1;
  o.rack_mtbf_h = 10;
  SimResult single = MustSimulate("2x4xV100", jobs, o);
  EXPECT_EQ(single.faults, single.rack_faults);
}

// Repair times drawn with the configured mean: exponential and log-normal
// draws differ from run to run of the failures, but a seed repeats them.
TEST(FaultSimTest, RepairTimesMayBeDrawnAndASeedRepeatsThem) {
  const auto jobs = Finalized({Job(0, 4, 200'000)});
  SimOptions o = Policy("default");
  o.device_mtbf_h = 40;
  o.repair_s = 3'600;
  SimResult fixed = MustSimulate("1x4xV100", jobs, o);
  ASSERT_GE(fixed.faults, 2);
  // Fixed: every repair is the mean (the last may still be under way at the end).
  EXPECT_NEAR(fixed.node_hours_down, std::floor(fixed.node_hours_down + 1e-9), 1e-6);
  for (auto times : {SimOptions::RepairTimes::kExponential, SimOptions::RepairTimes::kLogNormal}) {
    o.repair_times = times;
    SimResult drawn = MustSimulate("1x4xV100", jobs, o);
    ASSERT_GE(drawn.faults, 2);
    EXPECT_GT(std::abs(drawn.node_hours_down - std::round(drawn.node_hours_down)), 1e-6);  // not whole hours
    EXPECT_EQ(MustSimulate("1x4xV100", jobs, o).node_hours_down, drawn.node_hours_down);
  }
  o.repair_sigma = 0;
  EXPECT_FALSE(Simulate(*ParseClusterSpec("1x4xV100"), jobs, o).ok());
}

}  // namespace
}  // namespace icos::sim
