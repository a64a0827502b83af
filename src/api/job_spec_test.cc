#include "api/job_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace icos::api {
namespace {

using ::testing::HasSubstr;

// The message of a spec that must fail to parse, or a marker when it parsed.
std::string ErrorOf(const std::string& text, const SpecLimits& limits = {}) {
  absl::StatusOr<JobSpec> spec = ParseJobSpec(text, limits);
  if (spec.ok()) return "<parsed OK>";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  return std::string(spec.status().message());
}

JobSpec MustParse(const std::string& text) {
  absl::StatusOr<JobSpec> spec = ParseJobSpec(text);
  EXPECT_TRUE(spec.ok()) << spec.status() << "\n" << text;
  return spec.ok() ? *spec : JobSpec{};
}

// A one-task spec whose task has `task_fields` (YAML lines, indented by the
// caller as part of the task mapping) after its command.
std::string OneTask(const std::string& task_fields, const std::string& job_fields = "") {
  return absl::StrCat("name: demo\n", job_fields, "tasks:\n  - command: [sleep, \"1\"]\n", task_fields);
}

// The example at the top of job_spec.h, without its comment markers.
std::string HeaderExample() {
  std::ifstream in(ICOS_JOB_SPEC_HEADER);
  std::string line;
  std::string yaml;
  bool inside = false;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "// Example (YAML):")) {
      inside = true;
    } else if (inside && absl::StartsWith(line, "//   ")) {
      absl::StrAppend(&yaml, line.substr(5), "\n");
    } else if (inside) {
      break;
    }
  }
  return yaml;
}

// --- Valid specs ------------------------------------------------------------------

TEST(ParseJobSpecTest, HeaderExampleParsesToExpectedSpec) {
  const std::string yaml = HeaderExample();
  ASSERT_THAT(yaml, HasSubstr("ddp-mnist"));
  JobSpec want;
  want.name = "ddp-mnist";
  want.queue = "default";
  want.priority = 0;
  want.framework = Framework::kPyTorch;
  want.restart = RestartPolicy::kOnFailure;
  want.max_retries = 2;
  want.time_limit_s = 2 * 3600;
  want.runtime_estimate_s = 10 * 60;
  want.preemptible = true;
  want.max_disconnect_s = 10 * 60;
  want.env = {{"LOG_LEVEL", "info"}};
  want.dependencies.after_ok = {12, 13};
  want.dependencies.after_any = {14};
  want.dependencies.after_not_ok = {15};
  want.array = "0-9%4";
  want.array_count = 10;
  want.array_throttle = 4;
  want.notify = {"http://hooks.example:8080/icos", kNotifyAll};
  TaskSpec t;
  t.name = "worker";
  t.replicas = 2;
  t.min_available = 2;
  t.command = {"python3", "train.py", "--epochs", "3"};
  t.workdir = "examples/pytorch-ddp";
  t.env = {{"FOO", "bar"}};
  t.cpu_milli = 1000;
  t.memory_mib = 2048;
  t.devices = 1;
  t.device_wishes = {{"nvidia", "A100-80G", 1.0}, {"ascend", "", 0.0}};
  t.affinity = core::Affinity::kSameNode;
  t.node_selector = {{"zone", "a"}};
  want.tasks = {t};
  EXPECT_EQ(MustParse(yaml), want);
}

TEST(ParseJobSpecTest, JsonFormParsesLikeYaml) {
  const std::string json = R"({"name": "ddp-mnist", "framework": "pytorch",
    "restart": {"policy": "OnFailure", "max_retries": 2}, "time_limit": "2h", "runtime_estimate": "10m",
    "preemptible": true, "max_disconnect": "10m", "env": {"LOG_LEVEL": "info"},
    "array": "0-9%4",
    "dependencies": {"after_ok": [12, 13], "after_any": [14], "after_not_ok": [15], "if_unmet": "cancel"},
    "notify": {"url": "http://hooks.example:8080/icos", "on": ["start", "end", "fail", "preempt"]},
    "tasks": [{"name": "worker", "replicas": 2, "min_available": 2,
               "command": ["python3", "train.py", "--epochs", "3"], "workdir": "examples/pytorch-ddp",
               "env": {"FOO": "bar"}, "resources": {"cpu": 1, "memory": "2Gi", "devices": 1},
               "devices": [{"vendor": "nvidia", "model": "A100-80G", "throughput": 1.0}, {"vendor": "ascend"}],
               "affinity": "same-node", "node_selector": {"zone": "a"}}]})";
  EXPECT_EQ(MustParse(json), MustParse(HeaderExample()));
}

TEST(ParseJobSpecTest, MaxDisconnectIsAtLeastTenSeconds) {
  EXPECT_EQ(MustParse(OneTask("", "max_disconnect: 90s\n")).max_disconnect_s, 90);
  EXPECT_THAT(ErrorOf(OneTask("", "max_disconnect: 5s\n")), HasSubstr("must be at least 10s"));
}

// What one job may cost is bounded: its tasks, and the bytes its tasks'
// assignments carry (a 0.9 MB environment on 100 replicas cost 210 MB).
TEST(ParseJobSpecTest, OneJobsCostIsBounded) {
  EXPECT_EQ(ErrorOf("tasks: [{command: [x], replicas: 3000}, {command: [y], replicas: 2000}]"),
            "tasks: 5000 tasks (replicas across all task groups) is above this cluster's limit of 4096 per job; "
            "split the work (an array of jobs) or ask an admin to raise it (icos server --max-job-tasks)");
  SpecLimits raised;
  raised.max_job_tasks = 20'000;
  EXPECT_EQ(ErrorOf("tasks: [{command: [x], replicas: 6000}, {command: [y], replicas: 5000}]", raised), "<parsed OK>");
  // 100 replicas with 0.6 MiB of environment each: ~60 MiB.
  std::string env = "env: {BIG: " + std::string(600 * 1024, 'x') + "}\n";
  EXPECT_THAT(ErrorOf(env + "tasks: [{command: [x], replicas: 100}]"),
              HasSubstr("would carry about 59 MiB of commands, environment and rank lists in all, above this "
                        "cluster's limit of 48 MiB per job"));
  EXPECT_EQ(ErrorOf(env + "tasks: [{command: [x], replicas: 10}]"), "<parsed OK>");
  // Every MPI rank carries the list of all ranks: 1,200 fit, 1,300 do not.
  EXPECT_EQ(ErrorOf("framework: mpi\ntasks: [{command: [x], replicas: 1200}]"), "<parsed OK>");
  EXPECT_THAT(ErrorOf("framework: mpi\ntasks: [{command: [x], replicas: 1300}]"), HasSubstr("limit of 48 MiB"));
  // PyTorch ranks need only the rendezvous address: as many as the task limit allows.
  EXPECT_EQ(ErrorOf("framework: pytorch\ntasks: [{command: [x], replicas: 10000}]", raised), "<parsed OK>");
}

TEST(ParseJobSpecTest, MinimalSpecTakesDefaults) {
  const JobSpec spec = MustParse("tasks: [{command: [sleep, \"1\"]}]");
  EXPECT_EQ(spec.queue, "default");
  EXPECT_EQ(spec.priority, 0);
  EXPECT_EQ(spec.framework, Framework::kNone);
  EXPECT_EQ(spec.restart, RestartPolicy::kNever);
  EXPECT_TRUE(spec.preemptible);
  ASSERT_EQ(spec.tasks.size(), 1u);
  EXPECT_EQ(spec.tasks[0].replicas, 1);
  EXPECT_EQ(spec.tasks[0].cpu_milli, 1000);
  EXPECT_EQ(spec.tasks[0].memory_mib, 1024);
  EXPECT_EQ(spec.tasks[0].devices, 0);
}

TEST(ParseJobSpecTest, JobNameDefaultsToSanitizedProgramName) {
  EXPECT_EQ(MustParse("tasks: [{command: [/usr/bin/Train_GPT.py, x]}]").name, "train-gpt-py");
}

TEST(ParseJobSpecTest, JobNameFallsBackToJobWhenProgramHasNoUsableCharacters) {
  EXPECT_EQ(MustParse("tasks: [{command: [\"./__\"]}]").name, "job");
}

TEST(ParseJobSpecTest, TaskNamesDefaultToTheirIndex) {
  const JobSpec spec = MustParse("tasks: [{name: ps, command: [a]}, {command: [b]}]");
  ASSERT_EQ(spec.tasks.size(), 2u);
  EXPECT_EQ(spec.tasks[0].name, "ps");
  EXPECT_EQ(spec.tasks[1].name, "task1");
}

TEST(ParseJobSpecTest, NullValuesKeepDefaults) {
  const JobSpec spec = MustParse(OneTask("    workdir:\n    resources: ~\n", "queue: null\n"));
  EXPECT_EQ(spec.queue, "default");
  EXPECT_EQ(spec.tasks[0].workdir, "");
  EXPECT_EQ(spec.tasks[0].cpu_milli, 1000);
}

TEST(ParseJobSpecTest, EnvNumbersAndBooleansBecomeTheirText) {
  const JobSpec spec = MustParse(OneTask("    env: {A: 1.50, B: true, C: \"\"}\n"));
  EXPECT_EQ(spec.tasks[0].env, (std::map<std::string, std::string>{{"A", "1.50"}, {"B", "true"}, {"C", ""}}));
}

TEST(ParseJobSpecTest, CommandArgumentsMayBeNumbers) {
  EXPECT_EQ(MustParse("tasks: [{command: [sleep, 10]}]").tasks[0].command, (std::vector<std::string>{"sleep", "10"}));
}

TEST(ParseJobSpecTest, VendorIsLowerCased) {
  const JobSpec spec = MustParse(OneTask("    resources: {devices: 1}\n    devices: [{vendor: NVIDIA}]\n"));
  EXPECT_EQ(spec.tasks[0].device_wishes[0].vendor, "nvidia");
}

TEST(ParseJobSpecTest, DeviceShareAcceptsPercentOrNumber) {
  EXPECT_EQ(MustParse(OneTask("    resources: {device_share: 50%}\n")).tasks[0].device_percent, 50);
  EXPECT_EQ(MustParse(OneTask("    resources: {device_share: 25}\n")).tasks[0].device_percent, 25);
}

TEST(ParseJobSpecTest, DeviceMemoryAloneIsAFractionalRequest) {
  const JobSpec spec = MustParse(OneTask("    resources: {device_memory: 4Gi}\n"));
  EXPECT_EQ(spec.tasks[0].device_memory_mib, 4096);
  EXPECT_EQ(spec.tasks[0].devices, 0);
}

TEST(ParseJobSpecTest, AnchorsAndAliasesWork) {
  const JobSpec spec = MustParse(
      "env: &common {A: \"1\"}\n"
      "tasks:\n"
      "  - {name: a, command: [x], env: *common}\n"
      "  - {name: b, command: [y], env: *common}\n");
  EXPECT_EQ(spec.tasks[1].env, spec.env);
}

TEST(ParseJobSpecTest, NegativePriorityIsAllowed) { EXPECT_EQ(MustParse(OneTask("", "priority: -5\n")).priority, -5); }

// --- Error messages: exact for a few ---------------------------------------------

TEST(ParseJobSpecErrorTest, BadQuantityNamesPathAndLine) {
  const std::string yaml =
      "name: demo\n"            // 1
      "tasks:\n"                // 2
      "  - name: worker\n"      // 3
      "    command: [sleep]\n"  // 4
      "    resources:\n"        // 5
      "      cpu: 1\n"          // 6
      "      memory: 2Gx\n";    // 7
  EXPECT_EQ(ErrorOf(yaml), "tasks[0].resources.memory (line 7): '2Gx' is not a quantity; use e.g. 512Mi or 2Gi");
}

TEST(ParseJobSpecErrorTest, UnknownFieldListsKnownFields) {
  EXPECT_EQ(ErrorOf(OneTask("    resources:\n      gpus: 1\n")),
            "tasks[0].resources.gpus (line 5): unknown field; known: cpu, memory, devices, device_share, "
            "device_memory");
}

TEST(ParseJobSpecErrorTest, MissingTasksIsExplained) {
  EXPECT_EQ(ErrorOf("name: demo\n"),
            "tasks (line 1): required: list at least one task, e.g. tasks: [{command: [\"python3\", \"train.py\"]}]");
}

TEST(ParseJobSpecErrorTest, CommandAsStringSuggestsTheList) {
  EXPECT_EQ(ErrorOf("tasks:\n  - command: python3 train.py --epochs 3\n"),
            "tasks[0].command (line 2): expected a list of arguments, got text; write it as a list: "
            "[\"python3\",\"train.py\",\"--epochs\",\"3\"]");
}

TEST(ParseJobSpecErrorTest, YamlSyntaxErrorGivesLineAndColumn) {
  EXPECT_EQ(ErrorOf("name: demo\ntasks: [\n"),
            "spec (line 3, column 1): not valid YAML or JSON: end of sequence flow not found");
}

// --- Error messages: the path and the gist ----------------------------------------

TEST(ParseJobSpecErrorTest, UnknownTopLevelField) {
  EXPECT_THAT(ErrorOf(OneTask("", "gpus: 4\n")), HasSubstr("gpus (line 2): unknown field; known: name, queue"));
}

TEST(ParseJobSpecErrorTest, MergeKeysGetAHint) {
  EXPECT_THAT(ErrorOf("base: &b {command: [x]}\ntasks: [{<<: *b}]\n"), HasSubstr("unknown field"));
  EXPECT_THAT(ErrorOf("tasks: [{<<: {command: [x]}}]\n"), HasSubstr("merge keys are not supported"));
}

TEST(ParseJobSpecErrorTest, EmptyInput) { EXPECT_THAT(ErrorOf(""), HasSubstr("spec: the spec is empty")); }

TEST(ParseJobSpecErrorTest, ScalarDocument) {
  EXPECT_THAT(ErrorOf("hello"), HasSubstr("spec (line 1): expected a mapping of job fields"));
}

TEST(ParseJobSpecErrorTest, SeveralDocuments) {
  EXPECT_EQ(ErrorOf("tasks: [{command: [a]}]\n---\ntasks: [{command: [b]}]\n"),
            "spec (line 2, column 1): unexpected text after the end of the spec (a second YAML document?); submit "
            "one job per spec");
}

TEST(ParseJobSpecErrorTest, TextAfterFlowMapping) {
  // yaml-cpp's own LoadAll loops forever on this input.
  EXPECT_THAT(ErrorOf("{tasks: [{command: [a]}]}, x"), HasSubstr("unexpected text after the end of the spec"));
}

TEST(ParseJobSpecTest, TrailingDocumentMarkerIsHarmless) {
  EXPECT_EQ(MustParse("tasks: [{command: [a]}]\n---\n").tasks.size(), 1u);
}

TEST(ParseJobSpecErrorTest, DuplicateField) {
  EXPECT_THAT(ErrorOf(OneTask("    replicas: 1\n    replicas: 2\n")),
              HasSubstr("tasks[0].replicas (line 5): duplicate field"));
}

TEST(ParseJobSpecErrorTest, EmptyTaskList) { EXPECT_THAT(ErrorOf("tasks: []"), HasSubstr("at least one task")); }

TEST(ParseJobSpecErrorTest, TasksNotAList) {
  EXPECT_THAT(ErrorOf("tasks: {command: [x]}"), HasSubstr("tasks (line 1): expected a list of tasks, got a mapping"));
}

TEST(ParseJobSpecErrorTest, MissingCommand) {
  EXPECT_THAT(ErrorOf("tasks:\n  - name: a\n"), HasSubstr("tasks[0].command (line 2): required"));
}

TEST(ParseJobSpecErrorTest, EmptyCommand) {
  EXPECT_THAT(ErrorOf("tasks: [{command: []}]"), HasSubstr("tasks[0].command (line 1): must not be empty"));
}

TEST(ParseJobSpecErrorTest, EmptyProgramName) {
  EXPECT_THAT(ErrorOf("tasks: [{command: [\"\"]}]"), HasSubstr("tasks[0].command[0] (line 1): the program name"));
}

TEST(ParseJobSpecErrorTest, NestedListInCommand) {
  EXPECT_THAT(ErrorOf("tasks: [{command: [a, [b]]}]"), HasSubstr("tasks[0].command[1] (line 1): expected text"));
}

TEST(ParseJobSpecErrorTest, ZeroReplicas) {
  EXPECT_THAT(ErrorOf(OneTask("    replicas: 0\n")),
              HasSubstr("tasks[0].replicas (line 4): 0 is out of range; use 1 to 100000"));
}

TEST(ParseJobSpecErrorTest, FractionalReplicas) {
  EXPECT_THAT(ErrorOf(OneTask("    replicas: 1.5\n")), HasSubstr("'1.5' is not a whole number"));
}

TEST(ParseJobSpecErrorTest, MinAvailableAboveReplicas) {
  EXPECT_THAT(ErrorOf(OneTask("    replicas: 2\n    min_available: 3\n")),
              HasSubstr("tasks[0].min_available (line 5): 3 is more than replicas (2)"));
}

TEST(ParseJobSpecErrorTest, UppercaseJobName) {
  EXPECT_THAT(ErrorOf("name: DDP\ntasks: [{command: [a]}]"),
              HasSubstr("name (line 1): 'DDP' is not a valid name; use 1-63 lowercase letters"));
}

TEST(ParseJobSpecErrorTest, TaskNameEndingInDash) {
  EXPECT_THAT(ErrorOf("tasks: [{name: worker-, command: [a]}]"), HasSubstr("tasks[0].name (line 1): 'worker-'"));
}

TEST(ParseJobSpecErrorTest, NameOfSixtyFourCharacters) {
  EXPECT_THAT(ErrorOf(absl::StrCat("name: ", std::string(64, 'a'), "\ntasks: [{command: [a]}]")),
              HasSubstr("is not a valid name"));
}

TEST(ParseJobSpecErrorTest, DuplicateTaskNames) {
  EXPECT_THAT(ErrorOf("tasks: [{name: task1, command: [a]}, {command: [b]}]"),
              HasSubstr("tasks[1].name (line 1): 'task1' is already the name of tasks[0]"));
}

TEST(ParseJobSpecErrorTest, UnknownFramework) {
  EXPECT_THAT(ErrorOf(OneTask("", "framework: jax\n")),
              HasSubstr("framework (line 2): 'jax' is not a framework; use one of none, pytorch, mpi, deepspeed, "
                        "mindspore, paddle, tensorflow"));
}

TEST(ParseJobSpecErrorTest, UnknownAffinity) {
  EXPECT_THAT(ErrorOf(OneTask("    affinity: near\n")),
              HasSubstr("tasks[0].affinity (line 4): 'near' is not an affinity; use one of none, same-island"));
}

TEST(ParseJobSpecErrorTest, UnknownRestartPolicy) {
  EXPECT_THAT(ErrorOf(OneTask("", "restart: {policy: Sometimes}\n")),
              HasSubstr("restart.policy (line 2): 'Sometimes' is not a restart policy; use one of Never, OnFailure, "
                        "Always"));
}

TEST(ParseJobSpecErrorTest, TooManyRetries) {
  EXPECT_THAT(ErrorOf(OneTask("", "restart: {policy: OnFailure, max_retries: 101}\n")),
              HasSubstr("restart.max_retries (line 2): 101 is out of range; use 0 to 100"));
}

TEST(ParseJobSpecErrorTest, RetriesWithoutOnFailure) {
  EXPECT_THAT(ErrorOf(OneTask("", "restart: {max_retries: 3}\n")), HasSubstr("needs policy: OnFailure"));
}

TEST(ParseJobSpecErrorTest, NotABoolean) {
  EXPECT_THAT(ErrorOf(OneTask("", "preemptible: maybe\n")),
              HasSubstr("preemptible (line 2): expected true or false, got 'maybe'"));
}

TEST(ParseJobSpecErrorTest, BadEnvName) {
  EXPECT_THAT(ErrorOf(OneTask("    env: {1X: a}\n")),
              HasSubstr("tasks[0].env.1X (line 4): '1X' is not a valid variable"));
}

TEST(ParseJobSpecErrorTest, EnvWithoutValue) {
  EXPECT_THAT(ErrorOf(OneTask("", "env:\n  A:\n")), HasSubstr("env.A (line 3): has no value"));
}

TEST(ParseJobSpecErrorTest, EnvListValue) {
  EXPECT_THAT(ErrorOf(OneTask("", "env: {A: [1]}\n")), HasSubstr("env.A (line 2): expected text, got a list"));
}

TEST(ParseJobSpecErrorTest, DevicesWithDeviceShare) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {devices: 1, device_share: 50%}\n")),
              HasSubstr("tasks[0].resources.device_share (line 4): cannot be combined with devices"));
}

TEST(ParseJobSpecErrorTest, DevicesWithDeviceMemory) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {devices: 2, device_memory: 4Gi}\n")),
              HasSubstr("tasks[0].resources.device_memory (line 4): cannot be combined with devices"));
}

TEST(ParseJobSpecErrorTest, DeviceShareOutOfRange) {
  for (const char* share : {"0", "100", "150%", "-5%", "99999999999999999999%"}) {
    EXPECT_THAT(ErrorOf(OneTask(absl::StrCat("    resources: {device_share: \"", share, "\"}\n"))),
                HasSubstr("is out of range; use 1% to 99%"))
        << share;
  }
}

TEST(ParseJobSpecErrorTest, DeviceShareNotAPercentage) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {device_share: half}\n")), HasSubstr("'half' is not a share"));
}

TEST(ParseJobSpecErrorTest, ModelWithoutVendor) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {devices: 1}\n    devices: [{model: A100}]\n")),
              HasSubstr("tasks[0].devices[0].vendor (line 5): required: model 'A100' needs its vendor"));
}

TEST(ParseJobSpecErrorTest, NanThroughput) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {devices: 1}\n    devices: [{vendor: x, throughput: .nan}]\n")),
              HasSubstr("tasks[0].devices[0].throughput (line 5): '.nan' is not a throughput"));
}

TEST(ParseJobSpecErrorTest, DeviceTypesWithoutDeviceRequest) {
  EXPECT_THAT(ErrorOf(OneTask("    devices: [{vendor: nvidia}]\n")),
              HasSubstr("tasks[0].devices (line 4): device types are listed but the task asks for no device"));
}

TEST(ParseJobSpecErrorTest, NegativeCpu) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {cpu: -1}\n")),
              HasSubstr("tasks[0].resources.cpu (line 4): '-1' is negative"));
}

TEST(ParseJobSpecErrorTest, ZeroCpu) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {cpu: 0}\n")), HasSubstr("must be more than zero"));
}

TEST(ParseJobSpecErrorTest, ZeroMemory) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {memory: 0Gi}\n")), HasSubstr("must be more than zero"));
}

TEST(ParseJobSpecErrorTest, BareSmallMemoryNumberIsQuestioned) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {memory: 512}\n")),
              HasSubstr("'512' bytes is less than 1Mi; did you mean 512Mi or 512Gi?"));
}

TEST(ParseJobSpecErrorTest, BadNodeSelectorLabel) {
  EXPECT_THAT(ErrorOf(OneTask("    node_selector: {\"bad key\": a}\n")), HasSubstr("is not a valid label"));
}

TEST(ParseJobSpecErrorTest, RuntimeEstimateLongerThanTimeLimit) {
  EXPECT_THAT(ErrorOf(OneTask("", "time_limit: 1h\nruntime_estimate: 2h\n")),
              HasSubstr("time_limit (line 2): 1h is shorter than runtime_estimate (2h)"));
}

TEST(ParseJobSpecErrorTest, BadDuration) {
  EXPECT_THAT(ErrorOf(OneTask("", "time_limit: 2 hours\n")),
              HasSubstr("time_limit (line 2): '2 hours' is not a duration; use e.g. 90s, 10m, 2h or 1d"));
}

TEST(ParseJobSpecErrorTest, NonUtf8Input) {
  EXPECT_THAT(ErrorOf("name: demo\ntasks: [{command: [\"\xff\"]}]"),
              HasSubstr("spec (line 2): the text is not valid UTF-8"));
}

TEST(ParseJobSpecErrorTest, NulByteInInput) {
  EXPECT_THAT(ErrorOf(std::string("tasks: [{command: [a]}]\0", 24)), HasSubstr("contains a NUL byte"));
}

TEST(ParseJobSpecErrorTest, EscapedNulInText) {
  EXPECT_THAT(ErrorOf("tasks: [{command: [\"a\\0b\"]}]"), HasSubstr("must not contain NUL"));
}

TEST(ParseJobSpecErrorTest, NonTextFieldName) {
  EXPECT_THAT(ErrorOf("? [a]\n: 1\ntasks: [{command: [a]}]\n"), HasSubstr("field names must be plain text"));
}

// --- Limits -----------------------------------------------------------------------

TEST(SpecLimitsTest, OversizedBodyIsRefusedBeforeParsing) {
  SpecLimits limits;
  limits.max_bytes = 16;
  // Not even valid YAML: the size check must come first.
  EXPECT_EQ(ErrorOf(std::string(17, '['), limits), "spec: 17 bytes is above the limit of 16 bytes");
}

TEST(SpecLimitsTest, TooManyReplicas) {
  EXPECT_THAT(ErrorOf(OneTask("    replicas: 100001\n")), HasSubstr("100001 is out of range; use 1 to 100000"));
}

TEST(SpecLimitsTest, HugeIntegerIsOutOfRange) {
  EXPECT_THAT(ErrorOf(OneTask("    replicas: 99999999999999999999999\n")),
              HasSubstr("'99999999999999999999999' is out of range"));
}

TEST(SpecLimitsTest, AbsurdMemory) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {memory: 65Ti}\n")),
              HasSubstr("tasks[0].resources.memory (line 4): '65Ti' is above the limit of 64Ti"));
}

TEST(SpecLimitsTest, MemoryBeyondInt64) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {memory: 99999999999Ei}\n")), HasSubstr("is too large"));
}

TEST(SpecLimitsTest, AbsurdCpu) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {cpu: 2000}\n")), HasSubstr("above the limit of 1024 CPUs"));
}

TEST(SpecLimitsTest, TooManyDevices) {
  EXPECT_THAT(ErrorOf(OneTask("    resources: {devices: 1025}\n")), HasSubstr("1025 is out of range; use 0 to 1024"));
}

TEST(SpecLimitsTest, PriorityAboveLimit) {
  EXPECT_THAT(ErrorOf(OneTask("", "priority: 1000001\n")), HasSubstr("priority (line 2): 1000001 is out of range"));
}

TEST(SpecLimitsTest, TooManyTasks) {
  std::string yaml = "tasks:\n";
  for (int i = 0; i < 65; ++i) absl::StrAppend(&yaml, "  - {command: [a]}\n");
  EXPECT_THAT(ErrorOf(yaml), HasSubstr("tasks (line 1): 65 tasks is above the limit of 64"));
}

TEST(SpecLimitsTest, DurationAboveTenYears) {
  EXPECT_THAT(ErrorOf(OneTask("", "time_limit: 4000d\n")), HasSubstr("is above the limit of 3650d"));
}

TEST(SpecLimitsTest, DeepFlowNestingIsRefused) {
  const std::string yaml = absl::StrCat("tasks: ", std::string(100'000, '['), std::string(100'000, ']'));
  EXPECT_THAT(ErrorOf(yaml), HasSubstr("spec (line 1): nested more than 64 levels deep"));
}

TEST(SpecLimitsTest, DeepBlockNestingIsRefused) {
  std::string yaml;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&yaml, std::string(i, ' '), "a:\n");
  EXPECT_THAT(ErrorOf(yaml), HasSubstr("spec (line 65): nested more than 64 levels deep"));
}

TEST(SpecLimitsTest, DeepDashNestingIsRefused) {
  std::string yaml = "tasks:\n";
  for (int i = 0; i < 100; ++i) yaml += "- ";
  yaml += "x\n";
  EXPECT_THAT(ErrorOf(yaml), HasSubstr("nested more than 64 levels deep"));
}

TEST(SpecLimitsTest, BracketsInQuotesDoNotCountAsNesting) {
  const std::string arg = std::string(100, '[');
  EXPECT_EQ(MustParse(absl::StrCat("tasks: [{command: [echo, \"", arg, "\", '", arg, "']}]")).tasks[0].command[1], arg);
}

TEST(SpecLimitsTest, AliasExpansionIsBounded) {
  // A 512 KiB string aliased 100,000 times is under 1 MiB of YAML but would
  // expand to about 50 GB. The budget is 4 MiB (4 x max_bytes) + 4 KiB: env.A
  // and command[0..6] take 8 x 512 KiB = 4 MiB, so command[7] is refused. An
  // alias reports the line of its anchor.
  std::string yaml = absl::StrCat("env: {A: &s \"", std::string(512 * 1024, 'x'), "\"}\ntasks: [{command: [");
  for (int i = 0; i < 100'000; ++i) absl::StrAppend(&yaml, i ? ",*s" : "*s");
  absl::StrAppend(&yaml, "]}]\n");
  ASSERT_LT(yaml.size(), SpecLimits().max_bytes);
  EXPECT_THAT(ErrorOf(yaml),
              HasSubstr("tasks[0].command[7] (line 1): the spec expands to more than 4 times max_bytes"));
}

TEST(SpecLimitsTest, SelfReferencingAliasIsRefused) {
  EXPECT_THAT(ErrorOf("tasks: &t [*t]\n"), HasSubstr("tasks[0] (line 1): expected a task"));
}

// --- Quantity parsers ---------------------------------------------------------------

struct QuantityCase {
  const char* text;
  int64_t want;
};

TEST(ParseCpuMilliTest, AcceptsCoresAndMillicores) {
  const QuantityCase cases[] = {{"2", 2000}, {"0.5", 500},  {"500m", 500}, {"1.25", 1250},     {".5", 500},
                                {"0", 0},    {" 3 ", 3000}, {"0.0001", 1}, {"1024", 1'024'000}};
  for (const auto& c : cases) {
    absl::StatusOr<int64_t> got = ParseCpuMilli(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseCpuMilliTest, RejectsMalformedText) {
  for (const char* text : {"", "m", "1.5m", "abc", "1e3", "nan", "inf", "2 cores", "1..5", "+1", "0x10"}) {
    absl::StatusOr<int64_t> got = ParseCpuMilli(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_THAT(got.status().message(), HasSubstr("is not a CPU quantity; use e.g. 2, 0.5 or 500m")) << text;
  }
}

TEST(ParseCpuMilliTest, RejectsNegative) {
  EXPECT_EQ(ParseCpuMilli("-500m").status().message(), "'-500m' is negative");
}

TEST(ParseCpuMilliTest, RejectsOverflow) {
  EXPECT_EQ(ParseCpuMilli("9223372036854776").status().message(), "'9223372036854776' is too large");
}

TEST(ParseMemoryMibTest, AcceptsBinaryDecimalAndBytes) {
  // 1G = 10^9 bytes = 953.67 MiB, rounded up to 954; 1M = 10^6 bytes < 1 MiB.
  const QuantityCase cases[] = {{"512Mi", 512},     {"2Gi", 2048},
                                {"1Ti", 1 << 20},   {"1G", 954},
                                {"1M", 1},          {"1048576", 1},
                                {"1048577", 2},     {"1.5Gi", 1536},
                                {"1024Ki", 1},      {"1k", 1},
                                {"0", 0},           {"1Pi", 1LL << 30},
                                {"8Ei", 8LL << 40}, {"1000000000000", 953'675}};
  for (const auto& c : cases) {
    absl::StatusOr<int64_t> got = ParseMemoryMib(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseMemoryMibTest, RejectsMalformedText) {
  for (const char* text : {"", "Gi", "2Gx", "2GB", "2 Gi", "2gi", "1e9", "nan", "-", "--1", "2Gi2"}) {
    absl::StatusOr<int64_t> got = ParseMemoryMib(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_THAT(got.status().message(), HasSubstr("is not a quantity; use e.g. 512Mi or 2Gi")) << text;
  }
}

TEST(ParseMemoryMibTest, RejectsNegative) {
  EXPECT_EQ(ParseMemoryMib("-2Gi").status().message(), "'-2Gi' is negative");
}

TEST(ParseMemoryMibTest, RejectsOverflow) {
  // 8 Ei = 2^63 bytes = 2^43 MiB fits; 2^63 MiB does not.
  EXPECT_EQ(ParseMemoryMib("9999999999Ei").status().message(), "'9999999999Ei' is too large");
  EXPECT_EQ(ParseMemoryMib("99999999999999999999999").status().message(), "'99999999999999999999999' is too large");
}

TEST(ParseMemoryMibTest, RejectsExcessPrecision) {
  EXPECT_THAT(ParseMemoryMib("1.0000000000000000001Gi").status().message(), HasSubstr("more than 18 decimal places"));
}

TEST(ParseDurationSTest, AcceptsUnits) {
  const QuantityCase cases[] = {{"90", 90},     {"90s", 90},    {"10m", 600}, {"2h", 7200},
                                {"1d", 86'400}, {"1.5h", 5400}, {"0", 0},     {"0.5s", 1}};
  for (const auto& c : cases) {
    absl::StatusOr<int64_t> got = ParseDurationS(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseDurationSTest, RejectsMalformedText) {
  for (const char* text : {"", "s", "10x", "1h30m", "2 hours", "1w", "nan", "1e3s"}) {
    absl::StatusOr<int64_t> got = ParseDurationS(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_THAT(got.status().message(), HasSubstr("is not a duration")) << text;
  }
}

TEST(ParseDurationSTest, RejectsNegative) { EXPECT_EQ(ParseDurationS("-1h").status().message(), "'-1h' is negative"); }

TEST(ParseDurationSTest, RejectsOverflow) {
  EXPECT_EQ(ParseDurationS("999999999999999999d").status().message(), "'999999999999999999d' is too large");
}

// --- Round trip -----------------------------------------------------------------

void ExpectRoundTrip(const JobSpec& spec) {
  const std::string json = JobSpecToJson(spec);
  // Limits on a job's cost are the cluster's to set; the format has none.
  SpecLimits any_cost;
  any_cost.max_job_tasks = std::numeric_limits<int32_t>::max();
  any_cost.max_assignment_bytes = std::numeric_limits<int64_t>::max();
  absl::StatusOr<JobSpec> again = ParseJobSpec(json, any_cost);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << json;
  EXPECT_EQ(*again, spec) << json;
  EXPECT_EQ(JobSpecToJson(*again), json);
}

TEST(RoundTripTest, HeaderExample) { ExpectRoundTrip(MustParse(HeaderExample())); }

TEST(RoundTripTest, MinimalSpec) { ExpectRoundTrip(MustParse("tasks: [{command: [sleep, \"1\"]}]")); }

TEST(RoundTripTest, OddQuantities) {
  ExpectRoundTrip(
      MustParse(OneTask("    resources: {cpu: 1500m, memory: 1G, device_share: 30%, device_memory: 1536Mi}\n",
                        "time_limit: 5401\nruntime_estimate: 1.5h\npriority: -7\npreemptible: false\n")));
}

TEST(RoundTripTest, APriorityClassAndPreempts) {
  const JobSpec spec = MustParse(OneTask("", "priority_class: serving\npreempts: false\n"));
  EXPECT_EQ(spec.priority_class, "serving");
  EXPECT_FALSE(spec.preempts);
  ExpectRoundTrip(spec);
  EXPECT_FALSE(ToCoreJob(spec, JobId(1), "a", 0).preempts);
  EXPECT_TRUE(ToCoreJob(MustParse(OneTask("", "")), JobId(1), "a", 0).preempts);
  EXPECT_THAT(ErrorOf(OneTask("", "priority_class: Serving\n")), HasSubstr("not a valid name"));
}

TEST(RoundTripTest, SeveralTasksWithEverything) {
  ExpectRoundTrip(
      MustParse("name: big\nqueue: team-a\nframework: mpi\nrestart: {policy: OnFailure, max_retries: 100}\n"
                "tasks:\n"
                "  - {name: launcher, command: [mpirun, -n, \"8\"], resources: {cpu: 250m, memory: 3Ti}}\n"
                "  - name: worker\n    replicas: 8\n    min_available: 4\n    command: [./w]\n"
                "    resources: {devices: 8}\n"
                "    devices: [{vendor: Cambricon, model: MLU370, throughput: 0.1}, {vendor: rocm, throughput: 3e-5}]\n"
                "    affinity: spread\n    node_selector: {icos.io/pool: gpu-1, empty: \"\"}\n"));
}

TEST(RoundTripTest, UnusualText) {
  JobSpec spec = MustParse("tasks: [{command: [x]}]");
  spec.tasks[0].command = {"sh",
                           "-c",
                           "echo \"hi\" 'there' \\ $HOME\t\n\r{}[]#&*!|>%@`",
                           "  padded  ",
                           "ünïcödé 中文 😀",
                           "",
                           "null",
                           "true",
                           "~",
                           "- a",
                           "\x01\x1f\x7f",
                           "\u2028\u0085"};
  spec.tasks[0].env = {{"EMPTY", ""}, {"Q", "a: b"}, {"_X1", "# not a comment"}};
  spec.tasks[0].workdir = "/tmp/a b";
  ExpectRoundTrip(spec);
}

TEST(RoundTripTest, ExtremeValues) {
  JobSpec spec = MustParse("tasks: [{command: [x]}]");
  spec.priority = -1'000'000;
  spec.time_limit_s = 3650LL * 86'400;
  spec.tasks[0].replicas = 100'000;
  spec.tasks[0].cpu_milli = 1;
  spec.tasks[0].memory_mib = 64LL << 20;
  spec.tasks[0].device_percent = 99;
  spec.tasks[0].device_wishes = {{"a", "", 1e12}, {"b", "m", 5e-324}};
  ExpectRoundTrip(spec);
}

TEST(DependenciesTest, ParseListsAndSingleIdsAndRoundTrip) {
  JobSpec spec = MustParse(
      OneTask("", "dependencies: {after_ok: [12, 13, 12], after_any: 14, after_not_ok: [15], if_unmet: wait}\n"));
  EXPECT_EQ(spec.dependencies.after_ok, (std::vector<int64_t>{12, 13}));  // a repeat counts once
  EXPECT_EQ(spec.dependencies.after_any, (std::vector<int64_t>{14}));
  EXPECT_EQ(spec.dependencies.after_not_ok, (std::vector<int64_t>{15}));
  EXPECT_FALSE(spec.dependencies.cancel_if_unmet);
  ExpectRoundTrip(spec);
  EXPECT_TRUE(MustParse(OneTask("", "dependencies: {after_ok: [1]}\n")).dependencies.cancel_if_unmet);
  EXPECT_TRUE(MustParse(OneTask("")).dependencies.empty());
}

TEST(DependenciesTest, BadIdsAndFieldsAreNamed) {
  EXPECT_THAT(ErrorOf(OneTask("", "dependencies: {after_ok: [0]}\n")),
              HasSubstr("dependencies.after_ok[0] (line 2): 0 is out of range"));
  EXPECT_THAT(ErrorOf(OneTask("", "dependencies: {after_ok: [job-3]}\n")), HasSubstr("is not a whole number"));
  EXPECT_THAT(ErrorOf(OneTask("", "dependencies: {afterok: [3]}\n")),
              HasSubstr("unknown field; known: after_ok, after_any, after_not_ok, if_unmet"));
  EXPECT_THAT(ErrorOf(OneTask("", "dependencies: {after_ok: [3], if_unmet: hold}\n")),
              HasSubstr("'hold' is not cancel or wait"));
  std::string many = "dependencies: {after_any: [";
  for (int i = 1; i <= 1'001; ++i) absl::StrAppend(&many, i == 1 ? "" : ",", i);
  EXPECT_THAT(ErrorOf(OneTask("", many + "]}\n")), HasSubstr("more than 1000 dependencies"));
}

TEST(DependenciesTest, SlurmsFlagParsesAndMerges) {
  auto d = ParseDependencyList("afterok:3:4,afterany:5, after_not_ok:6,afterok:3");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->after_ok, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(d->after_any, (std::vector<int64_t>{5}));
  EXPECT_EQ(d->after_not_ok, (std::vector<int64_t>{6}));
  EXPECT_THAT(std::string(ParseDependencyList("after:3").status().message()), HasSubstr("use afterok:ID"));
  EXPECT_THAT(std::string(ParseDependencyList("afterok").status().message()), HasSubstr("use afterok:ID"));
  EXPECT_THAT(std::string(ParseDependencyList("afterok:x").status().message()), HasSubstr("'x' is not a job id"));
  Dependencies into{.after_ok = {4, 9}};
  MergeDependencies(*d, into);
  EXPECT_EQ(into.after_ok, (std::vector<int64_t>{4, 9, 3}));
  EXPECT_EQ(into.after_not_ok, (std::vector<int64_t>{6}));
}

TEST(ArrayTest, SlurmsFormsParseAndPrintBack) {
  auto a = ParseArrayIndices("0-3,7,9-13:2%4", 100);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->indices, (std::vector<int32_t>{0, 1, 2, 3, 7, 9, 11, 13}));
  EXPECT_EQ(a->throttle, 4);
  EXPECT_EQ(FormatArrayIndices(a->indices, a->throttle), "0-3,7-13:2%4");
  EXPECT_EQ(FormatArrayIndices({0, 2, 5, 6, 7}, 0), "0,2,5-7");
  EXPECT_EQ(ParseArrayIndices("0-99998:2", 100'000)->indices.size(), 50'000u);
  EXPECT_EQ(FormatArrayIndices(ParseArrayIndices("0-99998:2", 100'000)->indices, 0), "0-99998:2");
  EXPECT_EQ(ParseArrayIndices("5,1,5,2", 100)->indices, (std::vector<int32_t>{1, 2, 5}));
  EXPECT_THAT(std::string(ParseArrayIndices("5-2", 100).status().message()), HasSubstr("'5-2' is out of order"));
  EXPECT_THAT(std::string(ParseArrayIndices("0-9%0", 100).status().message()), HasSubstr("'%0' is not a limit"));
  EXPECT_THAT(std::string(ParseArrayIndices("a-b", 100).status().message()), HasSubstr("'a-b' is not a range"));
  EXPECT_THAT(std::string(ParseArrayIndices("0-100", 100).status().message()),
              HasSubstr("more than this cluster's limit of 100"));
  EXPECT_THAT(std::string(ParseArrayIndices("0-2000000000", 100).status().message()), HasSubstr("outside 0-10000000"));
  JobSpec spec = MustParse(OneTask("", "array: 0-99%8\n"));
  EXPECT_EQ(spec.array, "0-99%8");
  EXPECT_EQ(spec.array_count, 100);
  EXPECT_EQ(spec.array_throttle, 8);
  EXPECT_EQ(MustParse(OneTask("", "array: 5,1-4,7:1%2\n")).array, "1-5,7%2");  // kept in its shortest form
  // Every element keeps the array's text: a list that no range shortens
  // is refused past kMaxArrayText, not kept 100,000 times.
  std::string scattered;
  for (int i = 0; i < 400; ++i) absl::StrAppend(&scattered, scattered.empty() ? "" : ",", i * i);
  EXPECT_THAT(std::string(ParseArrayIndices(scattered, 100'000).status().message()),
              HasSubstr("characters written as ranges (at most 512); split it"));
  EXPECT_TRUE(ParseArrayIndices("0-98:2", 100).ok());
  // A stored spec accepted before the bound (or under a raised one) still
  // parses with limits that allow it, as a restarted controller reads it.
  SpecLimits stored;
  stored.max_array_text = 1 << 20;
  auto old = ParseJobSpec(OneTask("", absl::StrCat("array: \"", scattered, "\"\n")), stored);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->array_count, 400);
  ExpectRoundTrip(spec);
  EXPECT_THAT(ErrorOf(OneTask("", "array: 3-1\n")), HasSubstr("array (line 2): '3-1' is out of order"));
}

TEST(JobSpecToJsonTest, UsesCanonicalQuantities) {
  const std::string json = JobSpecToJson(MustParse(OneTask(
      "    resources: {cpu: 1.5, memory: 2048Mi, device_share: 50}\n", "time_limit: 7200\nruntime_estimate: 120\n")));
  EXPECT_THAT(json, HasSubstr(R"("cpu":"1500m","memory":"2Gi","devices":0,"device_share":"50%")"));
  EXPECT_THAT(json, HasSubstr(R"("time_limit":"2h","runtime_estimate":"2m")"));
}

// --- ToCoreJob --------------------------------------------------------------------

TEST(ToCoreJobTest, MapsJobFields) {
  JobSpec spec = MustParse(OneTask("", "queue: q1\npriority: 3\npreemptible: false\nruntime_estimate: 10m\n"));
  const core::Job job = ToCoreJob(spec, JobId(42), "alice", 1'234);
  EXPECT_EQ(job.id, JobId(42));
  EXPECT_EQ(job.user, "alice");
  EXPECT_EQ(job.queue, "q1");
  EXPECT_EQ(job.priority, 3);
  EXPECT_FALSE(job.preemptible);
  EXPECT_EQ(job.submit_ms, 1'234);
  EXPECT_EQ(job.runtime_estimate_ms, 600'000);  // 10 min = 600 s
  EXPECT_EQ(job.attained_device_s, 0.0);
}

// Backfill needs an end: the time limit stands in for a missing estimate, as
// in Slurm; an estimate, when given, wins.
TEST(ToCoreJobTest, TheTimeLimitBoundsAJobWithoutAnEstimate) {
  EXPECT_EQ(ToCoreJob(MustParse(OneTask("", "time_limit: 2h\n")), JobId(1), "a", 0).runtime_estimate_ms, 7'200'000);
  EXPECT_EQ(
      ToCoreJob(MustParse(OneTask("", "time_limit: 2h\nruntime_estimate: 5m\n")), JobId(1), "a", 0).runtime_estimate_ms,
      300'000);
  EXPECT_EQ(ToCoreJob(MustParse(OneTask("", "")), JobId(1), "a", 0).runtime_estimate_ms, 0);
}

TEST(ToCoreJobTest, MapsGroupRequestAndPlacementWishes) {
  const core::Job job = ToCoreJob(MustParse(HeaderExample()), JobId(1), "bob", 0);
  ASSERT_EQ(job.groups.size(), 1u);
  const core::TaskGroup& g = job.groups[0];
  EXPECT_EQ(g.name, "worker");
  EXPECT_EQ(g.replicas, 2);
  EXPECT_EQ(g.min_available, 2);
  EXPECT_EQ(g.request.cpu_milli, 1000);
  EXPECT_EQ(g.request.memory_mib, 2048);
  EXPECT_EQ(g.request.devices, 1);
  EXPECT_FALSE(g.request.IsFractional());
  ASSERT_EQ(g.device_choices.size(), 2u);
  EXPECT_EQ(g.device_choices[0].vendor, "nvidia");
  EXPECT_EQ(g.device_choices[0].model, "A100-80G");
  EXPECT_EQ(g.device_choices[0].throughput, 1.0);
  EXPECT_EQ(g.device_choices[1].vendor, "ascend");
  EXPECT_EQ(g.device_choices[1].model, "");
  EXPECT_EQ(g.affinity, core::Affinity::kSameNode);
  EXPECT_EQ(g.node_selector, (std::map<std::string, std::string>{{"zone", "a"}}));
}

TEST(ToCoreJobTest, MapsFractionalRequest) {
  const core::Job job =
      ToCoreJob(MustParse(OneTask("    resources: {device_share: 30%, device_memory: 8Gi}\n")), JobId(1), "u", 0);
  EXPECT_TRUE(job.groups[0].request.IsFractional());
  EXPECT_EQ(job.groups[0].request.device_percent, 30);
  EXPECT_EQ(job.groups[0].request.device_memory_mib, 8192);
}

// --- Mutated inputs ------------------------------------------------------------------

// A few hundred deterministic mutations of valid specs: every one must either
// parse (and then round-trip) or fail with InvalidArgument, never crash.
TEST(ParseJobSpecFuzzTest, MutatedSpecsNeverCrash) {
  const std::vector<std::string> seeds = {
      HeaderExample(),
      JobSpecToJson(MustParse(HeaderExample())),
      "tasks: [{command: [sleep, \"1\"], resources: {cpu: 500m, memory: 1Gi, device_share: 50%}}]\n",
      "name: x\nenv: &e {A: b}\ntasks:\n  - name: a\n    command: [a]\n    env: *e\n",
  };
  const std::string alphabet = "[]{}:,-#&*!|>'\"\\ \n\t%?~0123456789abcdefxyzGiMm.";
  std::mt19937 rng(20240601);
  int parsed = 0;
  for (int round = 0; round < 600; ++round) {
    std::string text = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t pos = rng() % text.size();
      switch (rng() % 5) {
        case 0:  // delete a run
          text.erase(pos, 1 + rng() % 8);
          break;
        case 1:  // insert a significant character
          text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 2:  // overwrite with any byte
          text[pos] = static_cast<char>(rng() % 256);
          break;
        case 3:  // duplicate a run
          text.insert(pos, text.substr(rng() % text.size(), 1 + rng() % 16));
          break;
        default:  // swap two lines
          std::vector<std::string> lines = absl::StrSplit(text, '\n');
          std::swap(lines[rng() % lines.size()], lines[rng() % lines.size()]);
          text = absl::StrJoin(lines, "\n");
          break;
      }
    }
    absl::StatusOr<JobSpec> spec = ParseJobSpec(text);
    if (!spec.ok()) {
      ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << text;
      ASSERT_FALSE(spec.status().message().empty());
      continue;
    }
    ++parsed;
    absl::StatusOr<JobSpec> again = ParseJobSpec(JobSpecToJson(*spec));
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
    ASSERT_EQ(*again, *spec) << text;
  }
  // The mutations are small, so some inputs stay valid and exercise the round trip.
  EXPECT_GT(parsed, 20);
}

TEST(ToJobNameTest, MakesAnAcceptedNameOrNothing) {
  EXPECT_EQ(ToJobName("Recommendation (batch size 2048)"), "recommendation-batch-size-2048");
  EXPECT_EQ(ToJobName("python3.11"), "python3-11");
  EXPECT_EQ(ToJobName("--x--y--"), "x-y");
  EXPECT_EQ(ToJobName("..."), "");
  const std::string long_name = ToJobName(std::string(100, 'a') + "-b");
  EXPECT_EQ(long_name, std::string(63, 'a'));
  for (const char* text : {"Recommendation (batch size 2048)", "python3.11", "--x--y--"}) {
    EXPECT_TRUE(ParseJobSpec(absl::StrCat("name: ", ToJobName(text), "\ntasks:\n  - command: [x]\n")).ok()) << text;
  }
}

}  // namespace
}  // namespace icos::api
