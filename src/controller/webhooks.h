// Webhooks (docs/api.md, "Webhooks"): a job's `notify:` and its queue's tell
// an HTTP endpoint when the job starts, ends, fails or is preempted.
//
// Delivery is at least once, through an outbox in the store:
//   - WebhookMessages turns a job's committed change into messages, which
//     the controller writes in the same batch as the change itself
//     (store::NotificationRecord): a crash can neither lose one nor send one
//     for a change that never committed;
//   - WebhookSender POSTs what is due, deletes each once an endpoint
//     answers 2xx, and otherwise tries again with back-off until
//     max_attempts, then gives up with a "NotifyFailed" event on the job.
// A crash between an endpoint's 2xx and the delete sends that message again:
// every try carries the same Icos-Delivery id for the endpoint to drop
// repeats by. With a secret, Icos-Signature is "sha256=" and the hex
// HMAC-SHA256 of the body under it (as GitHub signs its webhooks).
//
// Who can reach what: a user's job may only name hosts an admin allowed
// (ControllerOptions::webhooks.allow), so a job cannot make the controller
// call its metadata service or admin ports; redirects are not followed.
// Queue webhooks are set by admins. The list is checked at submit and again
// at each delivery: after an admin narrows it, messages owed to a host no
// longer on it (or on no queue) are dropped with a "NotifyFailed" event.
//
// Thread-safety: WebhookSender's methods may be called from any thread.
#ifndef ICOS_CONTROLLER_WEBHOOKS_H_
#define ICOS_CONTROLLER_WEBHOOKS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/job_spec.h"
#include "common/clock.h"
#include "controller/metrics.h"
#include "store/records.h"
#include "store/state_store.h"

namespace icos::controller {

struct WebhookOptions {
  // Hosts users' jobs may send webhooks to (api::WebhookAllowed; `icos
  // server --notify-allow`). Empty: job webhooks are refused at submit.
  std::vector<std::string> allow;
  std::string secret;          // HMAC key of Icos-Signature; empty: unsigned
  std::string ca_cert_file;    // CAs for https:// endpoints; empty: the system's
  int64_t timeout_ms = 5'000;  // connect and each read
  // Tries before giving up; the wait after the n-th failure is
  // first_retry_ms * 2^(n-1), at most max_retry_ms (10 tries: ~50 minutes).
  int32_t max_attempts = 10;
  int64_t first_retry_ms = 5'000;
  int64_t max_retry_ms = 15 * 60'000;
  int32_t parallel = 8;  // deliveries at once (a slow endpoint holds one)
};

// The webhook messages a committed change of a job owes: `before` is the job
// as it was (nullptr: new), `after` as committed, `events` the change's events
// (they tell a preemption from a requeue). One message per target whose
// `on` asks for the transition: "started", "succeeded", "failed" (also an
// end), "cancelled", "preempted", "moved" or "requeued".
std::vector<store::NotificationRecord> WebhookMessages(const store::JobRecord* before, const store::JobRecord& after,
                                                       const std::vector<api::NotifySpec>& targets,
                                                       const std::vector<store::EventRecord>& events, int64_t now_ms);

// How an array stands, for its array-level messages (NotifySpec::array_tasks
// false): elements by state, and whether one has started.
struct ArrayProgress {
  int32_t elements = 0, open = 0, succeeded = 0, failed = 0, cancelled = 0;
  bool started = false;
  // Adds `delta` to the count of `state` (open: any state but an end).
  void Count(store::JobState state, int delta);
};

// The array-level messages an element's committed change owes, updating
// `array` with it (`before`: the element as it was, nullptr: pending;
// `array` as it stood before, every element counted). "started" when the first element starts; when the
// last one ends, "failed" if any element failed, else "succeeded" (or
// "cancelled" if none succeeded). Preemptions and requeues of elements are
// not told. The message carries the element as "job" and the array's counts
// as "array": {id, elements, succeeded, failed, cancelled}.
std::vector<store::NotificationRecord> ArrayWebhookMessages(const store::JobRecord* before,
                                                            const store::JobRecord& after,
                                                            const std::vector<api::NotifySpec>& targets,
                                                            ArrayProgress& array, int64_t now_ms);

class WebhookSender {
 public:
  // `deliveries` counts outcomes by label: delivered, retried, given_up,
  // refused. `set_by_admin` tells whether a URL is an admin's own (a queue's
  // webhook), which the allow list does not restrict; nullptr: none is.
  WebhookSender(store::StateStore* store, const Clock* clock, WebhookOptions options,
                metrics::CounterFamily* deliveries, std::function<bool(const std::string& url)> set_by_admin = nullptr);
  ~WebhookSender();

  void Start();
  void Stop();
  // Something was written to the outbox: look now.
  void Kick();
  // Tries every message due now once (the thread's round; tests call it);
  // returns how many were delivered.
  int DeliverDue();

 private:
  // One POST; OK on a 2xx.
  absl::Status Post(const store::NotificationRecord& n) const;
  // Why `url` may not be called now ("" when it may).
  std::string Refusal(const std::string& url) const;
  void Loop();

  store::StateStore* const store_;
  const Clock* const clock_;
  const WebhookOptions options_;
  metrics::CounterFamily* const deliveries_;
  const std::function<bool(const std::string&)> set_by_admin_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_WEBHOOKS_H_
