#include "store/group_commit.h"

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace icos::store {
namespace {

// 8 threads submit while each commit takes a moment: callers that arrive
// during a commit share the next one, and every caller gets its own id.
TEST(GroupCommitQueueTest, ConcurrentCallersShareCommitsAndEachGetsItsId) {
  GroupCommitQueue queue(1024);
  std::mutex mu;
  int64_t next_id = 1;
  int commits = 0;
  auto commit = [&](const std::vector<JobRecord*>& group) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a durable commit's fsync
    std::lock_guard<std::mutex> lock(mu);
    ++commits;
    for (JobRecord* job : group) job->id = next_id++;
    return absl::OkStatus();
  };
  constexpr int kThreads = 8, kPerThread = 25;
  std::vector<std::vector<int64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        JobRecord job;
        EXPECT_TRUE(queue.Insert(&job, commit).ok());
        ids[t].push_back(job.id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<int64_t> distinct;
  for (const auto& v : ids) distinct.insert(v.begin(), v.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(distinct.count(0), 0u);
  EXPECT_LT(commits, kThreads * kPerThread) << "no two submits ever shared a commit";
}

// A group that fails fails every job in it, and only those; with a cap of one
// each caller is its own group, so exactly the bad ones fail.
TEST(GroupCommitQueueTest, AFailedGroupFailsItsMembersOnly) {
  GroupCommitQueue queue(1);
  std::atomic<int64_t> next_id{1};
  auto commit = [&](const std::vector<JobRecord*>& group) {
    EXPECT_EQ(group.size(), 1u);
    for (JobRecord* job : group) {
      if (job->name == "bad") return absl::UnavailableError("disk gone");
    }
    for (JobRecord* job : group) job->id = next_id++;
    return absl::OkStatus();
  };
  std::atomic<int> failed{0}, succeeded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        JobRecord job;
        job.name = (t + i) % 4 == 0 ? "bad" : "good";
        const absl::Status s = queue.Insert(&job, commit);
        if (job.name == "bad") {
          EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
          EXPECT_EQ(job.id, 0);
          ++failed;
        } else {
          EXPECT_TRUE(s.ok()) << s;
          EXPECT_GT(job.id, 0);
          ++succeeded;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 20);
  EXPECT_EQ(succeeded.load(), 60);
}

}  // namespace
}  // namespace icos::store
