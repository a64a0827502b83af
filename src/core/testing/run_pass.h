// One scheduling pass for hand-written scheduler tests, failing the test
// (not crashing it) when the options or the snapshot are refused.
#ifndef ICOS_CORE_TESTING_RUN_PASS_H_
#define ICOS_CORE_TESTING_RUN_PASS_H_

#include <gtest/gtest.h>

#include <utility>

#include "core/scheduler.h"

namespace icos::core::testing {

inline Decisions RunPass(const Snapshot& s, SchedulerOptions opt = {}) {
  auto sched = Scheduler::Create(std::move(opt));
  EXPECT_TRUE(sched.ok()) << sched.status();
  if (!sched.ok()) return {};
  auto d = sched->Schedule(s);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *std::move(d) : Decisions{};
}

}  // namespace icos::core::testing

#endif  // ICOS_CORE_TESTING_RUN_PASS_H_
