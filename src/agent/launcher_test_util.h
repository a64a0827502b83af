// Helpers shared by the launcher's tests only.
#ifndef ICOS_AGENT_LAUNCHER_TEST_UTIL_H_
#define ICOS_AGENT_LAUNCHER_TEST_UTIL_H_

#include <optional>
#include <string>
#include <utility>

#include "agent/launcher.h"
#include "agent/test_util.h"

namespace icos::agent::testing {

// Polls `launcher` (real time, short sleeps) until task `id` is reported;
// nullopt after 10 s. Other tasks' exits polled meanwhile are dropped.
inline std::optional<TaskExit> WaitForExit(TaskLauncher& launcher, const std::string& id) {
  std::optional<TaskExit> found;
  WaitUntil([&] {
    for (TaskExit& exit : launcher.Poll()) {
      if (exit.task_id == id) found = std::move(exit);
    }
    return found.has_value();
  });
  return found;
}

// Kills every running task and waits until each has ended: a test never
// leaves one behind, whatever it did.
inline void StopEveryTask(TaskLauncher& launcher) {
  for (const std::string& id : launcher.Running()) launcher.Stop(id, 0).IgnoreError();
  WaitUntil([&] {
    launcher.Poll();
    return launcher.Running().empty();
  });
}

}  // namespace icos::agent::testing

#endif  // ICOS_AGENT_LAUNCHER_TEST_UTIL_H_
