// `icos demo`: one scheduling pass over a generated mixed-vendor cluster,
// printed for people (table) or scripts (json).
#ifndef ICOS_CLI_DEMO_H_
#define ICOS_CLI_DEMO_H_

#include <cstdint>
#include <ostream>
#include <string>

namespace icos::cli {

struct DemoOptions {
  int32_t nodes = 8;
  int32_t jobs = 24;
  int32_t running = 10;
  uint64_t seed = 1;
  std::string order = "drf";
  std::string placement = "binpack";
  std::string output = "table";
};

// Returns the process exit code: 0 on success, 1 if the scheduler refused the input.
int RunDemo(const DemoOptions& options, std::ostream& out, std::ostream& err);

}  // namespace icos::cli

#endif  // ICOS_CLI_DEMO_H_
