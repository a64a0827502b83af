// Spots nodes where jobs run slower than the cluster expected of them: a
// thermally throttled GPU, a bad NIC, a noisy neighbour. The evidence is the
// run-time estimates the scheduler already has (learned or given): a job that
// ran 1.6x its estimate says little, but a node where the last jobs ran a
// median 1.6x while the other nodes' ran 1.0x is slow. The node's figure is
// normalised by the rest of the cluster's (not the whole cluster's, which
// the node itself would pull towards it on a small cluster), so an estimator
// that is biased everywhere flags nothing.
//
// Pure logic, no I/O. Thread-safety: none; the controller calls it under its lock.
#ifndef ICOS_CONTROLLER_SLOW_NODES_H_
#define ICOS_CONTROLLER_SLOW_NODES_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

namespace icos::controller {

struct SlowNodeOptions {
  int32_t node_window = 50;        // a node's most recent jobs considered
  int32_t cluster_window = 1'000;  // the cluster's most recent jobs, the baseline
  int32_t min_jobs = 10;           // no verdict on fewer jobs of a node, or of the other nodes
  double slow_ratio = 1.3;         // node median / cluster median at or above this: slow
};

class SlowNodeDetector {
 public:
  explicit SlowNodeDetector(const SlowNodeOptions& options = {}) : options_(options) {}

  // A job that ran on `node` alone took `runtime_s` against `estimate_s`
  // (both > 0; others are ignored).
  void Observe(const std::string& node, double estimate_s, double runtime_s);

  struct Verdict {
    int32_t jobs = 0;     // of the node in the window
    bool judged = false;  // enough jobs here and on the other nodes to say
    double ratio = 1.0;   // its median run time / estimate over the other nodes'; 1 unless judged
    bool slow = false;
    std::string reason;  // set when slow: what a person reads in `icos nodes`
  };
  Verdict Judge(const std::string& node) const;

 private:
  const SlowNodeOptions options_;
  std::map<std::string, std::deque<double>> by_node_;   // log(run time / estimate)
  std::deque<std::pair<std::string, double>> cluster_;  // (node, log ratio)
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_SLOW_NODES_H_
