// TCP ports that tasks hold on their nodes: each rank's own port, and on the
// first rank's node the job's rendezvous port (MASTER_PORT, PADDLE_MASTER,
// MS_SCHED_PORT ...). Ports were once derived from the job id (29500 + id,
// ranks above it), so job N's ranks took job N+1's rendezvous port and two
// jobs on one node collided. Now a scheduling pass books, per node, ports no
// active task there holds, searching from where the job id points (so the
// port a job just released is not handed straight to the next one, whose
// listener could meet the old connections' TIME_WAIT); they are kept in each
// task's assignment (and so in the store), which is what the book is filled
// from.
//
// Thread-safety: none; one pass uses one book.
#ifndef ICOS_ENGINE_PORT_BOOK_H_
#define ICOS_ENGINE_PORT_BOOK_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace icos::engine {

class PortBook {
 public:
  // Ports are booked from [base, base + span).
  PortBook(int32_t base, int32_t span) : base_(base), span_(span) {}

  // `port` is held on `node` (by an active task).
  void Hold(const std::string& node, int32_t port) { used_[node].insert(port); }
  // Books the first free port on `node` at or after base + hint (mod span),
  // wrapping; ResourceExhausted when every port of the range is held there.
  absl::StatusOr<int32_t> Take(const std::string& node, int64_t hint = 0);

 private:
  int32_t base_, span_;
  std::map<std::string, std::set<int32_t>> used_;
};

}  // namespace icos::engine

#endif  // ICOS_ENGINE_PORT_BOOK_H_
