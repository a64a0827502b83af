#include "engine/port_book.h"

#include "absl/strings/str_cat.h"

namespace icos::engine {

absl::StatusOr<int32_t> PortBook::Take(const std::string& node, int64_t hint) {
  std::set<int32_t>& used = used_[node];
  const int32_t from = base_ + static_cast<int32_t>(((hint % span_) + span_) % span_);
  // Held ports are sorted: walk them from `from`, then from base_ (wrapped).
  for (const auto& [lo, hi] : {std::pair{from, base_ + span_}, std::pair{base_, from}}) {
    int32_t port = lo;
    for (auto it = used.lower_bound(lo); it != used.end() && *it == port && port < hi; ++it) ++port;
    if (port < hi) {
      used.insert(port);
      return port;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat("node '", node, "' has every task port in ", base_, "-",
                                                   base_ + span_ - 1, " held by running tasks"));
}

}  // namespace icos::engine
