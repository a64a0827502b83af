// TaskLauncher from several threads: a Start does not hold the launcher's
// lock while its task starts, and a held start (StartHeld) stays out of
// Poll, Running and Stop until the caller accepts it, so that no exit is
// reported before the caller has recorded the start.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/launcher.h"
#include "agent/launcher_test_util.h"
#include "agent/sys_util.h"
#include "agent/test_util.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::StopEveryTask;
using ::icos::agent::testing::TempDir;
using ::icos::agent::testing::WaitUntil;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class LauncherConcurrencyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (launcher_ != nullptr) StopEveryTask(*launcher_);
  }

  void Make(std::function<void(absl::string_view)> failpoint = nullptr) {
    auto launcher = TaskLauncher::Create({.state_dir = tmp_.Sub("state"),
                                          .log_dir = tmp_.Sub("logs"),
                                          .cgroups = {.mode = CgroupMode::kDisabled},
                                          .clock = &clock_,
                                          .failpoint = std::move(failpoint)});
    ASSERT_TRUE(launcher.ok()) << launcher.status();
    launcher_ = *std::move(launcher);
  }

  static TaskLaunch Sh(const std::string& id, const std::string& script) {
    return {.task_id = id, .argv = {"/bin/sh", "-c", script}};
  }

  std::optional<TaskExit> WaitForExit(const std::string& id) { return testing::WaitForExit(*launcher_, id); }

  TempDir tmp_;
  icos::FakeClock clock_;
  std::unique_ptr<TaskLauncher> launcher_;
};

// The agent polls for exits on one thread while another starts tasks: a
// start (its journal's fsync, the shim's exec) must not hold that up.
TEST_F(LauncherConcurrencyTest, OtherCallsGoOnWhileATaskStarts) {
  std::promise<void> polled;
  std::shared_future<void> polled_future = polled.get_future().share();
  std::atomic<bool> armed{false}, waited_out{false};
  // Halfway through the start (journaled, not forked yet), the start waits
  // for the test's thread to have polled and listed: with the lock held it
  // would wait the full 10 s and the test would see waited_out.
  Make([&](absl::string_view point) {
    if (point == "journaled" && armed) {
      waited_out = polled_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready;
    }
  });
  ASSERT_TRUE(launcher_->Start(Sh("first", "exit 0")).ok());
  ASSERT_TRUE(WaitForExit("first").has_value());

  armed = true;
  std::thread starter([&] { EXPECT_TRUE(launcher_->Start(Sh("second", "sleep 1000")).ok()); });
  ASSERT_TRUE(WaitUntil([&] { return PathExists(tmp_.Sub("state/second.json")); }));
  EXPECT_THAT(launcher_->Poll(), IsEmpty());
  EXPECT_THAT(launcher_->Running(), IsEmpty());  // not started yet
  EXPECT_TRUE(launcher_->Knows("second"));       // but never started twice
  EXPECT_TRUE(absl::IsAlreadyExists(launcher_->Start(Sh("second", "true")).status()));
  polled.set_value();
  starter.join();
  EXPECT_FALSE(waited_out);
  EXPECT_THAT(launcher_->Running(), ElementsAre("second"));
}

TEST_F(LauncherConcurrencyTest, AHeldTaskIsReportedOnlyOnceAccepted) {
  Make();
  absl::StatusOr<LaunchedTask> started = launcher_->StartHeld(Sh("held", "exit 7"));
  ASSERT_TRUE(started.ok()) << started.status();
  // It ran and ended, but the caller has not recorded its start yet.
  ASSERT_TRUE(WaitUntil([&] { return PathExists(tmp_.Sub("state/held.exit")); }));
  EXPECT_THAT(launcher_->Poll(), IsEmpty());
  EXPECT_THAT(launcher_->Running(), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(launcher_->Stop("held", 0)));
  EXPECT_TRUE(launcher_->Knows("held"));
  EXPECT_TRUE(absl::IsAlreadyExists(launcher_->Start(Sh("held", "true")).status()));

  launcher_->Accept("held");
  std::optional<TaskExit> exit = WaitForExit("held");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 7);
  EXPECT_THAT(launcher_->Poll(), IsEmpty());  // once
}

TEST_F(LauncherConcurrencyTest, TasksStartSideBySideAndEachIsReportedOnce) {
  Make();
  constexpr int kTasks = 8;
  std::vector<std::thread> starters;
  for (int i = 0; i < kTasks; ++i) {
    starters.emplace_back([&, i] {
      const std::string id = "t" + std::to_string(i);
      EXPECT_TRUE(launcher_->StartHeld(Sh(id, "exit " + std::to_string(i))).ok());
      launcher_->Accept(id);
    });
  }
  std::vector<int> codes(kTasks, -1);
  int reported = 0;
  // Polls while the starts are under way, as the agent's report loop does.
  ASSERT_TRUE(WaitUntil([&] {
    for (const TaskExit& e : launcher_->Poll()) {
      ++reported;
      codes[std::stoi(e.task_id.substr(1))] = e.exit_code;
    }
    return reported >= kTasks;
  }));
  for (std::thread& t : starters) t.join();
  EXPECT_THAT(launcher_->Poll(), IsEmpty());
  EXPECT_EQ(reported, kTasks);
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(codes[i], i);
}

}  // namespace
}  // namespace icos::agent
