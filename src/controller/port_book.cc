#include "controller/port_book.h"

#include "absl/strings/str_cat.h"

namespace icos::controller {

absl::StatusOr<int32_t> PortBook::Take(const std::string& node) {
  std::set<int32_t>& used = used_[node];
  // The held ports are sorted: the first gap at or after base_ is the answer.
  int32_t port = base_;
  for (auto it = used.lower_bound(base_); it != used.end() && *it == port; ++it) ++port;
  if (port >= base_ + span_) {
    return absl::ResourceExhaustedError(absl::StrCat("node '", node, "' has every task port in ", base_, "-",
                                                     base_ + span_ - 1, " held by running tasks"));
  }
  used.insert(port);
  return port;
}

}  // namespace icos::controller
