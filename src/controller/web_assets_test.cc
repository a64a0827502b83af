// The embedded dashboard and the API additions it relies on: static files with
// their types and cache headers, /api/v1/whoami, per-device allocations in the
// nodes view and per-queue usage.
#include "controller/web_assets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"
#include "controller/http_server.h"
#include "protocol/http_client.h"
#include "store/sqlite_state_store.h"

namespace icos::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(WebAssetsTest, RootServesIndexHtml) {
  const WebAsset* root = FindWebAsset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root, FindWebAsset("/index.html"));
  EXPECT_THAT(std::string(root->data), HasSubstr("<html"));
  EXPECT_EQ(FindWebAsset("/no-such-file.js"), nullptr);
  EXPECT_EQ(FindWebAsset("/../etc/passwd"), nullptr);
}

TEST(WebAssetsTest, EveryEmbeddedFileHasAKnownContentType) {
  for (size_t i = 0; i < kNumWebAssets; ++i) {
    EXPECT_NE(ContentTypeFor(kWebAssets[i].path), "application/octet-stream") << kWebAssets[i].path;
  }
}

TEST(WebAssetsTest, ContentTypeByExtension) {
  EXPECT_EQ(ContentTypeFor("/index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("/assets/index-AbC123.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("/assets/index-AbC123.css"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("/favicon.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeFor("/blob"), "application/octet-stream");
}

TEST(WebAssetsTest, HashedAssetsAreImmutableIndexIsRevalidated) {
  EXPECT_THAT(std::string(CacheControlFor("/assets/index-AbC123.js")), HasSubstr("immutable"));
  EXPECT_EQ(CacheControlFor("/index.html"), "no-cache");
}

core::Node GpuNode(const std::string& name, int gpus) {
  core::Node n;
  n.name = name;
  n.cpu_milli = 8'000;
  n.memory_mib = 16'384;
  for (int i = 0; i < gpus; ++i) {
    core::Device d;
    d.vendor = "nvidia";
    d.model = "A100";
    d.memory_mib = 81'920;
    n.devices.push_back(d);
  }
  return n;
}

class DashboardApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("icos-web-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    std::filesystem::remove(path_);
    store::SqliteOptions o;
    o.path = path_;
    auto s = store::SqliteStateStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    auto c = Controller::Create({}, store_.get(), &clock_);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = *std::move(c);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    controller_.reset();
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  // Serves the API on a free port; returns a client for it.
  std::unique_ptr<httplib::Client> Serve(int max_waiting_watches = 32) {
    HttpServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.max_waiting_watches = max_waiting_watches;
    server_ = std::make_unique<HttpServer>(controller_.get(), o);
    EXPECT_TRUE(server_->Start().ok());
    return std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }

  std::string path_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteStateStore> store_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<HttpServer> server_;
  Principal admin_{"test", Role::kAdmin, "admin"};
  Principal alice_{"alice", Role::kUser, "alice"};
};

TEST_F(DashboardApiTest, ServesDashboardAtRootWithoutToken) {
  auto client = Serve();
  auto r = client->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  EXPECT_THAT(r->body, HasSubstr("<html"));
  if (!kWebAssetsBuilt) GTEST_SKIP() << "web/dist was not built: only the how-to-build page is embedded";
  int assets = 0;
  for (size_t i = 0; i < kNumWebAssets; ++i) {
    const std::string path(kWebAssets[i].path);
    if (path.rfind("/assets/", 0) != 0) continue;
    ++assets;
    auto a = client->Get(path.c_str());
    ASSERT_TRUE(a) << path;
    EXPECT_EQ(a->status, 200) << path;
    EXPECT_EQ(a->body.size(), kWebAssets[i].data.size()) << path;
    EXPECT_EQ(a->get_header_value("Content-Type"), ContentTypeFor(path));
    EXPECT_THAT(a->get_header_value("Cache-Control"), HasSubstr("immutable"));
  }
  EXPECT_GT(assets, 0) << "a built dashboard has its scripts under /assets/";
  // Unknown files under /assets/ are the API's JSON 404, not index.html.
  auto missing = client->Get("/assets/nope.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(DashboardApiTest, WhoamiNamesUserAndRole) {
  auto admin = controller_->BootstrapAdminToken();
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto alice = controller_->CreateToken(admin_, Role::kUser, "alice", "alice laptop");
  ASSERT_TRUE(alice.ok()) << alice.status();
  auto client = Serve();
  auto r = client->Get("/api/v1/whoami", {{"Authorization", "Bearer " + *alice}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["role"], "user");
  EXPECT_EQ(j["name"], "alice laptop");

  r = client->Get("/api/v1/whoami", {{"Authorization", "Bearer " + *admin}});
  ASSERT_TRUE(r);
  EXPECT_EQ(nlohmann::json::parse(r->body)["role"], "admin");

  r = client->Get("/api/v1/whoami", {{"Authorization", "Bearer icos_wrong"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(nlohmann::json::parse(r->body)["code"], "Unauthenticated");
}

// One agent token may serve every node: its calls are limited per node, so
// a large cluster is not throttled as one client; other tokens per token.
TEST(RateKeyTest, AgentTokensAreLimitedPerNode) {
  const Principal agent{"local-agents", Role::kAgent, ""};
  EXPECT_EQ(RateKey(agent, "/api/v1/nodes/gpu-17/heartbeat"), "local-agents@gpu-17");
  EXPECT_EQ(RateKey(agent, "/api/v1/nodes/gpu-18/assignments"), "local-agents@gpu-18");
  EXPECT_EQ(RateKey(agent, "/api/v1/nodes/register"), "local-agents");  // joining: no node yet
  const Principal alice{"alice laptop", Role::kUser, "alice"};
  EXPECT_EQ(RateKey(alice, "/api/v1/nodes/gpu-17"), "alice laptop");
}

TEST(RateLimiterTest, LimitsEachKeyAndForgetsRefilledOnesPastTheCap) {
  RateLimiter limiter(/*rate_per_s=*/0.001, /*burst=*/2);
  EXPECT_TRUE(limiter.Allow("a"));
  EXPECT_TRUE(limiter.Allow("a"));
  EXPECT_FALSE(limiter.Allow("a"));  // burst spent; refills at 0.001/s
  EXPECT_TRUE(limiter.Allow("b"));   // another key has its own bucket
  // Past the cap, buckets that have refilled (here at once) are dropped.
  RateLimiter fast(/*rate_per_s=*/1e9, /*burst=*/2);
  EXPECT_TRUE(fast.Allow("spent"));
  for (size_t i = 0; i < RateLimiter::kMaxKeys + 10; ++i) fast.Allow(absl::StrCat("node-", i));
  EXPECT_LT(fast.keys(), 100u);
}

// A port nothing listens on (bound, then closed): connecting is refused.
int DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// With standby controllers the CLI and agents are given every controller;
// standbys do not listen, so a refused connection moves on to the next one.
TEST_F(DashboardApiTest, ClientMovesOnToTheControllerThatListens) {
  auto admin = controller_->BootstrapAdminToken();
  ASSERT_TRUE(admin.ok()) << admin.status();
  Serve();
  const std::string dead = absl::StrCat("http://127.0.0.1:", DeadPort());
  const std::string live = absl::StrCat("http://127.0.0.1:", server_->port());
  ApiClient client(absl::StrCat(dead, ", ", live), *admin, 2'000);
  absl::StatusOr<nlohmann::json> me = client.Json("GET", "/api/v1/whoami");
  ASSERT_TRUE(me.ok()) << me.status();
  EXPECT_EQ((*me)["role"], "admin");
  EXPECT_EQ(client.base_url(), live);
  // A write that could not connect is sent on too (it never reached anyone).
  ApiClient writer(absl::StrCat(dead, ",", live), *admin, 2'000);
  absl::StatusOr<nlohmann::json> queue = writer.Json("PUT", "/api/v1/queues/ha", R"({"name": "ha", "quota": {}})");
  EXPECT_NE(queue.status().code(), absl::StatusCode::kUnavailable) << queue.status();
  EXPECT_EQ(writer.base_url(), live);

  ApiClient nobody(absl::StrCat(dead, ",", dead), *admin, 2'000);
  absl::StatusOr<nlohmann::json> none = nobody.Json("GET", "/api/v1/whoami");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(none.status().message(), HasSubstr(absl::StrCat("cannot reach ", dead, ": Connection; ", dead)));
}

// Past max_waiting_watches, an assignment watch does not wait: it answers at
// once with retry_ms, so agents cannot hold every worker thread. Here one
// watch waits (on the only free thread but one) and a second is turned away;
// the API still answers meanwhile.
TEST_F(DashboardApiTest, WatchesBeyondTheLimitAnswerAtOnceWithRetry) {
  auto admin = controller_->BootstrapAdminToken();
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE(controller_->RegisterNode(admin_, GpuNode("n1", 1), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  auto client = Serve(/*max_waiting_watches=*/1);
  const httplib::Headers auth = {{"Authorization", "Bearer " + *admin}};
  auto first = client->Get("/api/v1/nodes/n1/assignments?since=0", auth);
  ASSERT_TRUE(first && first->status == 200);
  const uint64_t version = nlohmann::json::parse(first->body)["version"].get<uint64_t>();
  const std::string watch = "/api/v1/nodes/n1/assignments?since=" + std::to_string(version) + "&wait_ms=1500";
  std::thread waiter([&] {
    httplib::Client c("127.0.0.1", server_->port());
    auto r = c.Get(watch, auth);
    ASSERT_TRUE(r && r->status == 200);
    EXPECT_FALSE(nlohmann::json::parse(r->body).contains("retry_ms"));  // it waited its turn
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the waiter holds the one waiting slot
  const auto start = std::chrono::steady_clock::now();
  httplib::Client second("127.0.0.1", server_->port());
  auto r = second.Get(watch, auth);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_EQ(nlohmann::json::parse(r->body).value("retry_ms", 0), 1'000);
  EXPECT_LT(waited, 1.0);  // turned away, not kept
  auto who = second.Get("/api/v1/whoami", auth);
  ASSERT_TRUE(who && who->status == 200);
  waiter.join();
}

// A heartbeat whose device figures are bad (a utilisation of 150%) is still
// a heartbeat: the task states in it are applied and the figures dropped.
TEST_F(DashboardApiTest, BadDeviceFiguresDoNotLoseTheTaskStatesBesideThem) {
  auto admin = controller_->BootstrapAdminToken();
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE(controller_->RegisterNode(admin_, GpuNode("n1", 1), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, "tasks:\n  - command: [\"x\"]\n    resources: {devices: 1}\n");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto client = Serve();
  const std::string task = wire::TaskId(*id, 0, 0, 0);
  const nlohmann::json beat = {{"tasks", {{{"task_id", task}, {"state", "Running"}}}},
                               {"devices", {{{"utilization_pct", 150}}}}};
  auto r = client->Post("/api/v1/nodes/n1/heartbeat", {{"Authorization", "Bearer " + *admin}}, beat.dump(),
                        "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // The reply sets the agent's pace: a second in a cluster this small.
  EXPECT_EQ(nlohmann::json::parse(r->body).value("heartbeat_ms", 0), 1'000);
  auto job = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->tasks.size(), 1u);
  EXPECT_EQ(store::TaskStateName(job->tasks[0].state), std::string("Running"));
  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  EXPECT_TRUE((*nodes)[0].usage.empty());
}

// One job holds a whole GPU, another half of one: the nodes view names both
// on their devices, and the queue's usage is 1.5 GPUs (1000 + 500 milli).
TEST_F(DashboardApiTest, NodesShowAllocationsAndQueuesShowUsage) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, GpuNode("n1", 2), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  auto whole = controller_->Submit(alice_, R"(
name: whole
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 1, memory: 1Gi, devices: 1}
)");
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto half = controller_->Submit(alice_, R"(
name: half
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 1, memory: 1Gi, device_share: 50%}
)");
  ASSERT_TRUE(half.ok()) << half.status();
  ASSERT_TRUE(controller_->RunPass().ok());

  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  const NodeView& n = (*nodes)[0];
  EXPECT_EQ(n.tasks, 2);
  ASSERT_EQ(n.allocations.size(), 2u);
  std::map<int64_t, DeviceAllocation> by_job;
  for (const auto& a : n.allocations) by_job[a.job_id] = a;
  EXPECT_EQ(by_job[*whole].job_name, "whole");
  EXPECT_EQ(by_job[*whole].percent, 100);
  EXPECT_EQ(by_job[*whole].user, "alice");
  EXPECT_THAT(by_job[*whole].task_id, StartsWith("j" + std::to_string(*whole) + "-"));
  EXPECT_EQ(by_job[*half].job_name, "half");
  EXPECT_EQ(by_job[*half].percent, 50);
  EXPECT_NE(by_job[*whole].device, by_job[*half].device);  // a whole device is not shared

  // Another user sees both devices taken, but not whose jobs hold them.
  Principal bob{"bob", Role::kUser, "bob"};
  auto theirs = controller_->ListNodes(bob);
  ASSERT_TRUE(theirs.ok());
  ASSERT_EQ((*theirs)[0].allocations.size(), 2u);
  for (const auto& a : (*theirs)[0].allocations) {
    EXPECT_EQ(a.job_id, 0);
    EXPECT_EQ(a.job_name, "");
    EXPECT_EQ(a.user, "");
    EXPECT_GT(a.percent, 0);
  }
  auto own = controller_->ListNodes(alice_);
  ASSERT_TRUE(own.ok());
  EXPECT_NE((*own)[0].allocations[0].job_id, 0);

  auto queues = controller_->ListQueues(admin_);
  ASSERT_TRUE(queues.ok());
  ASSERT_EQ(queues->size(), 1u);
  const auto& used = (*queues)[0].used;
  EXPECT_EQ(used.at("devices"), 1'500);
  EXPECT_EQ(used.at("nvidia"), 1'500);
  EXPECT_EQ(used.at("nvidia/A100"), 1'500);
  EXPECT_EQ(used.at("cpu"), 2'000);

  // The API in users' units: 1.5 devices.
  auto admin = controller_->BootstrapAdminToken();
  ASSERT_TRUE(admin.ok());
  auto client = Serve();
  auto r = client->Get("/api/v1/queues", {{"Authorization", "Bearer " + *admin}});
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r->body)["queues"][0]["used"]["nvidia/A100"].get<double>(), 1.5);
  r = client->Get("/api/v1/nodes", {{"Authorization", "Bearer " + *admin}});
  ASSERT_TRUE(r);
  EXPECT_EQ(nlohmann::json::parse(r->body)["nodes"][0]["allocations"].size(), 2u);
}

// Usage of a child queue counts toward its parent too, as quotas do.
TEST_F(DashboardApiTest, QueueUsageRollsUpToParent) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, GpuNode("n1", 2), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  core::Queue org{.name = "org"};
  core::Queue team{.name = "team", .parent = "org"};
  ASSERT_TRUE(controller_->PutQueue(admin_, org).ok());
  ASSERT_TRUE(controller_->PutQueue(admin_, team).ok());
  auto id = controller_->Submit(alice_, R"(
queue: team
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 1, memory: 1Gi, devices: 2}
)");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto queues = controller_->ListQueues(admin_);
  ASSERT_TRUE(queues.ok());
  std::map<std::string, core::ResourceAmounts> used;
  for (const auto& q : *queues) used[q.queue.name] = q.used;
  EXPECT_EQ(used["team"]["devices"], 2'000);
  EXPECT_EQ(used["org"]["devices"], 2'000);
  EXPECT_EQ(used["default"].count("devices"), 0u);
}

}  // namespace
}  // namespace icos::controller
