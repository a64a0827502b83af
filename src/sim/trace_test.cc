#include "sim/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

namespace icos::sim {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const absl::Status& s) { return std::string(s.message()); }

// --- Philly -------------------------------------------------------------------------

TEST(PhillyTest, ParsesRowsAndRebasesTimeToTheEarliestJob) {
  std::istringstream in(
      "timestamp,duration,num_gpus,gpu_time,cluster\n"
      "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n"
      "2017-10-09 06:13:03,2951.0,8,23608.0,6214e9\n");
  auto jobs = ParsePhilly(in, "philly.csv");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  // Sorted by arrival: the 06:13:03 job first at t=0; 07:01:55 is 48 min 52 s later = 2932 s.
  EXPECT_EQ((*jobs)[0].id, 0);
  EXPECT_EQ((*jobs)[0].arrival_s, 0.0);
  EXPECT_EQ((*jobs)[0].gpus, 8);
  EXPECT_EQ((*jobs)[0].duration_s, 2951.0);
  EXPECT_EQ((*jobs)[0].queue, "6214e9");
  EXPECT_EQ((*jobs)[1].id, 1);
  EXPECT_EQ((*jobs)[1].arrival_s, 2932.0);
  EXPECT_EQ((*jobs)[1].queue, "11cb48");
}

TEST(PhillyTest, BadTimestampNamesFileAndLine) {
  std::istringstream in(
      "timestamp,duration,num_gpus,gpu_time,cluster\n"
      "2017-10-09 07:01:55,66.0,1,66.0,a\n"
      "\n"
      "yesterday,66.0,1,66.0,a\n");
  auto jobs = ParsePhilly(in, "p.csv");
  ASSERT_FALSE(jobs.ok());
  EXPECT_THAT(ErrorOf(jobs.status()), HasSubstr("p.csv:4: bad timestamp 'yesterday'"));
}

TEST(PhillyTest, WrongFieldCountNamesLine) {
  std::istringstream in("timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1\n");
  auto jobs = ParsePhilly(in, "p.csv");
  ASSERT_FALSE(jobs.ok());
  EXPECT_THAT(ErrorOf(jobs.status()), HasSubstr("p.csv:2: expected 5 fields, got 3"));
}

TEST(PhillyTest, RejectsZeroGpusAndNegativeDuration) {
  std::istringstream zero("timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,0,0,a\n");
  EXPECT_THAT(ErrorOf(ParsePhilly(zero, "p.csv").status()), HasSubstr("p.csv:2: bad num_gpus '0'"));
  std::istringstream neg("timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,-5,1,0,a\n");
  EXPECT_THAT(ErrorOf(ParsePhilly(neg, "p.csv").status()), HasSubstr("p.csv:2: negative duration"));
}

TEST(PhillyTest, WrongHeaderIsLineOne) {
  std::istringstream in("when,how_long\n");
  EXPECT_THAT(ErrorOf(ParsePhilly(in, "p.csv").status()), HasSubstr("p.csv:1: header"));
}

TEST(PhillyTest, MissingFileIsNotFound) {
  auto jobs = LoadPhilly("/nonexistent/philly.csv");
  EXPECT_EQ(jobs.status().code(), absl::StatusCode::kNotFound);
}

// --- openb ----------------------------------------------------------------------------

TEST(OpenbTest, ParsesNodes) {
  std::istringstream in(
      "sn,cpu_milli,memory_mib,gpu,model\n"
      "openb-node-0000,64000,262144,2,P100\n"
      "openb-node-0001,32000,131072,0,\n");
  auto nodes = ParseOpenbNodes(in, "nodes.csv");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].name, "openb-node-0000");
  EXPECT_EQ((*nodes)[0].cpu_milli, 64000);
  ASSERT_EQ((*nodes)[0].devices.size(), 2u);
  EXPECT_EQ((*nodes)[0].devices[0].model, "P100");
  EXPECT_TRUE((*nodes)[1].devices.empty());
}

TEST(OpenbTest, NodeWithGpusButNoModelNamesLine) {
  std::istringstream in("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,\n");
  EXPECT_THAT(ErrorOf(ParseOpenbNodes(in, "nodes.csv").status()),
              HasSubstr("nodes.csv:2: a node with GPUs needs a model"));
}

constexpr char kPodHeader[] =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";

TEST(OpenbTest, ParsesPodsWithSharesAndSpecs) {
  std::istringstream in(std::string(kPodHeader) +
                        "p0,12000,16384,1,1000,,LS,Running,100,1100,100\n"
                        "p1,6000,12288,1,460,V100M16|V100M32,BE,Running,50,550,150\n"
                        "p2,4000,8192,0,0,,BE,Pending,200,260,\n");
  auto pods = ParseOpenbPods(in, "pods.csv");
  ASSERT_TRUE(pods.ok()) << pods.status();
  ASSERT_EQ(pods->size(), 3u);
  // Sorted by creation: p1 (50), p0 (100), p2 (200); rebased to p1's creation.
  const SimJob& p1 = (*pods)[0];
  EXPECT_EQ(p1.name, "p1");
  EXPECT_EQ(p1.arrival_s, 0.0);
  EXPECT_EQ(p1.duration_s, 400.0);  // deleted 550 - scheduled 150
  EXPECT_EQ(p1.gpu_milli, 460);
  EXPECT_EQ(p1.models, (std::vector<std::string>{"V100M16", "V100M32"}));
  EXPECT_EQ(p1.queue, "BE");
  EXPECT_EQ((*pods)[1].arrival_s, 50.0);
  EXPECT_EQ((*pods)[1].duration_s, 1000.0);
  // Never scheduled: deletion - creation.
  EXPECT_EQ((*pods)[2].duration_s, 60.0);
  EXPECT_EQ((*pods)[2].gpus, 0);
}

TEST(OpenbTest, SharedMultiGpuPodNamesLine) {
  std::istringstream in(std::string(kPodHeader) +
                        "p0,1,1,1,1000,,LS,Running,0,10,0\np1,1,1,2,500,,LS,Running,0,10,0\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(in, "pods.csv").status()), HasSubstr("pods.csv:3: num_gpu 2 with gpu_milli 500"));
}

TEST(OpenbTest, DeletionBeforeStartNamesLine) {
  std::istringstream in(std::string(kPodHeader) + "p0,1,1,1,1000,,LS,Running,100,50,100\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(in, "pods.csv").status()), HasSubstr("pods.csv:2: deletion_time 50 is before"));
}

TEST(OpenbTest, NonNumericCpuNamesLine) {
  std::istringstream in(std::string(kPodHeader) + "p0,lots,1,1,1000,,LS,Running,0,10,0\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(in, "pods.csv").status()), HasSubstr("pods.csv:2: bad cpu_milli 'lots'"));
}

// FGD's workload variants ship fewer columns, in their own order: what is
// there is read, what is not is defaulted and said.
TEST(OpenbTest, APodListWithSomeColumnsTakesDefaultsAndSaysWhich) {
  std::istringstream in(
      "name,cpu_milli,num_gpu,gpu_milli,gpu_spec\n"
      "a,8000,1,500,A10|T4\n"
      "b,4000,2,1000,\n"
      "c,2000,0,0,\n");
  std::vector<std::string> defaulted;
  auto pods = ParseOpenbPods(in, "variant.csv", &defaulted);
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_THAT(defaulted,
              ::testing::ElementsAre("memory_mib", "qos", "creation_time", "deletion_time", "scheduled_time"));
  ASSERT_EQ(pods->size(), 3u);
  EXPECT_EQ((*pods)[0].name, "a");
  EXPECT_EQ((*pods)[0].gpu_milli, 500);
  EXPECT_EQ((*pods)[0].models, (std::vector<std::string>{"A10", "T4"}));
  EXPECT_EQ((*pods)[0].memory_mib, 0);
  EXPECT_EQ((*pods)[1].gpus, 2);
  EXPECT_EQ((*pods)[2].cpu_milli, 2000);
  EXPECT_EQ((*pods)[2].duration_s, 0.0);  // no deletion_time: no duration

  // Whole GPUs without a gpu_milli column; columns in another order.
  std::istringstream whole("num_gpu,cpu_milli\n4,1000\n");
  pods = ParseOpenbPods(whole, "whole.csv", &defaulted);
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_EQ((*pods)[0].gpus, 4);
  EXPECT_EQ((*pods)[0].gpu_milli, 1000);
  EXPECT_EQ((*pods)[0].name, "pod-0");
}

TEST(OpenbTest, AnUnknownOrRepeatedColumnIsRefusedByName) {
  std::istringstream unknown("name,cpu_milli,num_gpus\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(unknown, "v.csv").status()), HasSubstr("v.csv:1: unknown column 'num_gpus'"));
  std::istringstream twice("num_gpu,num_gpu\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(twice, "v.csv").status()), HasSubstr("column 'num_gpu' appears twice"));
  std::istringstream none("name,qos\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(none, "v.csv").status()), HasSubstr("not a pod list"));
  std::istringstream short_row("num_gpu,gpu_milli\n1\n");
  EXPECT_THAT(ErrorOf(ParseOpenbPods(short_row, "v.csv").status()), HasSubstr("v.csv:2: expected 2 fields, got 1"));
}

// --- Gavel ------------------------------------------------------------------------------

constexpr char kTputs[] = R"json({
  "k80": {"('ResNet-18 (batch size 16)', 1)": {"null": 2.0, "('A3C', 1)": [1.0, 1.0]},
          "('A3C', 1)": {"null": 1.0}},
  "v100": {"('ResNet-18 (batch size 16)', 1)": {"null": 8.0},
           "('ResNet-18 (batch size 16)', 2)": {"null": 15.0}},
  "v100_unconsolidated": {"ignored": 1}
})json";

TEST(GavelTest, ParsesThroughputs) {
  auto t = ParseGavelThroughputs(kTputs, "tput.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->at("K80").at({"ResNet-18 (batch size 16)", 1}), 2.0);
  EXPECT_EQ(t->at("V100").at({"ResNet-18 (batch size 16)", 2}), 15.0);
  EXPECT_EQ(t->at("K80").at({"A3C", 1}), 1.0);
}

TEST(GavelTest, BadKeyIsNamed) {
  auto t = ParseGavelThroughputs(R"({"k80": {"ResNet": {"null": 1.0}}})", "tput.json");
  EXPECT_THAT(ErrorOf(t.status()), HasSubstr("tput.json: k80: key \"ResNet\""));
}

TEST(GavelTest, NotJsonIsAnError) {
  EXPECT_THAT(ErrorOf(ParseGavelThroughputs("{", "tput.json").status()), HasSubstr("tput.json: not JSON"));
}

TEST(GavelTest, ParsesTraceWithDurationOnTheFastestType) {
  auto t = ParseGavelThroughputs(kTputs, "tput.json");
  ASSERT_TRUE(t.ok());
  std::istringstream in(
      "ResNet-18 (batch size 16)\tcd x && python3 main.py\t--data_dir\t1\t800\t6.000000\t1\n"
      "A3C\tcd y\t-n\t0\t100\t0.000000\t1\n");
  std::vector<SimJob> jobs;
  ASSERT_TRUE(ParseGavelTrace(in, "vc.trace", "vc", *t, jobs).ok());
  ASSERT_EQ(jobs.size(), 2u);
  // 800 steps at 8 steps/s on V100 (the fastest) = 100 s; K80 runs it at 2 steps/s.
  EXPECT_EQ(jobs[0].duration_s, 100.0);
  EXPECT_EQ(jobs[0].arrival_s, 6.0);
  EXPECT_EQ(jobs[0].throughput.size(), 2u);
  EXPECT_EQ(jobs[0].queue, "vc");
  // A3C was measured on K80 only: 100 steps / 1 step/s.
  EXPECT_EQ(jobs[1].duration_s, 100.0);
  EXPECT_EQ(jobs[1].models, (std::vector<std::string>{"K80"}));
}

TEST(GavelTest, UnmeasuredScaleScalesTheLargestMeasuredOneLinearly) {
  auto t = ParseGavelThroughputs(kTputs, "tput.json");
  ASSERT_TRUE(t.ok());
  // ResNet-18 at 4 GPUs: V100 measured up to 2 (15 steps/s) -> 30; K80 only at 1 (2) -> 8.
  // A3C at 2 GPUs: K80 at 1 (1 step/s) -> 2. 600 steps at 30 steps/s = 20 s.
  std::istringstream in("ResNet-18 (batch size 16)\tc\t-n\t0\t600\t0\t4\nA3C\tc\t-n\t0\t100\t0\t2\n");
  std::vector<SimJob> jobs;
  ASSERT_TRUE(ParseGavelTrace(in, "vc.trace", "vc", *t, jobs).ok());
  EXPECT_EQ(jobs[0].throughput.at("V100"), 30.0);
  EXPECT_EQ(jobs[0].throughput.at("K80"), 8.0);
  EXPECT_EQ(jobs[0].duration_s, 20.0);
  EXPECT_EQ(jobs[1].throughput.at("K80"), 2.0);
}

TEST(GavelTest, UnknownJobTypeNamesLine) {
  auto t = ParseGavelThroughputs(kTputs, "tput.json");
  ASSERT_TRUE(t.ok());
  std::istringstream in("A3C\tc\t-n\t0\t100\t0\t1\nBERT\tc\t-n\t0\t100\t0\t1\n");
  std::vector<SimJob> jobs;
  EXPECT_THAT(ErrorOf(ParseGavelTrace(in, "vc.trace", "vc", *t, jobs)),
              HasSubstr("vc.trace:2: no throughput for ('BERT', 1)"));
}

TEST(GavelTest, BadStepsNamesLine) {
  auto t = ParseGavelThroughputs(kTputs, "tput.json");
  ASSERT_TRUE(t.ok());
  std::istringstream in("A3C\tc\t-n\t0\tmany\t0\t1\n");
  std::vector<SimJob> jobs;
  EXPECT_THAT(ErrorOf(ParseGavelTrace(in, "vc.trace", "vc", *t, jobs)),
              HasSubstr("vc.trace:1: bad total_steps 'many'"));
}

// --- synthetic -----------------------------------------------------------------------------

TEST(SyntheticTest, IsDeterministicForASeed) {
  SyntheticSpec spec{.seed = 7, .jobs = 200};
  auto a = GenerateGavelSynthetic(spec);
  auto b = GenerateGavelSynthetic(spec);
  ASSERT_EQ(a.size(), 200u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].arrival_s, b[i].arrival_s);
    EXPECT_EQ(a[i].duration_s, b[i].duration_s);
    EXPECT_EQ(a[i].gpus, b[i].gpus);
  }
  spec.seed = 8;
  EXPECT_NE(GenerateGavelSynthetic(spec)[5].duration_s, a[5].duration_s);
}

TEST(SyntheticTest, FollowsGavelsDistribution) {
  // 20,000 jobs at 4 jobs/h: mean gap 900 s. Durations lie in [60*10^1.5, 60*10^4]
  // = [1897 s, 600000 s]; 80% are short (< 60000 s). GPU shares 70/10/15/5%.
  SyntheticSpec spec{.seed = 1, .jobs = 20'000, .jobs_per_hour = 4.0};
  auto jobs = GenerateGavelSynthetic(spec);
  int counts[9] = {};
  int short_jobs = 0;
  for (const SimJob& j : jobs) {
    ASSERT_GE(j.duration_s, 60 * std::pow(10.0, 1.5) - 1e-6);
    ASSERT_LE(j.duration_s, 600'000.0 + 1e-6);
    if (j.duration_s < 60'000.0) ++short_jobs;
    ASSERT_TRUE(j.gpus == 1 || j.gpus == 2 || j.gpus == 4 || j.gpus == 8);
    ++counts[j.gpus];
  }
  EXPECT_NEAR(short_jobs / 20'000.0, 0.8, 0.02);
  EXPECT_NEAR(counts[1] / 20'000.0, 0.70, 0.02);
  EXPECT_NEAR(counts[2] / 20'000.0, 0.10, 0.02);
  EXPECT_NEAR(counts[4] / 20'000.0, 0.15, 0.02);
  EXPECT_NEAR(counts[8] / 20'000.0, 0.05, 0.02);
  EXPECT_NEAR(jobs.back().arrival_s / 19'999.0, 900.0, 30.0);
}

TEST(SyntheticTest, DrawsJobTypesFromThroughputs) {
  auto t = ParseGavelThroughputs(kTputs, "tput.json");
  ASSERT_TRUE(t.ok());
  auto jobs = GenerateGavelSynthetic({.seed = 3, .jobs = 50, .single_gpu = true}, &*t);
  for (const SimJob& j : jobs) {
    EXPECT_EQ(j.gpus, 1);
    EXPECT_FALSE(j.throughput.empty());
    EXPECT_TRUE(j.name == "A3C" || j.name == "ResNet-18 (batch size 16)") << j.name;
  }
}

TEST(SyntheticTest, RunTimeIsDrawnOnTheV100) {
  // Gavel states a job's run time on the V100. A type twice as fast on the P100
  // takes half that there, its fastest model; one the V100 never measured keeps it.
  auto faster_elsewhere = ParseGavelThroughputs(
      R"json({"v100": {"('Rec', 1)": {"null": 2.0}}, "p100": {"('Rec', 1)": {"null": 4.0}}})json", "tput.json");
  auto k80_only = ParseGavelThroughputs(R"json({"k80": {"('A3C', 1)": {"null": 3.0}}})json", "tput.json");
  ASSERT_TRUE(faster_elsewhere.ok() && k80_only.ok());
  const SyntheticSpec spec{.seed = 5, .jobs = 1, .single_gpu = true};
  const double run_time_s = GenerateGavelSynthetic(spec)[0].duration_s;
  EXPECT_DOUBLE_EQ(GenerateGavelSynthetic(spec, &*faster_elsewhere)[0].duration_s, run_time_s / 2);
  EXPECT_DOUBLE_EQ(GenerateGavelSynthetic(spec, &*k80_only)[0].duration_s, run_time_s);
}

// --- real traces, when present ---------------------------------------------------------------

std::string TracesDir() { return FindTracesDir(); }

TEST(RealTraceTest, PhillyHasThePublishedShape) {
  const std::string dir = TracesDir();
  if (dir.empty()) GTEST_SKIP() << "no traces: set ICOS_TRACES or put them at ../shared/data/traces";
  auto jobs = LoadPhilly(dir + "/philly/philly.csv");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  // README: 82,247 jobs, mean duration 3.65 h.
  EXPECT_EQ(jobs->size(), 82'247u);
  double sum = 0;
  for (const SimJob& j : *jobs) sum += j.duration_s;
  EXPECT_NEAR(sum / jobs->size() / 3600.0, 3.65, 0.01);
}

TEST(RealTraceTest, OpenbHasThePublishedShape) {
  const std::string dir = TracesDir();
  if (dir.empty()) GTEST_SKIP() << "no traces: set ICOS_TRACES or put them at ../shared/data/traces";
  auto nodes = LoadOpenbNodes(dir + "/alibaba-openb/openb_node_list_gpu_node.csv");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  auto pods = LoadOpenbPods(dir + "/alibaba-openb/openb_pod_list_default.csv");
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_EQ(nodes->size(), 1'213u);
  EXPECT_EQ(pods->size(), 8'152u);
}

TEST(RealTraceTest, GavelTraceLoads) {
  const std::string dir = TracesDir();
  if (dir.empty()) GTEST_SKIP() << "no traces: set ICOS_TRACES or put them at ../shared/data/traces";
  auto t = LoadGavelThroughputs(dir + "/gavel/simulation_throughputs.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size(), 3u);
  auto jobs = LoadGavelTraceDir(dir + "/gavel/msr-seed0", *t);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  // 16 files, 15,264 lines, one job each.
  EXPECT_EQ(jobs->size(), 15'264u);
}

}  // namespace
}  // namespace icos::sim
