#include "net/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

namespace icos::net {
namespace {

// One thread busy and one task waiting fill a pool of one thread and a queue
// of one: the next submission is refused at once, not blocked.
TEST(WorkerPoolTest, FullQueueRefusesAtOnce) {
  WorkerPool pool("test", /*threads=*/1, /*max_queued=*/1);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  ASSERT_TRUE(pool.TrySubmit([&] {
    started.set_value();
    released.wait();
  }));
  started.get_future().wait();
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));
  pool.Submit([&] { ++ran; });  // owed work is taken whatever the queue holds
  EXPECT_EQ(pool.queued(), 2u);
  release.set_value();
  pool.Stop();
  EXPECT_EQ(ran, 2);
}

TEST(WorkerPoolTest, StopRunsWhatIsQueuedThenRefuses) {
  WorkerPool pool("test", 2, 100);
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.TrySubmit([&] { ++ran; }));
  pool.Stop();
  EXPECT_EQ(ran, 50);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));
  pool.Stop();  // idempotent
}

}  // namespace
}  // namespace icos::net
