// The controller test fixture: a real SQLite store in a temp file that a
// test can reopen (a controller restart), a fake clock, and three callers.
#ifndef ICOS_CONTROLLER_CONTROLLER_TEST_UTIL_H_
#define ICOS_CONTROLLER_CONTROLLER_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "controller/controller.h"
#include "store/sqlite_state_store.h"

namespace icos::controller {

// A node with 8 CPUs, 16 GiB and `gpus` NVIDIA A100s.
inline core::Node Node(const std::string& name, int gpus = 0) {
  core::Node n;
  n.name = name;
  n.cpu_milli = 8'000;
  n.memory_mib = 16'384;
  for (int i = 0; i < gpus; ++i) {
    core::Device d;
    d.vendor = "nvidia";
    d.model = "A100";
    d.memory_mib = 81'920;
    n.devices.push_back(d);
  }
  return n;
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("icos-controller-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    std::filesystem::remove(path_);
    Open();
  }
  void TearDown() override {
    controller_.reset();
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  // (Re)opens store and controller on the same database file: a controller restart.
  void Open() {
    controller_.reset();
    store_.reset();
    store::SqliteOptions o;
    o.path = path_;
    auto s = store::SqliteStateStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    auto c = Controller::Create(options_, store_.get(), &clock_);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = *std::move(c);
  }
  std::vector<wire::Assignment> Watch(const std::string& node) {
    auto a = controller_->WatchAssignments(admin_, node, 0, 0);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? a->tasks : std::vector<wire::Assignment>{};
  }
  void Report(const std::string& node, const std::string& task, const std::string& state, int exit_code = 0) {
    wire::TaskStatus s;
    s.task_id = task;
    s.state = state;
    s.exit_code = exit_code;
    ASSERT_TRUE(controller_->Heartbeat(admin_, node, {s}).ok());
  }
  std::string State(int64_t id) {
    auto j = controller_->GetJob(admin_, id);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? store::JobStateName(j->job.state) : "";
  }

  std::string path_;
  ControllerOptions options_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteStateStore> store_;
  std::unique_ptr<Controller> controller_;
  Principal admin_{"test", Role::kAdmin, "admin"};
  Principal alice_{"alice", Role::kUser, "alice"};
  Principal bob_{"bob", Role::kUser, "bob"};
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_CONTROLLER_TEST_UTIL_H_
