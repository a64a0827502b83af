#include "controller/webhooks.h"

#include <algorithm>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/log.h"
#include "controller/authz.h"
#include "protocol/http_client.h"

namespace icos::controller {
namespace {

using store::JobState;

// What happened to the job, as the message's "event" says it, and which
// NotifySpec::on bits ask for it ("" and 0: nothing to tell).
std::pair<std::string, uint32_t> Transition(const store::JobRecord* before, const store::JobRecord& after,
                                            const std::vector<store::EventRecord>& events) {
  const JobState was = before != nullptr ? before->state : JobState::kPending;
  if (store::IsTerminal(was)) return {"", 0};
  switch (after.state) {
    case JobState::kSucceeded:
      return {"succeeded", api::kNotifyEnd};
    case JobState::kFailed:
      return {"failed", api::kNotifyEnd | api::kNotifyFail};
    case JobState::kCancelled:
      return {"cancelled", api::kNotifyEnd};
    default:
      break;
  }
  const bool attempt_ended = before != nullptr && after.attempt > before->attempt;
  auto has_event = [&](const char* kind) {
    return std::any_of(events.begin(), events.end(),
                       [&](const store::EventRecord& e) { return e.job_id == after.id && e.kind == kind; });
  };
  if (was == JobState::kPending && after.state == JobState::kRunning) return {"started", api::kNotifyStart};
  if (was == JobState::kRunning && after.state == JobState::kRunning && attempt_ended) {
    return {"moved", api::kNotifyPreempt};
  }
  if (was == JobState::kRunning && after.state == JobState::kPending) {
    return {has_event("Preempted") ? "preempted" : "requeued", api::kNotifyPreempt};
  }
  return {"", 0};
}

nlohmann::json JobJson(const store::JobRecord& job) {
  return {{"id", job.id},
          {"name", job.name},
          {"user", job.user},
          {"queue", job.queue.empty() ? "default" : job.queue},
          {"state", store::JobStateName(job.state)},
          {"reason", job.reason},
          {"attempt", job.attempt},
          {"array_id", job.array_id},
          {"array_index", job.array_index},
          {"submit_ms", job.submit_ms},
          {"start_ms", job.start_ms},
          {"end_ms", job.end_ms}};
}

// One message per target whose `on` asks for `bits`; two targets with one
// URL (a job's and its queue's) get one.
std::vector<store::NotificationRecord> Addressed(int64_t job_id, const nlohmann::json& message, uint32_t bits,
                                                 const std::vector<api::NotifySpec>& targets, int64_t now_ms) {
  std::vector<store::NotificationRecord> out;
  const std::string body = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (const api::NotifySpec& t : targets) {
    if (t.url.empty() || (t.on & bits) == 0) continue;
    if (std::any_of(out.begin(), out.end(), [&](const store::NotificationRecord& n) { return n.url == t.url; })) {
      continue;
    }
    out.push_back({.job_id = job_id, .url = t.url, .body = body, .next_ms = now_ms});
  }
  return out;
}

}  // namespace

std::vector<store::NotificationRecord> WebhookMessages(const store::JobRecord* before, const store::JobRecord& after,
                                                       const std::vector<api::NotifySpec>& targets,
                                                       const std::vector<store::EventRecord>& events, int64_t now_ms) {
  if (targets.empty()) return {};
  const auto [event, bits] = Transition(before, after, events);
  if (bits == 0) return {};
  return Addressed(after.id, {{"event", event}, {"time_ms", now_ms}, {"job", JobJson(after)}}, bits, targets, now_ms);
}

void ArrayProgress::Count(store::JobState state, int delta) {
  switch (state) {
    case store::JobState::kSucceeded:
      succeeded += delta;
      break;
    case store::JobState::kFailed:
      failed += delta;
      break;
    case store::JobState::kCancelled:
      cancelled += delta;
      break;
    default:
      open += delta;
      break;
  }
}

std::vector<store::NotificationRecord> ArrayWebhookMessages(const store::JobRecord* before,
                                                            const store::JobRecord& after,
                                                            const std::vector<api::NotifySpec>& targets,
                                                            ArrayProgress& array, int64_t now_ms) {
  // Every element is in what the store held (submissions are inserted
  // before any change to them): a change only moves it between counts.
  const store::JobState was = before != nullptr ? before->state : store::JobState::kPending;
  if (was != after.state) {
    array.Count(was, -1);
    array.Count(after.state, +1);
  }
  std::string event;
  uint32_t bits = 0;
  if (after.state == store::JobState::kRunning && !array.started) {
    array.started = true;
    event = "started";
    bits = api::kNotifyStart;
  } else if (store::IsTerminal(after.state) && !store::IsTerminal(was) && array.open == 0) {
    // The last element ended: the array's end, failed if any element failed.
    if (array.failed > 0) {
      event = "failed";
      bits = api::kNotifyEnd | api::kNotifyFail;
    } else {
      event = array.succeeded > 0 ? "succeeded" : "cancelled";
      bits = api::kNotifyEnd;
    }
  }
  if (bits == 0 || targets.empty()) return {};
  const nlohmann::json summary = {{"id", after.array_id != 0 ? after.array_id : after.id},
                                  {"elements", array.elements},
                                  {"succeeded", array.succeeded},
                                  {"failed", array.failed},
                                  {"cancelled", array.cancelled}};
  return Addressed(after.id, {{"event", event}, {"time_ms", now_ms}, {"job", JobJson(after)}, {"array", summary}}, bits,
                   targets, now_ms);
}

WebhookSender::WebhookSender(store::StateStore* store, const Clock* clock, WebhookOptions options,
                             metrics::CounterFamily* deliveries,
                             std::function<bool(const std::string& url)> set_by_admin)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      deliveries_(deliveries),
      set_by_admin_(std::move(set_by_admin)) {}

WebhookSender::~WebhookSender() { Stop(); }

void WebhookSender::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void WebhookSender::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WebhookSender::Kick() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void WebhookSender::Loop() {
  while (!stop_) {
    DeliverDue();
    std::unique_lock<std::mutex> lock(mu_);
    // Retries fall due with time, not with a kick: look once a second.
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_ || kicked_; });
    kicked_ = false;
  }
}

absl::Status WebhookSender::Post(const store::NotificationRecord& n) const {
  absl::StatusOr<api::WebhookUrl> url = api::ParseWebhookUrl(n.url);
  if (!url.ok()) return url.status();
  // No keep-alive: endpoints are many and calls rare. The client follows
  // no redirects, so an allowed host cannot bounce the call elsewhere.
  ApiClient client(url->Origin(), "",
                   ApiClientOptions{.timeout_ms = options_.timeout_ms,
                                    .keep_alive = false,
                                    .ca_cert_file = url->scheme == "https" ? options_.ca_cert_file : "",
                                    .unreachable_hint = "",
                                    // Only the status matters; an endpoint
                                    // that streams a body is cut off.
                                    .max_reply_bytes = 64 * 1024});
  std::map<std::string, std::string> headers = {{"Icos-Delivery", absl::StrCat(n.id)}, {"User-Agent", "icos-webhook"}};
  if (!options_.secret.empty()) headers["Icos-Signature"] = "sha256=" + HmacSha256Hex(options_.secret, n.body);
  absl::StatusOr<HttpReply> reply = client.Request("POST", url->target, n.body, "application/json", headers);
  if (!reply.ok()) return reply.status();
  if (reply->status < 200 || reply->status > 299) {
    return absl::UnavailableError(absl::StrCat("HTTP ", reply->status));
  }
  return absl::OkStatus();
}

std::string WebhookSender::Refusal(const std::string& url) const {
  absl::StatusOr<api::WebhookUrl> parsed = api::ParseWebhookUrl(url);
  if (!parsed.ok()) return std::string(parsed.status().message());
  if (api::WebhookAllowed(*parsed, options_.allow) || (set_by_admin_ && set_by_admin_(url))) return "";
  return absl::StrCat(parsed->host, ":", parsed->port,
                      " is no longer allowed (icos server --notify-allow) nor any queue's webhook; not sent");
}

int WebhookSender::DeliverDue() {
  const int64_t now = clock_->NowMs();
  absl::StatusOr<std::vector<store::NotificationRecord>> due =
      store_->ListDueNotifications(now, std::max(1, options_.parallel) * 8);
  if (!due.ok()) {
    log::Failure("list due webhooks", due.status());
    return 0;
  }
  int delivered = 0;
  const size_t width = static_cast<size_t>(std::max(1, options_.parallel));
  for (size_t from = 0; from < due->size() && !stop_; from += width) {
    const size_t to = std::min(due->size(), from + width);
    // Checked at each delivery, not only at submit: an admin who narrows
    // the allow list stops what accepted jobs still owe.
    std::vector<std::string> refused(to - from);
    std::vector<std::future<absl::Status>> tries(to - from);
    for (size_t i = from; i < to; ++i) {
      refused[i - from] = Refusal((*due)[i].url);
      if (!refused[i - from].empty()) continue;
      tries[i - from] = std::async(std::launch::async, [this, &n = (*due)[i]] { return Post(n); });
    }
    store::WriteBatch batch;
    for (size_t i = from; i < to; ++i) {
      store::NotificationRecord n = (*due)[i];
      if (const std::string& why = refused[i - from]; !why.empty()) {
        batch.done_notifications.push_back(n.id);
        batch.events.push_back({.job_id = n.job_id,
                                .time_ms = now,
                                .kind = "NotifyFailed",
                                .message = absl::StrCat("webhook ", n.url, ": ", why)});
        deliveries_->Inc({"refused"});
        continue;
      }
      const absl::Status sent = tries[i - from].get();
      if (sent.ok()) {
        batch.done_notifications.push_back(n.id);
        deliveries_->Inc({"delivered"});
        ++delivered;
        continue;
      }
      ++n.attempts;
      n.last_error = std::string(sent.message());
      const std::string fields =
          absl::StrCat("job=", n.job_id, " delivery=", n.id, " attempt=", n.attempts, " url=", log::Field(n.url));
      log::Failure("webhook delivery", sent, fields);
      if (n.attempts >= options_.max_attempts) {
        batch.done_notifications.push_back(n.id);
        batch.events.push_back(
            {.job_id = n.job_id,
             .time_ms = now,
             .kind = "NotifyFailed",
             .message = absl::StrCat("webhook ", n.url, " gave up after ", n.attempts, " tries: ", n.last_error)});
        deliveries_->Inc({"given_up"});
        continue;
      }
      n.next_ms = now + DoublingBackoffMs(options_.first_retry_ms, options_.max_retry_ms, n.attempts);
      batch.notifications.push_back(std::move(n));
      deliveries_->Inc({"retried"});
    }
    if (absl::Status st = store_->Apply(std::move(batch)); !st.ok()) log::Failure("record webhook deliveries", st);
  }
  return delivered;
}

}  // namespace icos::controller
