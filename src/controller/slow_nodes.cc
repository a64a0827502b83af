#include "controller/slow_nodes.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace icos::controller {
namespace {

double Median(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  if (v.size() % 2 == 1) return v[mid];
  const double upper = v[mid];
  return (upper + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid))) / 2;
}

template <typename T>
void Push(std::deque<T>& d, T v, int32_t window) {
  d.push_back(std::move(v));
  while (static_cast<int32_t>(d.size()) > std::max(1, window)) d.pop_front();
}

}  // namespace

void SlowNodeDetector::Observe(const std::string& node, double estimate_s, double runtime_s) {
  if (!(estimate_s > 0) || !(runtime_s > 0)) return;
  const double log_ratio = std::log(runtime_s / estimate_s);
  Push(by_node_[node], log_ratio, options_.node_window);
  Push(cluster_, std::make_pair(node, log_ratio), options_.cluster_window);
}

SlowNodeDetector::Verdict SlowNodeDetector::Judge(const std::string& node) const {
  Verdict v;
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return v;
  v.jobs = static_cast<int32_t>(it->second.size());
  std::vector<double> others;
  for (const auto& [n, r] : cluster_) {
    if (n != node) others.push_back(r);
  }
  if (v.jobs < options_.min_jobs || static_cast<int32_t>(others.size()) < options_.min_jobs) return v;
  v.judged = true;
  const double node_median = Median({it->second.begin(), it->second.end()}), others_median = Median(others);
  v.ratio = std::exp(node_median - others_median);
  v.slow = v.ratio >= options_.slow_ratio;
  if (v.slow) {
    v.reason = absl::StrFormat("Slow: its last %d jobs ran a median %.2fx their estimates, other nodes' %.2fx", v.jobs,
                               std::exp(node_median), std::exp(others_median));
  }
  return v;
}

}  // namespace icos::controller
