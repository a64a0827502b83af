// Webhooks (issue #19): which changes owe a message, that the outbox commits
// with the change, and delivery to a real HTTP endpoint with retries, a
// stable delivery id and a signature.
#include "controller/webhooks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"
#include "controller/controller_test_util.h"

namespace icos::controller {
namespace {

using store::JobRecord;
using store::JobState;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

JobRecord Rec(JobState state, int32_t attempt = 0) {
  JobRecord r;
  r.id = 7;
  r.name = "train";
  r.user = "alice";
  r.state = state;
  r.attempt = attempt;
  return r;
}

std::string EventOf(const store::NotificationRecord& n) { return nlohmann::json::parse(n.body).at("event"); }

TEST(WebhookMessagesTest, EachTransitionIsNamedAndFilteredByOn) {
  const std::vector<api::NotifySpec> all = {{"http://h/all", api::kNotifyAll}};
  const JobRecord pending = Rec(JobState::kPending), running = Rec(JobState::kRunning);
  auto one = [&](const JobRecord* before, const JobRecord& after, std::vector<store::EventRecord> events = {}) {
    std::vector<store::NotificationRecord> m = WebhookMessages(before, after, all, events, 1'000);
    return m.size() == 1 ? EventOf(m[0]) : absl::StrCat(m.size(), " messages");
  };
  EXPECT_EQ(one(&pending, running), "started");
  EXPECT_EQ(one(&running, Rec(JobState::kSucceeded)), "succeeded");
  EXPECT_EQ(one(&running, Rec(JobState::kFailed)), "failed");
  EXPECT_EQ(one(&pending, Rec(JobState::kCancelled)), "cancelled");
  EXPECT_EQ(one(&running, Rec(JobState::kPending, 1), {{.job_id = 7, .kind = "Preempted"}}), "preempted");
  EXPECT_EQ(one(&running, Rec(JobState::kPending, 1)), "requeued");
  EXPECT_EQ(one(&running, Rec(JobState::kRunning, 1)), "moved");
  EXPECT_EQ(one(&running, running), "0 messages");  // a task report that changed nothing the job shows
  EXPECT_EQ(one(nullptr, pending), "0 messages");   // submitted: the caller already knows
  const JobRecord done = Rec(JobState::kSucceeded);
  EXPECT_EQ(one(&done, done), "0 messages");  // an ended job's tasks finishing stopping

  // `on` picks: a failure is an end too; a start is not asked for here.
  const std::vector<api::NotifySpec> ends = {{"http://h/ends", api::kNotifyEnd}, {"http://h/fails", api::kNotifyFail}};
  EXPECT_EQ(WebhookMessages(&running, Rec(JobState::kFailed), ends, {}, 0).size(), 2u);
  EXPECT_EQ(WebhookMessages(&running, Rec(JobState::kSucceeded), ends, {}, 0).size(), 1u);
  EXPECT_THAT(WebhookMessages(&pending, running, ends, {}, 0), IsEmpty());
  // One URL named by the job and its queue gets one message.
  EXPECT_EQ(WebhookMessages(&pending, running, {all[0], all[0]}, {}, 0).size(), 1u);

  const std::vector<store::NotificationRecord> m = WebhookMessages(&running, Rec(JobState::kFailed), all, {}, 5'000);
  ASSERT_EQ(m.size(), 1u);
  const nlohmann::json body = nlohmann::json::parse(m[0].body);
  EXPECT_EQ(body["job"]["id"], 7);
  EXPECT_EQ(body["job"]["state"], "Failed");
  EXPECT_EQ(body["job"]["user"], "alice");
  EXPECT_EQ(body["time_ms"], 5'000);
  EXPECT_EQ(m[0].next_ms, 5'000);
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(digest[i], absl::kZeroPad2));
  return hex;
}

// An HTTP endpoint on a free local port that records what it is sent and
// answers `status`.
class Receiver {
 public:
  Receiver() {
    server_.Post("/hook(/queue)?", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(req);
      res.status = status_;
      if (!body_.empty()) res.set_content(body_, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port_, "/hook"); }
  void Answer(int status, std::string body = "") {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    body_ = std::move(body);
  }
  std::vector<httplib::Request> Got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int status_ = 204;
  std::string body_;
  std::vector<httplib::Request> got_;
};

class WebhookDeliveryTest : public ControllerTest {
 protected:
  std::vector<store::NotificationRecord> Outbox() {
    return *store_->ListDueNotifications(std::numeric_limits<int64_t>::max(), 0);
  }
  metrics::CounterFamily deliveries_{"d", "", {"outcome"}};
  Receiver receiver_;
};

// An array told of as a whole: its first start, and one end once the last
// element ended, failed when one did, with the counts.
TEST(ArrayWebhookMessagesTest, TheFirstStartAndTheLastEndAreTold) {
  const std::vector<api::NotifySpec> to = {{.url = "http://h/a"}};
  ArrayProgress array;
  std::vector<store::JobRecord> e(3);
  for (int i = 0; i < 3; ++i) {
    e[i] = {.id = 10 + i, .state = JobState::kPending, .array_id = 10, .array_index = i};
    ++array.elements;
    array.Count(JobState::kPending, +1);
  }
  auto step = [&](int i, JobState to_state) {
    store::JobRecord before = e[i];
    e[i].state = to_state;
    std::vector<std::string> out;
    for (const auto& n : ArrayWebhookMessages(&before, e[i], to, array, 1'000)) out.push_back(n.body);
    return out;
  };
  std::vector<std::string> started = step(0, JobState::kRunning);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(started[0])["event"], "started");
  EXPECT_THAT(step(1, JobState::kRunning), IsEmpty());
  EXPECT_THAT(step(0, JobState::kSucceeded), IsEmpty());
  EXPECT_THAT(step(1, JobState::kFailed), IsEmpty());
  EXPECT_THAT(step(2, JobState::kRunning), IsEmpty());
  std::vector<std::string> ended = step(2, JobState::kSucceeded);
  ASSERT_EQ(ended.size(), 1u);
  const nlohmann::json end = nlohmann::json::parse(ended[0]);
  EXPECT_EQ(end["event"], "failed");
  EXPECT_EQ(end["array"],
            nlohmann::json::parse(R"({"id": 10, "elements": 3, "succeeded": 2, "failed": 1, "cancelled": 0})"));
  EXPECT_EQ(end["job"]["id"], 12);
}

TEST_F(WebhookDeliveryTest, ADeliveredMessageIsSignedAndLeavesTheOutbox) {
  ASSERT_TRUE(
      store_
          ->Apply({.notifications =
                       {{.job_id = 7, .url = receiver_.Url(), .body = "{\"event\":\"x\"}", .next_ms = clock_.NowMs()}}})
          .ok());
  const int64_t id = Outbox().at(0).id;
  WebhookSender sender(store_.get(), &clock_, WebhookOptions{.allow = {"127.0.0.1"}, .secret = "s3cret"}, &deliveries_);
  EXPECT_EQ(sender.DeliverDue(), 1);
  ASSERT_EQ(receiver_.Got().size(), 1u);
  const httplib::Request got = receiver_.Got()[0];
  EXPECT_EQ(got.body, "{\"event\":\"x\"}");
  EXPECT_EQ(got.get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(got.get_header_value("Icos-Delivery"), absl::StrCat(id));
  EXPECT_EQ(got.get_header_value("Icos-Signature"), "sha256=" + Hmac("s3cret", got.body));
  EXPECT_THAT(Outbox(), IsEmpty());
  EXPECT_EQ(deliveries_.Value({"delivered"}), 1);
}

TEST_F(WebhookDeliveryTest, AFailingEndpointIsRetriedWithBackOffThenGivenUpOnWithAnEvent) {
  receiver_.Answer(503);
  ASSERT_TRUE(
      store_->Apply({.notifications = {{.job_id = 7, .url = receiver_.Url(), .body = "{}", .next_ms = clock_.NowMs()}}})
          .ok());
  WebhookSender sender(
      store_.get(), &clock_,
      WebhookOptions{.allow = {"127.0.0.1"}, .max_attempts = 3, .first_retry_ms = 1'000, .max_retry_ms = 60'000},
      &deliveries_);
  EXPECT_EQ(sender.DeliverDue(), 0);
  ASSERT_EQ(Outbox().size(), 1u);
  EXPECT_EQ(Outbox()[0].attempts, 1);
  EXPECT_EQ(Outbox()[0].last_error, "HTTP 503");
  EXPECT_EQ(Outbox()[0].next_ms, clock_.NowMs() + 1'000);
  EXPECT_EQ(sender.DeliverDue(), 0);  // not due yet: nothing sent
  EXPECT_EQ(receiver_.Got().size(), 1u);
  clock_.Advance(1'000);
  sender.DeliverDue();
  EXPECT_EQ(Outbox()[0].next_ms, clock_.NowMs() + 2'000);  // doubled
  clock_.Advance(2'000);
  sender.DeliverDue();
  EXPECT_THAT(Outbox(), IsEmpty());
  ASSERT_EQ(receiver_.Got().size(), 3u);
  // Every try of one message carries the same delivery id.
  EXPECT_EQ(receiver_.Got()[0].get_header_value("Icos-Delivery"), receiver_.Got()[2].get_header_value("Icos-Delivery"));
  auto events = store_->ListEvents(7, 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].kind, "NotifyFailed");
  EXPECT_THAT((*events)[0].message, HasSubstr("gave up after 3 tries: HTTP 503"));
  EXPECT_EQ(deliveries_.Value({"retried"}), 2);
  EXPECT_EQ(deliveries_.Value({"given_up"}), 1);
}

// An endpoint is someone else's server: its answer is read up to 64 KiB,
// never into memory whole. A longer one counts as a failed try.
TEST_F(WebhookDeliveryTest, AnEndpointsReplyIsReadOnlyUpToACap) {
  receiver_.Answer(200, std::string(10 << 20, 'x'));
  ASSERT_TRUE(
      store_->Apply({.notifications = {{.job_id = 7, .url = receiver_.Url(), .body = "{}", .next_ms = clock_.NowMs()}}})
          .ok());
  WebhookSender sender(store_.get(), &clock_, WebhookOptions{.allow = {"127.0.0.1"}}, &deliveries_);
  EXPECT_EQ(sender.DeliverDue(), 0);
  ASSERT_EQ(Outbox().size(), 1u);
  EXPECT_THAT(Outbox()[0].last_error, HasSubstr("more than 65536 bytes"));
  // A short answer is read and the message delivered.
  receiver_.Answer(200, "thanks");
  clock_.Advance(60'000);
  EXPECT_EQ(sender.DeliverDue(), 1);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(WebhookDeliveryTest, AnUnreachableEndpointDoesNotHoldUpTheOthers) {
  // A port nothing listens on: refused at once; the good one is still sent.
  ASSERT_TRUE(
      store_
          ->Apply({.notifications =
                       {{.job_id = 1, .url = "http://127.0.0.1:1/hook", .body = "{}", .next_ms = clock_.NowMs()},
                        {.job_id = 2, .url = receiver_.Url(), .body = "{}", .next_ms = clock_.NowMs()}}})
          .ok());
  WebhookSender sender(store_.get(), &clock_, WebhookOptions{.allow = {"127.0.0.1"}, .timeout_ms = 2'000},
                       &deliveries_);
  EXPECT_EQ(sender.DeliverDue(), 1);
  ASSERT_EQ(Outbox().size(), 1u);
  EXPECT_EQ(Outbox()[0].job_id, 1);
  EXPECT_THAT(Outbox()[0].last_error, HasSubstr("cannot reach"));
}

// An admin narrowed the allow list (a restart with another --notify-allow):
// what accepted jobs still owe to a host no longer on it is not sent, and
// says so on the job; a queue's webhook (an admin's own) still goes.
TEST_F(WebhookDeliveryTest, AHostNoLongerAllowedIsNotCalledUnlessItIsAQueuesWebhook) {
  const std::string queue_url = receiver_.Url() + "/queue";
  ASSERT_TRUE(
      store_
          ->Apply({.notifications = {{.job_id = 3, .url = receiver_.Url(), .body = "{}", .next_ms = clock_.NowMs()},
                                     {.job_id = 4, .url = queue_url, .body = "{}", .next_ms = clock_.NowMs()}}})
          .ok());
  WebhookSender sender(store_.get(), &clock_, WebhookOptions{.allow = {"hooks.corp.example"}}, &deliveries_,
                       [&](const std::string& url) { return url == queue_url; });
  EXPECT_EQ(sender.DeliverDue(), 1);
  ASSERT_EQ(receiver_.Got().size(), 1u);
  EXPECT_EQ(receiver_.Got()[0].path, "/hook/queue");
  EXPECT_THAT(Outbox(), IsEmpty());
  auto events = store_->ListEvents(3, 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].kind, "NotifyFailed");
  EXPECT_THAT((*events)[0].message, HasSubstr("no longer allowed"));
  EXPECT_EQ(deliveries_.Value({"refused"}), 1);
  EXPECT_EQ(deliveries_.Value({"delivered"}), 1);
}

// Through the controller: a job's notify is checked against the allow list
// at submit, and its start and end land in the outbox with the change.
class ControllerWebhookTest : public ControllerTest {
 protected:
  void SetUp() override {
    options_.webhooks.allow = {"127.0.0.1", "*.corp.example"};
    ControllerTest::SetUp();
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  }
  std::vector<std::string> OutboxEvents() {
    std::vector<std::string> out;
    const std::vector<store::NotificationRecord> outbox =
        *store_->ListDueNotifications(std::numeric_limits<int64_t>::max(), 0);
    for (const auto& n : outbox) {
      out.push_back(absl::StrCat(n.url, " ", EventOf(n)));
    }
    return out;
  }
};

TEST_F(ControllerWebhookTest, OnlyAllowedHostsMayBeNotified) {
  const std::string tasks = "tasks: [{command: [\"true\"]}]\n";
  EXPECT_TRUE(controller_->Submit(alice_, "notify: http://ci.corp.example/x\n" + tasks, SubmitOptions{}).ok());
  absl::StatusOr<int64_t> refused =
      controller_->Submit(alice_, "notify: http://169.254.169.254/latest\n" + tasks, SubmitOptions{});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("does not send webhooks to 169.254.169.254:80"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--notify-allow"));
}

TEST_F(ControllerWebhookTest, AStartAndAnEndCommitTheirMessagesForTheJobAndItsQueue) {
  core::Queue bad{.name = "team"};
  bad.notify_url = "ftp://hooks.corp.example/team";
  EXPECT_THAT(controller_->PutQueue(admin_, bad).message(), HasSubstr("queue notify: webhook URL: only http"));
  EXPECT_THAT(
      wire::QueueFromJson(nlohmann::json::parse(R"({"name": "team", "notify": {"url": "http://h/", "on": ["x"]}})"))
          .status()
          .message(),
      HasSubstr("\"x\" is not an event"));
  core::Queue q{.name = "team"};
  q.notify_url = "http://hooks.corp.example/team";
  q.notify_on = api::kNotifyFail;
  ASSERT_TRUE(controller_->PutQueue(admin_, q).ok());
  auto id = controller_->Submit(
      alice_, "queue: team\nnotify: {url: 'http://127.0.0.1:9/j', on: [start, end]}\ntasks: [{command: [\"x\"]}]\n",
      SubmitOptions{});
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_THAT(OutboxEvents(), ::testing::ElementsAre("http://127.0.0.1:9/j started"));
  Report("n1", wire::TaskId(*id, 0, 0, 0), "Running");
  Report("n1", wire::TaskId(*id, 0, 0, 0), "Failed", 3);
  EXPECT_EQ(State(*id), "Failed");
  EXPECT_THAT(OutboxEvents(),
              ::testing::UnorderedElementsAre("http://127.0.0.1:9/j started", "http://127.0.0.1:9/j failed",
                                              "http://hooks.corp.example/team failed"));
  // The queue's webhook survives a restart (it is in the queue's record).
  Open();
  auto queues = controller_->ListQueues(admin_);
  ASSERT_TRUE(queues.ok());
  bool found = false;
  for (const QueueView& v : *queues) {
    if (v.queue.name == "team") {
      found = true;
      EXPECT_EQ(v.queue.notify_url, "http://hooks.corp.example/team");
      EXPECT_EQ(v.queue.notify_on, api::kNotifyFail);
    }
  }
  EXPECT_TRUE(found);
  // Users see that a queue has a webhook, not where it goes (it may hold a secret).
  const std::vector<QueueView> seen_by_alice = *controller_->ListQueues(alice_);
  for (const QueueView& v : seen_by_alice) {
    if (v.queue.name == "team") {
      EXPECT_EQ(v.queue.notify_url, "(hidden)");
    }
  }
}

// An array of three with notify: one "started", one end; with
// array_tasks, each element's own. A queue's webhook tells of the array.
TEST_F(ControllerWebhookTest, AnArrayIsToldOfAsAWholeUnlessEachElementIsAskedFor) {
  core::Queue q{.name = "team"};
  q.notify_url = "http://hooks.corp.example/team";
  ASSERT_TRUE(controller_->PutQueue(admin_, q).ok());
  const std::string tasks = "tasks: [{command: [\"x\"], resources: {cpu: 1, memory: 1Gi}}]\n";
  auto whole = controller_->Submit(alice_, "queue: team\narray: 0-2\nnotify: http://127.0.0.1:9/a\n" + tasks);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_THAT(OutboxEvents(), ::testing::UnorderedElementsAre("http://127.0.0.1:9/a started",
                                                              "http://hooks.corp.example/team started"));
  for (int i = 0; i < 3; ++i) {
    const std::string task = wire::TaskId(*whole + i, 0, 0, 0);
    Report("n1", task, "Running");
    Report("n1", task, i == 1 ? "Failed" : "Succeeded", i == 1 ? 1 : 0);
  }
  EXPECT_THAT(OutboxEvents(),
              ::testing::UnorderedElementsAre("http://127.0.0.1:9/a started", "http://hooks.corp.example/team started",
                                              "http://127.0.0.1:9/a failed", "http://hooks.corp.example/team failed"));

  const std::vector<store::NotificationRecord> sent = *store_->ListDueNotifications(INT64_MAX, 0);
  store::WriteBatch delivered;
  for (const auto& n : sent) delivered.done_notifications.push_back(n.id);
  ASSERT_TRUE(store_->Apply(std::move(delivered)).ok());
  auto each = controller_->Submit(
      alice_, "array: 0-1\nnotify: {url: 'http://127.0.0.1:9/e', on: [start], array_tasks: true}\n" + tasks);
  ASSERT_TRUE(each.ok()) << each.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_THAT(OutboxEvents(), ::testing::ElementsAre("http://127.0.0.1:9/e started", "http://127.0.0.1:9/e started"));
}

// After a restart the array's progress is read from the store: no second
// "started", and the end still comes once, when the last element ends.
TEST_F(ControllerWebhookTest, AnArraysProgressSurvivesARestart) {
  auto id = controller_->Submit(
      alice_, "array: 0-1\nnotify: http://127.0.0.1:9/a\ntasks: [{command: [x], resources: {cpu: 1, memory: 1Gi}}]\n");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  Report("n1", wire::TaskId(*id, 0, 0, 0), "Running");
  Report("n1", wire::TaskId(*id, 0, 0, 0), "Succeeded");
  EXPECT_THAT(OutboxEvents(), ::testing::ElementsAre("http://127.0.0.1:9/a started"));
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  Report("n1", wire::TaskId(*id + 1, 0, 0, 0), "Running");
  Report("n1", wire::TaskId(*id + 1, 0, 0, 0), "Succeeded");
  EXPECT_EQ(State(*id + 1), "Succeeded");
  EXPECT_THAT(OutboxEvents(),
              ::testing::UnorderedElementsAre("http://127.0.0.1:9/a started", "http://127.0.0.1:9/a succeeded"));
}

}  // namespace
}  // namespace icos::controller
