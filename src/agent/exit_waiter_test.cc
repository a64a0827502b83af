#include "agent/exit_waiter.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

namespace icos::agent {
namespace {

// Long enough that returning before it can only mean a wake-up.
constexpr int kLongMs = 60'000;

double SecondsOf(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(ExitWaiterTest, AWatchedProcessThatExitsWakesTheWaiter) {
  ExitWaiter waiter;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    usleep(200'000);
    _exit(0);
  }
  waiter.Watch(child);
  EXPECT_EQ(waiter.watched(), 1u);
  // The exit wakes it: long before the timeout, and the process is no longer watched.
  EXPECT_LT(SecondsOf([&] { waiter.Wait(kLongMs); }), kLongMs / 2000.0);
  EXPECT_EQ(waiter.watched(), 0u);
  int status = 0;
  EXPECT_EQ(waitpid(child, &status, 0), child);  // the exit is still the caller's to collect
}

TEST(ExitWaiterTest, WakeFromAnotherThreadEndsTheWait) {
  ExitWaiter waiter;
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    waiter.Wake();
  });
  EXPECT_LT(SecondsOf([&] { waiter.Wait(kLongMs); }), kLongMs / 2000.0);
  waker.join();
}

TEST(ExitWaiterTest, WithNothingToReportItWaitsForTheTimeout) {
  ExitWaiter waiter;
  EXPECT_GE(SecondsOf([&] { waiter.Wait(50); }), 0.045);
}

TEST(ExitWaiterTest, AnExitNotYetCollectedDoesNotSpin) {
  ExitWaiter waiter;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  waiter.Watch(child);
  waiter.Wait(kLongMs);  // the exit
  // The zombie is not reaped, yet it no longer wakes the waiter.
  EXPECT_EQ(waiter.watched(), 0u);
  EXPECT_GE(SecondsOf([&] { waiter.Wait(50); }), 0.045);
  waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace icos::agent
