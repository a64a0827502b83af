#include "controller/webhook_outbox.h"

#include <string>
#include <utility>
#include <vector>

namespace icos::controller {

absl::StatusOr<std::set<int64_t>> WebhookOutbox::Add(engine::Change& c, const engine::Engine& engine) {
  std::set<int64_t> arrays_touched;
  for (const auto& [id, j] : c.jobs) {
    // An array element's own messages go only where asked for
    // (notify.array_tasks); otherwise its array's, as Slurm mails.
    std::vector<api::NotifySpec> own, of_array;
    const bool element = j.rec.array_id != 0;
    if (!j.spec.notify.url.empty()) (element && !j.spec.notify.array_tasks ? of_array : own).push_back(j.spec.notify);
    if (auto q = engine.queues().find(j.rec.queue); q != engine.queues().end() && !q->second.notify_url.empty()) {
      (element ? of_array : own).push_back({q->second.notify_url, q->second.notify_on});
    }
    const engine::JobEntry* before_entry = engine.FindJob(id);
    const store::JobRecord* before = before_entry != nullptr ? &before_entry->rec : nullptr;
    if (!own.empty()) {
      for (store::NotificationRecord& n : WebhookMessages(before, j.rec, own, c.batch.events, c.now_ms)) {
        c.batch.notifications.push_back(std::move(n));
      }
    }
    if (of_array.empty()) continue;
    absl::StatusOr<ArrayProgress*> progress = ProgressOf(j.rec.array_id);
    if (!progress.ok()) {
      Settle(arrays_touched, /*committed=*/false);  // counted this change in: read them again
      return progress.status();
    }
    arrays_touched.insert(j.rec.array_id);
    for (store::NotificationRecord& n : ArrayWebhookMessages(before, j.rec, of_array, **progress, c.now_ms)) {
      c.batch.notifications.push_back(std::move(n));
    }
  }
  return arrays_touched;
}

void WebhookOutbox::Settle(const std::set<int64_t>& arrays, bool committed) {
  for (int64_t a : arrays) {
    auto it = arrays_.find(a);
    // An array whose last element ended is done with.
    if (it != arrays_.end() && (!committed || it->second.open == 0)) arrays_.erase(it);
  }
}

absl::StatusOr<ArrayProgress*> WebhookOutbox::ProgressOf(int64_t array_id) {
  if (auto it = arrays_.find(array_id); it != arrays_.end()) return &it->second;
  // First seen since this controller started: how the store has it (the
  // change being made is not in it yet).
  absl::StatusOr<std::vector<store::JobRecord>> elements = store_->ListJobs(store::JobQuery{.array_id = array_id});
  if (!elements.ok()) return elements.status();
  ArrayProgress& p = arrays_[array_id];
  for (const store::JobRecord& e : *elements) {
    ++p.elements;
    p.Count(e.state, +1);
    p.started = p.started || e.start_ms > 0;
  }
  return &p;
}

}  // namespace icos::controller
