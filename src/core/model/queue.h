// Queues: a tree of tenants with guaranteed shares, limits and weights.
#ifndef ICOS_CORE_MODEL_QUEUE_H_
#define ICOS_CORE_MODEL_QUEUE_H_

#include <cstdint>
#include <map>
#include <string>

namespace icos::core {

// Amounts keyed by resource name. Names:
//   "cpu"            millicores
//   "memory"         MiB
//   "devices"        milli-devices of any type (a whole device = 1000)
//   "<vendor>"       milli-devices of that vendor, e.g. "ascend"
//   "<vendor>/<model>" milli-devices of that type, e.g. "nvidia/A100-80G"
// A key that is absent from a limit means "no limit on that resource".
using ResourceAmounts = std::map<std::string, int64_t>;

// A named priority of a queue (Kubernetes' PriorityClass, set per queue by
// an admin): a job that names it gets its priority, whatever the queue's
// max_priority, and with `preempts` false it never preempts others.
struct PriorityClass {
  int32_t priority = 0;
  bool preempts = true;
  bool operator==(const PriorityClass&) const = default;
};

// One queue. Usage of a queue includes all its descendants. A queue may use
// more than its guarantee ("borrow") while capacity is idle, never more than
// its limit; borrowed capacity is what reclaim preempts first.
struct Queue {
  std::string name;
  std::string parent;   // empty: child of the implicit root
  double weight = 1.0;  // fair-share weight among siblings (DRF order)
  ResourceAmounts guaranteed;
  ResourceAmounts limit;
  // false: idle guarantee of this queue is held back for it, not lent to others.
  bool lend_idle = true;
  // false: jobs of this queue never exceed its guarantee.
  bool may_borrow = true;
  // The highest job priority its users may ask for (admins may ask for any).
  // Priority decides who preempts whom within a queue, so this bounds what
  // one user can do to another's running jobs. The scheduler does not read
  // it; the controller refuses jobs above it.
  int32_t max_priority = 0;
  // Named priorities its jobs may ask for (`priority_class:` in a spec),
  // and the one a job that names neither a class nor a priority gets ("":
  // none). Read by the controller at submission, not by the scheduler.
  std::map<std::string, PriorityClass> priority_classes;
  std::string default_priority_class;
  // A running job of this queue is not preempted (nor moved) before its run
  // is this old: Slurm's PreemptExemptTime. 0: at any time.
  int64_t min_run_ms = 0;
  // Fair share over time (Slurm's PriorityDecayHalfLife, KAI's time-aware
  // fairness): what the queue used in the past counts in its DRF share,
  // halving every this many seconds (core/resources/usage_history.h). 0: only
  // what it holds now counts.
  int64_t usage_half_life_s = 0;
  // A webhook for every job of the queue (api::NotifySpec: the URL and the
  // bits of the events it asks for). The scheduler does not read them; the
  // controller delivers them (controller/webhooks.h).
  std::string notify_url;
  uint32_t notify_on = 15;
};

}  // namespace icos::core

#endif  // ICOS_CORE_MODEL_QUEUE_H_
