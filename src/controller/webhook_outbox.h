// What committed job changes owe to webhooks (docs/api.md, "Webhooks"): the
// messages of each change, added to its store batch so that they commit
// with it (the outbox that WebhookSender delivers), and the progress of
// each array told of as a whole. Kept apart from the controller, which
// only calls Add before a commit and Settle after it.
//
// Thread-safety: none; the controller calls it under its lock.
#ifndef ICOS_CONTROLLER_WEBHOOK_OUTBOX_H_
#define ICOS_CONTROLLER_WEBHOOK_OUTBOX_H_

#include <cstdint>
#include <map>
#include <set>

#include "absl/status/statusor.h"
#include "controller/webhooks.h"
#include "engine/engine.h"
#include "store/state_store.h"

namespace icos::controller {

class WebhookOutbox {
 public:
  explicit WebhookOutbox(store::StateStore* store) : store_(store) {}

  // Adds the messages `c`'s jobs owe (their `notify:` and their queue's;
  // an array element's, its array's unless notify.array_tasks) to c.batch,
  // judged against the jobs as `engine` holds them before the change.
  // Returns the arrays whose progress it counted the change in, for
  // Settle. An error (the store could not say how an array stands) leaves
  // every count as it was.
  absl::StatusOr<std::set<int64_t>> Add(engine::Change& c, const engine::Engine& engine);
  // After the commit of a change Add counted `arrays` in: `committed`
  // keeps the counts (and forgets arrays whose last element ended); a
  // failed commit forgets them, to be read from the store again.
  void Settle(const std::set<int64_t>& arrays, bool committed);

 private:
  // The progress of an array, read from the store when not yet known.
  absl::StatusOr<ArrayProgress*> ProgressOf(int64_t array_id);

  store::StateStore* const store_;
  // Arrays told of as a whole whose elements have not all ended; memory
  // only (read from the store again after a restart).
  std::map<int64_t, ArrayProgress> arrays_;
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_WEBHOOK_OUTBOX_H_
