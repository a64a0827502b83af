#include "agent/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/launcher_test_util.h"
#include "agent/shim.h"
#include "agent/shim_spawn.h"
#include "agent/sys_util.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace icos::agent {
namespace {

using ::icos::agent::testing::Slurp;
using ::icos::agent::testing::Spit;
using ::icos::agent::testing::StopEveryTask;
using ::icos::agent::testing::TempDir;
using ::icos::agent::testing::WaitUntil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

pid_t ReadPidFile(const std::string& path) {
  int64_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(Slurp(path)), &pid)) return 0;
  return static_cast<pid_t>(pid);
}

class LauncherTestBase : public ::testing::Test {
 protected:
  void TearDown() override {
    // Never leave a task behind, whatever the test did.
    if (launcher_ != nullptr) StopEveryTask(*launcher_);
  }

  virtual CgroupOptions Cgroups() { return {.mode = CgroupMode::kDisabled}; }

  std::unique_ptr<TaskLauncher> NewLauncher() {
    absl::StatusOr<std::unique_ptr<TaskLauncher>> launcher = TaskLauncher::Create(
        {.state_dir = tmp_.Sub("state"), .log_dir = tmp_.Sub("logs"), .cgroups = Cgroups(), .clock = &clock_});
    EXPECT_TRUE(launcher.ok()) << launcher.status();
    return launcher.ok() ? *std::move(launcher) : nullptr;
  }

  // A task that logs "ready", then each of SIGUSR1 and SIGTERM as it gets
  // them (SIGTERM ends it).
  static constexpr char kSaysWhichSignal[] =
      "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done";

  static TaskLaunch Sh(const std::string& id, const std::string& script) {
    return {.task_id = id, .argv = {"/bin/sh", "-c", script}};
  }

  // Starts `launch`; fails the test if Start does.
  LaunchedTask MustStart(const TaskLaunch& launch) {
    absl::StatusOr<LaunchedTask> started = launcher_->Start(launch);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *started : LaunchedTask{};
  }

  // Polls (real time, short sleeps) until `id` is reported; nullopt after 10 s.
  std::optional<TaskExit> WaitForExit(const std::string& id) { return testing::WaitForExit(*launcher_, id); }

  std::string Log(const std::string& id) { return Slurp(tmp_.Sub("logs/" + id + ".log")); }

  // True once the task has printed `line` (a sign it is past its setup).
  bool WaitForLog(const std::string& id, const std::string& text) {
    return WaitUntil([&] { return absl::StrContains(Log(id), text); });
  }

  TempDir tmp_;
  icos::FakeClock clock_;
  std::unique_ptr<TaskLauncher> launcher_;
};

class LauncherTest : public LauncherTestBase {
 protected:
  void SetUp() override {
    launcher_ = NewLauncher();
    ASSERT_NE(launcher_, nullptr);
  }
};

TEST_F(LauncherTest, ReportsExitCodeAndLogsOutput) {
  MustStart(Sh("t1", "echo hi; exit 3"));
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kExited);
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_EQ(exit->reason, "exited with code 3; last output: hi");  // why it failed is in its last words
  EXPECT_EQ(Log("t1"), "hi\n");
}

// sacct's MaxRSS: the peak memory of the task's largest process, here a
// child its shell waited for.
TEST_F(LauncherTest, ReportsThePeakMemoryOfTheTasksLargestProcess) {
  MustStart(Sh("big", "/usr/bin/python3 -c \"b = b'x' * (96 << 20)\"; exit 0"));
  std::optional<TaskExit> big = WaitForExit("big");
  MustStart(Sh("small", "exit 0"));
  std::optional<TaskExit> small = WaitForExit("small");
  ASSERT_TRUE(big.has_value() && small.has_value());
  EXPECT_EQ(big->exit_code, 0) << big->reason;
  EXPECT_GE(big->max_rss_kib, 96 * 1024);
  EXPECT_GT(small->max_rss_kib, 0);
  EXPECT_LT(small->max_rss_kib, 32 * 1024);
}

// The shim is icos-shim (beside the test, as beside icos), not a fork of
// the agent: starting one copies none of the agent's memory.
TEST_F(LauncherTest, TheShimIsAProgramOfItsOwn) {
  LaunchedTask t = MustStart(Sh("t1", "sleep 5"));
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink(absl::StrCat("/proc/", t.shim_pid, "/exe"), ec).string();
  EXPECT_TRUE(absl::EndsWith(exe, "/icos-shim")) << exe;
  ASSERT_TRUE(launcher_->Stop("t1", 0).ok());
  ASSERT_TRUE(WaitForExit("t1").has_value());
}

// After an upgrade an agent still running the old binary finds the new
// icos-shim beside it: a plan of another format version runs nothing, where
// the same plan of this version runs its task and records its exit.
TEST(ShimSpawnTest, AShimGivenAPlanOfAnotherVersionRunsNothing) {
  const std::string shim_path = shim::ShimBesideSelf();
  ASSERT_FALSE(shim_path.empty());
  TempDir tmp;
  const std::string log = tmp.Sub("t.log"), exit = tmp.Sub("t.exit"), exit_tmp = tmp.Sub("t.exit.tmp");
  const std::string pid = tmp.Sub("t.pid"), pid_tmp = tmp.Sub("t.pid.tmp"), spawn = tmp.Sub("t.spawn");
  std::string prog = "/bin/true", sh = "/bin/sh";
  char* argv[] = {prog.data(), nullptr};
  char* sh_argv[] = {sh.data(), prog.data(), nullptr};
  char* envp[] = {nullptr};
  shim::ShimPlan plan;
  plan.log_path = log.c_str();
  plan.exit_path = exit.c_str();
  plan.exit_tmp_path = exit_tmp.c_str();
  plan.pid_path = pid.c_str();
  plan.pid_tmp_path = pid_tmp.c_str();
  plan.spawn_path = spawn.c_str();
  plan.exec_path = prog.c_str();
  plan.argv = argv;
  plan.sh_argv = sh_argv;
  plan.envp = envp;
  const std::string encoded = shim::EncodePlan(plan);
  int64_t version = 0;
  std::memcpy(&version, encoded.data(), sizeof(version));
  ASSERT_EQ(version, shim::kPlanVersion);  // the version leads the plan

  // Runs icos-shim with `blob` on its plan fd; returns its exit status.
  auto run = [&](const std::string& blob) {
    int sv[2], report[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_EQ(pipe2(report, O_CLOEXEC), 0);
    const pid_t child = fork();
    if (child == 0) {
      dup2(sv[1], shim::kPlanFd);
      dup2(report[1], shim::kReportFd);
      dup2(report[1], shim::kLockFd);  // any open fd will do here
      execl(shim_path.c_str(), "icos-shim", static_cast<char*>(nullptr));
      _exit(126);
    }
    close(sv[1]);
    close(report[1]);
    EXPECT_EQ(write(sv[0], blob.data(), blob.size()), static_cast<ssize_t>(blob.size()));
    close(sv[0]);
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    close(report[0]);
    return status;
  };
  std::string other = encoded;
  const int64_t next = shim::kPlanVersion + 1;
  std::memcpy(other.data(), &next, sizeof(next));
  const int refused = run(other);
  ASSERT_TRUE(WIFEXITED(refused));
  EXPECT_EQ(WEXITSTATUS(refused), 127);
  EXPECT_FALSE(PathExists(spawn));  // nothing was started
  EXPECT_FALSE(PathExists(exit));

  const int ran = run(encoded);
  ASSERT_TRUE(WIFEXITED(ran));
  EXPECT_EQ(WEXITSTATUS(ran), 0);
  EXPECT_TRUE(PathExists(spawn));
  EXPECT_THAT(Slurp(exit), HasSubstr("wait_status 0"));
}

TEST_F(LauncherTest, StderrGoesToTheSameLog) {
  MustStart(Sh("t1", "echo out; echo err >&2"));
  ASSERT_TRUE(WaitForExit("t1").has_value());
  EXPECT_EQ(Log("t1"), "out\nerr\n");
}

TEST_F(LauncherTest, LogIsAppendedNotReplaced) {
  MustStart(Sh("t1", "echo first"));
  ASSERT_TRUE(WaitForExit("t1").has_value());
  ASSERT_TRUE(launcher_->Forget("t1").ok());
  MustStart(Sh("t1", "echo second"));
  ASSERT_TRUE(WaitForExit("t1").has_value());
  EXPECT_EQ(Log("t1"), "first\nsecond\n");
}

TEST_F(LauncherTest, EnvReachesTheTask) {
  TaskLaunch launch = Sh("t1", "echo \"$ICOS_TEST_VAR\"");
  launch.env["ICOS_TEST_VAR"] = "hello world";
  MustStart(launch);
  ASSERT_TRUE(WaitForExit("t1").has_value());
  EXPECT_EQ(Log("t1"), "hello world\n");
}

TEST_F(LauncherTest, TaskInheritsAndCanOverrideTheAgentsEnvironment) {
  setenv("ICOS_TEST_INHERITED", "from-agent", 1);
  setenv("ICOS_TEST_OVERRIDDEN", "from-agent", 1);
  TaskLaunch launch = Sh("t1", "echo \"$ICOS_TEST_INHERITED $ICOS_TEST_OVERRIDDEN\"");
  launch.env["ICOS_TEST_OVERRIDDEN"] = "from-launch";
  MustStart(launch);
  ASSERT_TRUE(WaitForExit("t1").has_value());
  unsetenv("ICOS_TEST_INHERITED");
  unsetenv("ICOS_TEST_OVERRIDDEN");
  EXPECT_EQ(Log("t1"), "from-agent from-launch\n");
}

TEST_F(LauncherTest, WorkdirIsTheTasksCurrentDirectory) {
  std::filesystem::create_directories(tmp_.Sub("work"));
  TaskLaunch launch = Sh("t1", "pwd");
  launch.workdir = tmp_.Sub("work");
  MustStart(launch);
  ASSERT_TRUE(WaitForExit("t1").has_value());
  EXPECT_EQ(Log("t1"), std::filesystem::canonical(tmp_.Sub("work")).string() + "\n");
}

TEST_F(LauncherTest, RelativeCommandIsFoundInTheWorkdir) {
  std::filesystem::create_directories(tmp_.Sub("work"));
  Spit(tmp_.Sub("work/run.sh"), "#!/bin/sh\necho ran \"$1\"\n");
  std::filesystem::permissions(tmp_.Sub("work/run.sh"), std::filesystem::perms::owner_all);
  MustStart({.task_id = "t1", .argv = {"./run.sh", "arg"}, .workdir = tmp_.Sub("work")});
  ASSERT_TRUE(WaitForExit("t1").has_value());
  EXPECT_EQ(Log("t1"), "ran arg\n");
}

TEST_F(LauncherTest, ScriptWithoutShebangRunsUnderSh) {
  // execve() refuses it (ENOEXEC); like execvp, the task falls back to /bin/sh.
  Spit(tmp_.Sub("plain.sh"), "echo plain \"$1\"\n");
  std::filesystem::permissions(tmp_.Sub("plain.sh"), std::filesystem::perms::owner_all);
  MustStart({.task_id = "t1", .argv = {tmp_.Sub("plain.sh"), "x"}});
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kExited);
  EXPECT_EQ(Log("t1"), "plain x\n");
}

TEST_F(LauncherTest, MissingCommandFailsStartWithAClearError) {
  absl::StatusOr<LaunchedTask> started = launcher_->Start({.task_id = "t1", .argv = {"pyhton3", "train.py"}});
  ASSERT_EQ(started.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(started.status().message(), HasSubstr("command 'pyhton3' not found in PATH"));
  EXPECT_THAT(launcher_->Running(), IsEmpty());
}

TEST_F(LauncherTest, MissingCommandPathFailsStart) {
  absl::StatusOr<LaunchedTask> started = launcher_->Start({.task_id = "t1", .argv = {"./no-such-script.sh"}});
  ASSERT_EQ(started.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(started.status().message(), HasSubstr("command './no-such-script.sh' not found"));
}

TEST_F(LauncherTest, MissingWorkdirFailsStart) {
  TaskLaunch launch = Sh("t1", "true");
  launch.workdir = tmp_.Sub("nope");
  EXPECT_EQ(launcher_->Start(launch).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LauncherTest, ExecFailureAfterTheForkIsReportedAsLaunchFailed) {
  // The script exists and is executable, so the pre-fork check passes, but
  // its interpreter does not exist, so execve() itself fails with ENOENT.
  const std::string script = tmp_.Sub("bad-interpreter.sh");
  Spit(script, "#!/nonexistent/interpreter\necho never\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  MustStart({.task_id = "t1", .argv = {script}});
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kLaunchFailed);
  EXPECT_EQ(exit->exit_code, 127);
  EXPECT_THAT(exit->reason, HasSubstr(absl::StrCat("command '", script, "' not found")));
}

TEST_F(LauncherTest, DuplicateTaskIdIsAlreadyExists) {
  MustStart(Sh("t1", "sleep 1000"));
  EXPECT_EQ(launcher_->Start(Sh("t1", "true")).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(LauncherTest, TaskIdThatIsNotAFileNameIsInvalidArgument) {
  EXPECT_EQ(launcher_->Start(Sh("../t1", "true")).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LauncherTest, StateFileIsWrittenBeforeStartReturns) {
  LaunchedTask task = MustStart(Sh("t1", "sleep 1000"));
  std::string text = Slurp(tmp_.Sub("state/t1.json"));
  ASSERT_FALSE(text.empty());
  nlohmann::json state = nlohmann::json::parse(text);
  EXPECT_EQ(state["task_id"], "t1");
  EXPECT_EQ(state["shim_pid"], task.shim_pid);
  EXPECT_EQ(state["task_pid"], task.task_pid);
  EXPECT_EQ(state["start_unix_ms"], task.start_unix_ms);
  // The recorded start time is /proc/<pid>/stat field 22 of the live task.
  absl::StatusOr<ProcStat> stat = ReadProcStat(task.task_pid);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(state["task_start_ticks"], stat->start_ticks);
}

TEST_F(LauncherTest, TaskRunsInItsOwnProcessGroupApartFromTheShim) {
  LaunchedTask task = MustStart(Sh("t1", "sleep 1000"));
  absl::StatusOr<ProcStat> task_stat = ReadProcStat(task.task_pid);
  absl::StatusOr<ProcStat> shim_stat = ReadProcStat(task.shim_pid);
  ASSERT_TRUE(task_stat.ok() && shim_stat.ok());
  EXPECT_EQ(task_stat->pgid, task.task_pid);
  EXPECT_EQ(shim_stat->pgid, task.shim_pid);
}

TEST_F(LauncherTest, SignaledTaskIsReportedWithItsSignal) {
  MustStart(Sh("t1", "kill -USR1 $$"));
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kSignaled);
  EXPECT_EQ(exit->signal, SIGUSR1);
  EXPECT_EQ(exit->exit_code, 128 + SIGUSR1);
  EXPECT_EQ(exit->reason, "killed by SIGUSR1");
}

TEST_F(LauncherTest, PollReportsEachExitOnceAndKeepsTheJournalUntilForget) {
  MustStart(Sh("t1", "true"));
  ASSERT_TRUE(WaitForExit("t1").has_value());
  EXPECT_THAT(launcher_->Poll(), IsEmpty());
  EXPECT_THAT(launcher_->Running(), IsEmpty());
  // Until the controller has the exit, the id may not run again.
  EXPECT_TRUE(PathExists(tmp_.Sub("state/t1.json")));
  EXPECT_TRUE(absl::IsAlreadyExists(launcher_->Start(Sh("t1", "true")).status()));
  ASSERT_TRUE(launcher_->Forget("t1").ok());
  EXPECT_FALSE(PathExists(tmp_.Sub("state/t1.json")));
  EXPECT_FALSE(PathExists(tmp_.Sub("state/t1.exit")));
  EXPECT_TRUE(absl::IsNotFound(launcher_->Forget("t1")));
}

TEST_F(LauncherTest, ARunningTaskCannotBeForgotten) {
  MustStart(Sh("t1", "sleep 1000"));
  EXPECT_TRUE(absl::IsFailedPrecondition(launcher_->Forget("t1")));
}

TEST_F(LauncherTest, RunningListsStartedTasksSorted) {
  MustStart(Sh("b", "sleep 1000"));
  MustStart(Sh("a", "sleep 1000"));
  EXPECT_THAT(launcher_->Running(), ElementsAre("a", "b"));
}

TEST_F(LauncherTest, StopSendsSigtermAndATaskThatExitsIsCancelled) {
  MustStart(Sh("t1", "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000).ok());
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_THAT(Log("t1"), HasSubstr("got TERM"));
}

TEST_F(LauncherTest, TaskIgnoringSigtermIsKilledOnlyOnceTheGraceHasPassed) {
  MustStart(Sh("t1", "trap '' TERM; echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 5'000).ok());
  // 4999 ms by the launcher's clock: still within the grace, so it lives on
  // (checked over 200 ms of real time, in which it would have died otherwise).
  clock_.Advance(4'999);
  EXPECT_FALSE(WaitUntil([&] { return !launcher_->Poll().empty(); }, 200));
  clock_.Advance(1);
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_THAT(exit->reason, HasSubstr("SIGKILL"));
}

// The checkpoint contract: a planned stop sends the job's checkpoint signal
// first and SIGTERM only once the checkpoint window has passed.
TEST_F(LauncherTest, ACheckpointingStopSignalsFirstAndTerminatesAfterTheWindow) {
  MustStart(Sh("t1", kSaysWhichSignal));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000, false, {.signal = SIGUSR1, .window_ms = 5'000}).ok());
  ASSERT_TRUE(WaitForLog("t1", "got USR1"));
  clock_.Advance(4'999);  // within the window: no SIGTERM yet
  EXPECT_FALSE(WaitUntil([&] { return !launcher_->Poll().empty(); }, 300));
  EXPECT_THAT(Log("t1"), Not(HasSubstr("got TERM")));
  clock_.Advance(1);
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_EQ(exit->exit_code, 0);
  const std::string log = Log("t1");
  ASSERT_THAT(log, HasSubstr("got TERM"));
  EXPECT_LT(log.find("got USR1"), log.find("got TERM"));
  // What the agent tells the controller how long the checkpoint took from.
  EXPECT_GT(exit->checkpoint_asked_unix_ms, 0);
  EXPECT_EQ(exit->checkpoint_window_ms, 5'000);
  EXPECT_TRUE(exit->checkpoint_window_ran_out);
}

TEST_F(LauncherTest, ACancelDuringTheCheckpointWindowTerminatesAtOnce) {
  MustStart(Sh("t1", kSaysWhichSignal));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000, false, {.signal = SIGUSR1, .window_ms = 60'000}).ok());
  ASSERT_TRUE(WaitForLog("t1", "got USR1"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000).ok());
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_THAT(Log("t1"), HasSubstr("got TERM"));
  // Cut short by the cancel, not by its own window: no sign the job's checkpoints are slow.
  EXPECT_GT(exit->checkpoint_asked_unix_ms, 0);
  EXPECT_FALSE(exit->checkpoint_window_ran_out);
}

TEST_F(LauncherTest, StopSignalsTheWholeProcessGroup) {
  // The task's child inherits the ignored SIGTERM; only the group-wide
  // SIGKILL can end it.
  MustStart(Sh("t1", "trap '' TERM; sleep 1000 & echo $! > " + tmp_.Sub("child.pid") + "; echo ready; wait"));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  pid_t child = ReadPidFile(tmp_.Sub("child.pid"));
  ASSERT_GT(child, 0);
  ASSERT_TRUE(ProcessAlive(child, 0));
  ASSERT_TRUE(launcher_->Stop("t1", 1'000).ok());
  clock_.Advance(1'000);
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(child, 0); }));
}

TEST_F(LauncherTest, StopWithZeroGraceKillsAtOnce) {
  MustStart(Sh("t1", "trap '' TERM; echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 0).ok());
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_EQ(exit->signal, SIGKILL);
}

// `icos up` stopping stops its tasks: their end is the node's doing, and so
// it stays after the agent restarts (the exit is reported then).
TEST_F(LauncherTest, AStopForTheNodesShutdownSaysSoAcrossARestart) {
  MustStart(Sh("t1", "echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000, /*node_shutdown=*/true).ok());
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kNodeShutdown);
  EXPECT_THAT(exit->reason, HasSubstr("its node shut down"));
  launcher_.reset();
  launcher_ = NewLauncher();
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  std::vector<TaskExit> again = launcher_->Poll();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].kind, TaskExitKind::kNodeShutdown);
}

TEST_F(LauncherTest, StopUnknownTaskIsNotFound) {
  EXPECT_EQ(launcher_->Stop("nope", 0).code(), absl::StatusCode::kNotFound);
}

TEST_F(LauncherTest, LimitsWithoutCgroupsRunWithAWarning) {
  TaskLaunch launch = Sh("t1", "true");
  launch.memory_mib = 64;
  LaunchedTask task = MustStart(launch);
  EXPECT_THAT(task.warnings, ElementsAre(HasSubstr("running without limits")));
  EXPECT_TRUE(task.cgroup_dir.empty());
}

TEST_F(LauncherTest, RequireLimitsRefusesToRunWithoutCgroups) {
  absl::StatusOr<std::unique_ptr<TaskLauncher>> strict =
      TaskLauncher::Create({.state_dir = tmp_.Sub("state"),
                            .log_dir = tmp_.Sub("logs"),
                            .cgroups = {.mode = CgroupMode::kDisabled},
                            .require_limits = true,
                            .clock = &clock_});
  ASSERT_TRUE(strict.ok()) << strict.status();
  TaskLaunch launch = Sh("t1", "true");
  launch.memory_mib = 64;
  EXPECT_EQ((*strict)->Start(launch).status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- Adoption: a restarted agent finds its tasks again. ---

TEST_F(LauncherTest, RestartedLauncherAdoptsARunningTaskAndReportsItsExitCode) {
  const std::string gate = tmp_.Sub("go");
  MustStart(Sh("t1", "while [ ! -e " + gate + " ]; do sleep 0.02; done; exit 7"));
  launcher_.reset();  // the agent "crashes"; the task keeps running
  launcher_ = NewLauncher();
  ASSERT_NE(launcher_, nullptr);
  EXPECT_THAT(launcher_->Adopt(), ElementsAre("t1"));
  EXPECT_THAT(launcher_->Running(), ElementsAre("t1"));
  EXPECT_THAT(launcher_->Poll(), IsEmpty());
  Spit(gate, "");
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kExited);
  EXPECT_EQ(exit->exit_code, 7);
}

TEST_F(LauncherTest, AdoptedTaskCanBeStopped) {
  MustStart(Sh("t1", "echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  launcher_.reset();
  launcher_ = NewLauncher();
  ASSERT_THAT(launcher_->Adopt(), ElementsAre("t1"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000).ok());
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_EQ(exit->signal, SIGTERM);
}

// An agent that dies (or restarts) inside a checkpoint window: whether
// SIGTERM went out is not journaled, so the next agent sends it at once
// rather than leave the task to the SIGKILL deadline, which it keeps.
TEST_F(LauncherTest, AnAgentRestartInsideACheckpointWindowStillEndsTheTask) {
  MustStart(Sh("t1", kSaysWhichSignal));
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  ASSERT_TRUE(launcher_->Stop("t1", 10'000, false, {.signal = SIGUSR1, .window_ms = 60'000}).ok());
  ASSERT_TRUE(WaitForLog("t1", "got USR1"));
  launcher_.reset();
  launcher_ = NewLauncher();
  ASSERT_THAT(launcher_->Adopt(), ElementsAre("t1"));
  std::optional<TaskExit> exit = WaitForExit("t1");  // no clock advance: SIGTERM, not the deadline's SIGKILL
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_THAT(Log("t1"), HasSubstr("got TERM"));
}

TEST_F(LauncherTest, TaskThatEndedWhileTheAgentWasDownIsReportedByTheNextPoll) {
  MustStart(Sh("t1", "exit 5"));
  launcher_.reset();
  ASSERT_TRUE(WaitUntil([&] { return PathExists(tmp_.Sub("state/t1.exit")); }));
  launcher_ = NewLauncher();
  ASSERT_NE(launcher_, nullptr);
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());  // nothing left running
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].task_id, "t1");
  EXPECT_EQ(exits[0].kind, TaskExitKind::kExited);
  EXPECT_EQ(exits[0].exit_code, 5);
}

TEST_F(LauncherTest, StateFileWithoutAnyProcessOrExitFileIsLost) {
  // A shim pid that once existed and is gone: a reaped child of ours. The
  // start time cannot match even if the pid was recycled meanwhile.
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  nlohmann::json state = {{"task_id", "t9"},       {"shim_pid", gone},
                          {"shim_start_ticks", 1}, {"task_pid", gone},
                          {"task_start_ticks", 1}, {"argv", nlohmann::json::array({"sleep", "1000"})}};
  Spit(tmp_.Sub("state/t9.json"), state.dump());
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].task_id, "t9");
  EXPECT_EQ(exits[0].kind, TaskExitKind::kLost);
  EXPECT_EQ(exits[0].exit_code, -1);
  EXPECT_TRUE(PathExists(tmp_.Sub("state/t9.json")));  // until Forget
}

TEST_F(LauncherTest, UnreadableStateFileIsLost) {
  Spit(tmp_.Sub("state/t9.json"), "{ not json");
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].kind, TaskExitKind::kLost);
  EXPECT_THAT(exits[0].reason, HasSubstr("unreadable journal"));
}

TEST_F(LauncherTest, KindNamesAreStable) {
  EXPECT_EQ(TaskExitKindName(TaskExitKind::kOOMKilled), "OOMKilled");
  EXPECT_EQ(TaskExitKindName(TaskExitKind::kLaunchFailed), "LaunchFailed");
}

// --- Exactly once: the agent crashes at every step of a launch. ---
//
// A child process plays the agent: it starts `launch` with a launcher whose
// failpoint `_exit`s at `point`, as a kill -9 would end it there (the shim,
// setsid and out of its way, lives on). The test then restarts the "agent"
// on the same state directory.
class LauncherCrashTest : public LauncherTestBase {
 protected:
  void SetUp() override {
    launcher_ = nullptr;
    marker_ = tmp_.Sub("runs");
  }

  // A task that records each run, waits for the gate file, then exits 0.
  TaskLaunch Counting(const std::string& id) {
    return Sh(id,
              "echo run >> " + marker_ + "; while [ ! -e " + tmp_.Sub("gate") + " ]; do sleep 0.02; done; echo done");
  }
  void OpenGate() { Spit(tmp_.Sub("gate"), ""); }
  int Runs() {
    std::string runs = Slurp(marker_);
    return static_cast<int>(std::count(runs.begin(), runs.end(), '\n'));
  }

  // Runs the crashing agent; returns once it has died at `point`.
  void CrashAt(const std::string& point, const TaskLaunch& launch) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      TaskLauncherOptions o{.state_dir = tmp_.Sub("state"), .log_dir = tmp_.Sub("logs"), .cgroups = Cgroups()};
      o.failpoint = [point](absl::string_view at) {
        if (at == point) _exit(0);
      };
      auto l = TaskLauncher::Create(o);
      if (!l.ok() || !(*l)->Start(launch).ok()) _exit(2);
      for (int i = 0; i < 1000; ++i) {  // for points after the start: until the task ends
        for (const TaskExit& e : (*l)->Poll()) (void)(*l)->Forget(e.task_id);
        usleep(10'000);
      }
      _exit(3);  // the failpoint never fired
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the agent did not stop at " << point;
  }

  std::string marker_;
};

TEST_F(LauncherCrashTest, CrashAfterTheJournalBeforeTheForkLeavesATaskThatNeverStarted) {
  CrashAt("journaled", Counting("t1"));
  launcher_ = NewLauncher();
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  EXPECT_THAT(launcher_->never_started(), ElementsAre("t1"));
  EXPECT_THAT(launcher_->Poll(), IsEmpty());
  EXPECT_EQ(Runs(), 0);
  // Nothing ran, so the controller's assignment may start it now: once.
  MustStart(Counting("t1"));
  OpenGate();
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kExited);
  EXPECT_EQ(Runs(), 1);
}

TEST_F(LauncherCrashTest, CrashAfterTheForkAdoptsTheTaskAndNeverStartsItAgain) {
  CrashAt("forked", Counting("t1"));
  launcher_ = NewLauncher();
  EXPECT_THAT(launcher_->Adopt(), ElementsAre("t1"));
  EXPECT_TRUE(absl::IsAlreadyExists(launcher_->Start(Counting("t1")).status()));
  ASSERT_TRUE(WaitUntil([&] { return Runs() == 1; }));
  OpenGate();
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kExited) << exit->reason;
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(Runs(), 1);
}

TEST_F(LauncherCrashTest, AdoptedTaskCanBeStoppedWhenTheCrashCameBeforeItsPidsWereJournaled) {
  CrashAt("forked", Counting("t1"));
  launcher_ = NewLauncher();
  ASSERT_THAT(launcher_->Adopt(), ElementsAre("t1"));
  ASSERT_TRUE(WaitUntil([&] { return Runs() == 1; }));
  ASSERT_TRUE(launcher_->Stop("t1", 0).ok());
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kCancelled) << exit->reason;
}

TEST_F(LauncherCrashTest, CrashAfterTheExitWasCollectedReportsTheSameExitAgain) {
  OpenGate();
  CrashAt("ended", Counting("t1"));
  launcher_ = NewLauncher();
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].kind, TaskExitKind::kExited) << exits[0].reason;
  EXPECT_EQ(exits[0].exit_code, 0);
  EXPECT_TRUE(absl::IsAlreadyExists(launcher_->Start(Counting("t1")).status()));
  EXPECT_EQ(Runs(), 1);
}

TEST_F(LauncherCrashTest, CrashWhileForgettingReportsTheExitAgainNotALoss) {
  OpenGate();
  CrashAt("forgetting", Counting("t1"));
  launcher_ = NewLauncher();
  launcher_->Adopt();
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].kind, TaskExitKind::kExited) << exits[0].reason;
  // And half-way through the removal: the journal, kept last, still says it.
  ASSERT_TRUE(launcher_->Forget("t1").ok());
  MustStart(Sh("t2", "exit 4"));
  ASSERT_TRUE(WaitForExit("t2").has_value());
  launcher_.reset();
  unlink(tmp_.Sub("state/t2.exit").c_str());
  launcher_ = NewLauncher();
  launcher_->Adopt();
  exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].exit_code, 4) << exits[0].reason;
}

TEST_F(LauncherCrashTest, KilledShimIsLostAndItsTaskDoesNotOutliveTheReport) {
  launcher_ = NewLauncher();
  LaunchedTask task = MustStart(Counting("t1"));
  ASSERT_TRUE(WaitUntil([&] { return Runs() == 1; }));
  launcher_.reset();  // the agent is gone; then someone SIGKILLs the shim
  ASSERT_EQ(kill(task.shim_pid, SIGKILL), 0);
  waitpid(task.shim_pid, nullptr, 0);
  launcher_ = NewLauncher();
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].kind, TaskExitKind::kLost);
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(task.task_pid, 0); }));
}

TEST_F(LauncherCrashTest, JournalOfAnEarlierBootIsLost) {
  launcher_ = NewLauncher();
  nlohmann::json journal = {{"version", 2},      {"task_id", "t9"},     {"phase", "running"},
                            {"boot_id", "gone"}, {"task_pid", 999'999}, {"argv", {"sleep", "1"}}};
  Spit(tmp_.Sub("state/t9.json"), journal.dump());
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  std::vector<TaskExit> exits = launcher_->Poll();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].kind, TaskExitKind::kLost);
  EXPECT_THAT(exits[0].reason, HasSubstr("rebooted"));
}

// --- The lease: a node cut off from the controller stops its tasks. ---

class LauncherLeaseTest : public LauncherTestBase {
 protected:
  void SetUp() override {
    lease_ = tmp_.Sub("lease");
    Renew();
    auto launcher = TaskLauncher::Create({.state_dir = tmp_.Sub("state"),
                                          .log_dir = tmp_.Sub("logs"),
                                          .cgroups = Cgroups(),
                                          .clock = &clock_,
                                          .lease_path = lease_});
    ASSERT_TRUE(launcher.ok()) << launcher.status();
    launcher_ = *std::move(launcher);
  }
  void Renew() { Spit(lease_, absl::StrCat(shim::BootTimeMs(), "\n")); }

  std::string lease_;
};

TEST_F(LauncherLeaseTest, TaskIsStoppedOnceTheLeaseRunsOut) {
  // 3 s of silence allowed: SIGTERM at 0.5 s, SIGKILL at 1 s (3 s less the
  // 2 s margin, and half of that as grace).
  TaskLaunch launch = Sh("t1", "trap '' TERM; echo ready; while :; do sleep 0.05; done");
  launch.max_disconnect_ms = 3'000;
  MustStart(launch);
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  const auto start = std::chrono::steady_clock::now();
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kLeaseExpired) << exit->reason;
  EXPECT_EQ(exit->signal, SIGKILL);
  // Dead before the controller's deadline (3 s after the last contact).
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3'000));
}

TEST_F(LauncherLeaseTest, RenewedLeaseKeepsTheTaskRunning) {
  TaskLaunch launch = Sh("t1", "echo ready; sleep 1000");
  launch.max_disconnect_ms = 3'000;
  MustStart(launch);
  ASSERT_TRUE(WaitForLog("t1", "ready"));
  for (int i = 0; i < 30; ++i) {  // 3 s, renewed every 0.1 s
    Renew();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_THAT(launcher_->Poll(), IsEmpty());
  }
  EXPECT_THAT(launcher_->Running(), ElementsAre("t1"));
}

TEST_F(LauncherLeaseTest, TaskWithoutALeaseLimitIgnoresAnOldLease) {
  Spit(lease_, "1\n");  // contact at boot: long ago
  MustStart(Sh("t1", "sleep 0.5; exit 0"));
  std::optional<TaskExit> exit = WaitForExit("t1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kExited);
}

// ---------------------------------------------------------------------------
// With the real cgroups of this machine (v1 here, v2 on most production
// hosts). Need root; skipped, saying why, otherwise.
// ---------------------------------------------------------------------------

std::string CgroupTestParent() { return absl::StrCat("icos-test-", getpid(), "-launcher"); }

class CgroupLauncherTest : public LauncherTestBase {
 protected:
  CgroupOptions Cgroups() override { return {.parent = CgroupTestParent(), .cluster_id = "c-test"}; }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "cgroup launcher tests need root";
    launcher_ = NewLauncher();
    ASSERT_NE(launcher_, nullptr);
    if (launcher_->cgroups() == nullptr) GTEST_SKIP() << "no usable cgroups: " << launcher_->cgroup_status();
  }

  void TearDown() override {
    LauncherTestBase::TearDown();
    if (launcher_ == nullptr || launcher_->cgroups() == nullptr) return;
    const CgroupLayout& layout = launcher_->cgroups()->layout();
    std::vector<std::string> roots;
    for (const auto& [controller, root] : layout.v1_roots) roots.push_back(root);
    if (!layout.v2_root.empty()) roots.push_back(layout.v2_root);
    for (const std::string& root : roots) {
      rmdir(absl::StrCat(root, "/", CgroupTestParent(), "/c-test").c_str());
      rmdir(absl::StrCat(root, "/", CgroupTestParent()).c_str());
    }
  }

  // The memory group of a task, whichever the version.
  std::string MemoryGroup(const std::string& id) {
    const CgroupLayout& layout = launcher_->cgroups()->layout();
    std::string root = layout.version == CgroupVersion::kV2 ? layout.v2_root : layout.v1_roots.at("memory");
    return absl::StrCat(root, "/", CgroupTestParent(), "/c-test/", id);
  }
};

TEST_F(CgroupLauncherTest, TaskRunsInsideItsOwnCgroup) {
  LaunchedTask task = MustStart(Sh("c1", "cat /proc/self/cgroup"));
  EXPECT_FALSE(task.cgroup_dir.empty());
  ASSERT_TRUE(WaitForExit("c1").has_value());
  EXPECT_THAT(Log("c1"), HasSubstr(absl::StrCat("/", CgroupTestParent(), "/c-test/c1\n")));
}

TEST_F(CgroupLauncherTest, MemoryLimitIsWrittenForTheTask) {
  TaskLaunch launch = Sh("c1", "sleep 1000");
  launch.memory_mib = 128;
  LaunchedTask task = MustStart(launch);
  if (!task.warnings.empty()) GTEST_SKIP() << "limit not applicable here: " << task.warnings[0];
  const CgroupLayout& layout = launcher_->cgroups()->layout();
  std::string file =
      MemoryGroup("c1") + (layout.version == CgroupVersion::kV2 ? "/memory.max" : "/memory.limit_in_bytes");
  EXPECT_EQ(absl::StripAsciiWhitespace(Slurp(file)), "134217728");  // 128 * 2^20
}

// A task id can come back (job ids restart with a new cluster) while its old
// group is still there with a lower limit; on v1 the kernel refuses a
// memory limit above the old memory+swap limit unless that is lifted first.
TEST_F(CgroupLauncherTest, ReusedGroupTakesAHigherMemoryLimit) {
  const CgroupLayout& layout = launcher_->cgroups()->layout();
  const bool v2 = layout.version == CgroupVersion::kV2;
  // The leftover group of an earlier task c1, limited to 16 MiB.
  const std::string group = MemoryGroup("c1");
  std::error_code ec;
  std::filesystem::create_directories(group, ec);
  ASSERT_FALSE(ec) << group << ": " << ec.message();
  const std::string small = "16777216";
  std::ofstream(group + (v2 ? "/memory.max" : "/memory.limit_in_bytes")) << small;
  if (!v2 && PathExists(group + "/memory.memsw.limit_in_bytes")) {
    std::ofstream(group + "/memory.memsw.limit_in_bytes") << small;
  }
  TaskLaunch big = Sh("c1", "sleep 1000");
  big.memory_mib = 256;
  LaunchedTask task = MustStart(big);
  if (!task.warnings.empty()) GTEST_SKIP() << "memory limit not applicable here: " << task.warnings[0];
  EXPECT_EQ(absl::StripAsciiWhitespace(Slurp(group + (v2 ? "/memory.max" : "/memory.limit_in_bytes"))),
            "268435456");  // 256 * 2^20
}

TEST_F(CgroupLauncherTest, TaskAllocatingPastItsMemoryLimitIsOOMKilled) {
  // 300 MiB of touched memory against a 64 MiB limit with swap disabled.
  TaskLaunch launch =
      PathExists("/usr/bin/python3")
          ? TaskLaunch{.task_id = "c1", .argv = {"/usr/bin/python3", "-c", "x = bytearray(300 * 1024 * 1024)"}}
          : Sh("c1", "head -c 300M /dev/zero | tail");
  launch.memory_mib = 64;
  LaunchedTask task = MustStart(launch);
  if (!task.warnings.empty()) GTEST_SKIP() << "memory limit not applicable here: " << task.warnings[0];
  std::optional<TaskExit> exit = WaitForExit("c1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->kind, TaskExitKind::kOOMKilled) << exit->reason;
  EXPECT_EQ(exit->reason, "OOMKilled");
  EXPECT_EQ(exit->exit_code, 128 + SIGKILL);
}

TEST_F(CgroupLauncherTest, StopKillsProcessesThatLeftTheProcessGroup) {
  // setsid moves the sleeper into a session (and group) of its own, out of
  // reach of the group-wide SIGKILL; only the cgroup still holds it.
  MustStart(Sh("c1", "setsid sleep 1000 & echo $! > " + tmp_.Sub("escaped.pid") + "; echo ready; wait"));
  ASSERT_TRUE(WaitForLog("c1", "ready"));
  pid_t escaped = ReadPidFile(tmp_.Sub("escaped.pid"));
  ASSERT_GT(escaped, 0);
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<ProcStat> stat = ReadProcStat(escaped);
    return stat.ok() && stat->pgid == escaped;  // setsid has run
  }));
  ASSERT_TRUE(launcher_->Stop("c1", 0).ok());
  ASSERT_TRUE(WaitForExit("c1").has_value());
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(escaped, 0); }));
}

// The state directory is lost while a task runs (a wiped disk, a new work
// directory): the restarted agent knows nothing of it, the controller will
// call it lost and may run it elsewhere, so it must not run on here.
TEST_F(CgroupLauncherTest, TaskWhoseJournalIsGoneIsKilledAtAdoption) {
  LaunchedTask task = MustStart(Sh("c1", "echo ready; sleep 1000"));
  ASSERT_TRUE(WaitForLog("c1", "ready"));
  launcher_.reset();
  std::filesystem::remove_all(tmp_.Sub("state"));
  launcher_ = NewLauncher();
  ASSERT_NE(launcher_, nullptr);
  EXPECT_THAT(launcher_->Adopt(), IsEmpty());
  EXPECT_THAT(launcher_->orphans_reaped(), ElementsAre("c1"));
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(task.task_pid, 0); }));
}

// sacct's MaxRSS counts a task whole: two processes of 64 MiB each are more
// than the largest of them.
TEST_F(CgroupLauncherTest, MaxRssCountsAllTheTasksProcessesTogether) {
  if (!PathExists("/usr/bin/python3")) GTEST_SKIP() << "needs /usr/bin/python3";
  const std::string hold =
      "/usr/bin/python3 -c \"import time; b = b'x' * (64 << 20); print('held', flush=True); "
      "time.sleep(30)\"";
  MustStart(Sh("c1", hold + " & " + hold + " & wait"));
  if (!absl::StatusOr<int64_t>(launcher_->cgroups()->ResidentKib("c1")).ok()) {
    GTEST_SKIP() << "no memory controller here";
  }
  ASSERT_TRUE(WaitUntil([&] {  // both hold their memory
    const std::string log = Log("c1");
    return std::count(log.begin(), log.end(), '\n') >= 2;
  }));
  launcher_->SampleMemory();
  ASSERT_TRUE(launcher_->Stop("c1", 0).ok());
  std::optional<TaskExit> exit = WaitForExit("c1");
  ASSERT_TRUE(exit.has_value());
  EXPECT_GE(exit->max_rss_kib, 2 * 64 * 1024);
}

TEST_F(CgroupLauncherTest, CgroupIsRemovedOnceTheTaskIsReported) {
  LaunchedTask task = MustStart(Sh("c1", "true"));
  ASSERT_FALSE(task.cgroup_dir.empty());
  ASSERT_TRUE(WaitForExit("c1").has_value());
  EXPECT_TRUE(WaitUntil([&] {
    launcher_->Poll();  // retries removals the kernel refused while exiting
    return !PathExists(task.cgroup_dir);
  }));
}

}  // namespace
}  // namespace icos::agent
