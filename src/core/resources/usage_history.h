// Fair share over time: each queue's past usage, decayed by its half-life
// (Queue::usage_half_life_s; Slurm's PriorityDecayHalfLife, KAI's time-aware
// fairness). A queue that used much yesterday yields today.
//
// Kept as the steady amount that would have given the decayed usage: an
// exponential moving average of what the queue held, E(t + d) = E(t) 2^(-d/h)
// + held (1 - 2^(-d/h)). A queue that has held 8 devices for many
// half-lives has 8; one that held 8 for one half-life and then nothing for
// another has 2. The drf order adds it to what the queue holds now
// (Snapshot::past_usage). The live cluster (engine) and the simulator both
// advance one at each pass, from the running jobs.
//
// Thread-safety: none.
#ifndef ICOS_CORE_RESOURCES_USAGE_HISTORY_H_
#define ICOS_CORE_RESOURCES_USAGE_HISTORY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/model/queue.h"
#include "core/model/snapshot.h"

namespace icos::core {

class UsageHistory {
 public:
  // Takes the interval since the last call as spent holding `held` (queue
  // name -> amounts, the Queue resource names); queues with no half-life
  // keep none. The first call only starts the clock.
  void Advance(int64_t now_ms, const std::vector<Queue>& queues, const std::map<std::string, ResourceAmounts>& held);
  // What Snapshot::past_usage wants: per queue with a history, its amounts
  // (rounded; those below one milli-unit left out).
  std::map<std::string, ResourceAmounts> Equivalent() const;
  // A pass's step, as the engine and the simulator take it: when some queue
  // of `snap` has a half-life, advances to snap.now_ms with what its running
  // jobs hold and sets snap.past_usage; else leaves both alone (no cost).
  void Update(Snapshot& snap);

  // What running jobs hold, per queue: whole and shared devices (milli) under
  // "devices", "<vendor>" and "<vendor>/<model>", and CPU and memory.
  static std::map<std::string, ResourceAmounts> Held(const Snapshot& snap);

 private:
  int64_t last_ms_ = -1;
  std::map<std::string, std::map<std::string, double>> average_;  // queue -> resource -> amount
};

}  // namespace icos::core

#endif  // ICOS_CORE_RESOURCES_USAGE_HISTORY_H_
