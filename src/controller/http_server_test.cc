// The API server under the load that once starved it: waiting watches,
// floods of unauthenticated requests, invented methods. (The dashboard's
// routes and the rate limiter are tested in web_assets_test.cc; the server's
// own deadlines and caps in src/net.)
#include "controller/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "net/test_util.h"
#include "store/sqlite_state_store.h"

namespace icos::controller {
namespace {

using ::testing::HasSubstr;
using namespace ::icos::net::testing;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

core::Node CpuNode(const std::string& name) {
  core::Node n;
  n.name = name;
  n.cpu_milli = 8'000;
  n.memory_mib = 16'384;
  return n;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("icos-http-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    std::filesystem::remove(path_);
    auto s = store::SqliteStateStore::Open({.path = path_});
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    auto c = Controller::Create({}, store_.get(), &clock_);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = *std::move(c);
    auto admin = controller_->BootstrapAdminToken();
    ASSERT_TRUE(admin.ok());
    admin_token_ = *admin;
    ASSERT_TRUE(controller_->RegisterNode(admin_, CpuNode("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    for (int fd : fds_) ::close(fd);
    controller_.reset();
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  void Serve(HttpServerOptions o = {}) {
    o.port = 0;
    server_ = std::make_unique<HttpServer>(controller_.get(), o);
    ASSERT_TRUE(server_->Start().ok());
  }
  std::string Auth() const { return "Authorization: Bearer " + admin_token_ + "\r\n"; }
  // Sends a request on a new raw connection (kept open until the test ends).
  int Send(const std::string& method, const std::string& target, const std::string& headers) {
    const int fd = Connect(server_->port());
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    EXPECT_TRUE(SendAll(fd, method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n"));
    return fd;
  }
  uint64_t Version() {
    auto a = controller_->WatchAssignments(admin_, "n1", 0, 0);
    EXPECT_TRUE(a.ok());
    return a->version;
  }
  std::string Metrics() {
    httplib::Client client("127.0.0.1", server_->port());
    auto r = client.Get("/metrics");
    return r ? r->body : "";
  }

  std::string path_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteStateStore> store_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<HttpServer> server_;
  std::vector<int> fds_;
  std::string admin_token_;
  Principal admin_{"test", Role::kAdmin, "admin"};
  Principal alice_{"alice", Role::kUser, "alice"};
};

// A watch waits without a thread and answers as soon as a pass assigns the
// node a task, not at its timeout.
TEST_F(HttpServerTest, WatchAnswersWhenTheNodesAssignmentsChange) {
  Serve();
  const uint64_t v = Version();
  const int fd = Send("GET", absl::StrCat("/api/v1/nodes/n1/assignments?since=", v, "&wait_ms=20000"), Auth());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(ReadResponse(fd, 50), "");  // still waiting
  auto id = controller_->Submit(alice_, "tasks:\n  - command: [\"true\"]\n    resources: {cpu: 1}\n");
  ASSERT_TRUE(id.ok()) << id.status();
  const auto start = Clock::now();
  ASSERT_TRUE(controller_->RunPass().ok());
  const std::string r = ReadResponse(fd, 5'000);
  EXPECT_LT(SecondsSince(start), 2.0);
  ASSERT_EQ(StatusOf(r), 200) << r;
  const auto body = nlohmann::json::parse(BodyOf(r));
  EXPECT_GT(body["version"].get<uint64_t>(), v);
  EXPECT_EQ(body["tasks"].size(), 1u);
  EXPECT_FALSE(body.contains("retry_ms"));
}

// Unchanged, a watch answers at its timeout with the assignments as they are.
TEST_F(HttpServerTest, WatchTimesOutWithTheCurrentAssignments) {
  Serve();
  const uint64_t v = Version();
  const auto start = Clock::now();
  const int fd = Send("GET", absl::StrCat("/api/v1/nodes/n1/assignments?since=", v, "&wait_ms=300"), Auth());
  const std::string r = ReadResponse(fd, 5'000);
  EXPECT_GE(SecondsSince(start), 0.29);
  ASSERT_EQ(StatusOf(r), 200) << r;
  EXPECT_EQ(nlohmann::json::parse(BodyOf(r))["version"].get<uint64_t>(), v);
  // A watch from a stale version answers at once; a user may not watch.
  EXPECT_EQ(StatusOf(ReadResponse(Send("GET", "/api/v1/nodes/n1/assignments?since=0&wait_ms=20000", Auth()), 2'000)),
            200);
  auto alice = controller_->CreateToken(admin_, Role::kUser, "alice", "alice");
  ASSERT_TRUE(alice.ok());
  const std::string denied =
      ReadResponse(Send("GET", absl::StrCat("/api/v1/nodes/n1/assignments?since=", v, "&wait_ms=20000"),
                        "Authorization: Bearer " + *alice + "\r\n"),
                   2'000);
  EXPECT_EQ(StatusOf(denied), 403);
}

// A thousand waiting watches on a pool of two agent threads: heartbeats and
// user calls are still answered at once, and every watch is answered when
// the controller stops being quiet.
TEST_F(HttpServerTest, ThousandsOfWatchesHoldNoThreads) {
  HttpServerOptions o;
  o.agent_threads = 2;
  o.threads = 2;
  // All from 127.0.0.1, and a waiting watch is never evicted: the address
  // cap must hold them all (as for agents behind one NAT address).
  o.limits.max_connections_per_address = 4'096;
  Serve(o);
  const uint64_t v = Version();
  std::vector<int> watches;
  constexpr int kWatches = 1'000;
  for (int i = 0; i < kWatches; ++i) {
    watches.push_back(Send("GET", absl::StrCat("/api/v1/nodes/n1/assignments?since=", v, "&wait_ms=20000"), Auth()));
  }
  for (int i = 0; i < 500 && Metrics().find(absl::StrCat("icos_http_waiting_watches ", kWatches)) == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(Metrics(), HasSubstr(absl::StrCat("icos_http_waiting_watches ", kWatches)));
  const auto start = Clock::now();
  const std::string beat = R"({"tasks": []})";
  httplib::Client client("127.0.0.1", server_->port());
  auto r = client.Post("/api/v1/nodes/n1/heartbeat", {{"Authorization", "Bearer " + admin_token_}}, beat,
                       "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = client.Get("/api/v1/whoami", {{"Authorization", "Bearer " + admin_token_}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(SecondsSince(start), 2.0);
  // One change answers them all.
  ASSERT_TRUE(controller_->Submit(alice_, "tasks:\n  - command: [\"true\"]\n    resources: {cpu: 1}\n").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  int answered = 0;
  for (int fd : watches) answered += StatusOf(ReadResponse(fd, 5'000)) == 200;
  EXPECT_EQ(answered, kWatches);
}

// Requests without a known token run on their own small pool: a flood of
// them is turned away there (401, or 503 when its queue is full) while
// authenticated users are served.
TEST_F(HttpServerTest, UnauthenticatedFloodCannotStarveAuthenticatedCalls) {
  HttpServerOptions o;
  o.anonymous_threads = 1;
  o.anonymous_queue = 1;
  Serve(o);
  httplib::Client client("127.0.0.1", server_->port());
  const httplib::Headers auth = {{"Authorization", "Bearer " + admin_token_}};
  ASSERT_EQ(client.Get("/api/v1/whoami", auth)->status, 200);  // the token is known from now on
  std::vector<int> flood;
  for (int i = 0; i < 300; ++i) flood.push_back(Send("GET", "/api/v1/jobs", "Authorization: Bearer icos_guess\r\n"));
  for (int i = 0; i < 20; ++i) {
    auto r = client.Get("/api/v1/whoami", auth);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  std::map<int, int> codes;
  for (int fd : flood) ++codes[StatusOf(ReadResponse(fd, 5'000))];
  for (const auto& [code, n] : codes) EXPECT_TRUE(code == 401 || code == 503) << code << " x" << n;
}

// Invented methods and paths share one label; the server's own counters are
// in /metrics.
TEST_F(HttpServerTest, MetricsStayBoundedAndShowTheServer) {
  Serve();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(StatusOf(ReadResponse(Send(absl::StrCat("X", i), absl::StrCat("/x", i), ""), 2'000)), 404);
  }
  const std::string m = Metrics();
  EXPECT_THAT(m, HasSubstr(R"(icos_http_requests_total{method="other",route="unmatched",code="404"} 50)"));
  EXPECT_EQ(m.find("X1"), std::string::npos);
  for (const char* family :
       {"icos_http_connections ", "icos_http_connections_evicted_total", "icos_http_connections_refused_total",
        "icos_http_requests_rejected_total{channel=\"agent\"}",
        "icos_http_connection_timeouts_total{phase=\"header\"}"}) {
    EXPECT_THAT(m, HasSubstr(family));
  }
}

// `icos jobs` lists what is in the queue by default (Pending,Running, as
// squeue): the API takes several states, comma-separated, and names a bad one.
TEST_F(HttpServerTest, JobsFilterByStatesCommaSeparated) {
  Serve();
  auto running = controller_->Submit(alice_, "tasks:\n  - command: [sleep, '100']\n");
  auto cancelled = controller_->Submit(alice_, "tasks:\n  - command: [sleep, '100']\n");
  ASSERT_TRUE(running.ok() && cancelled.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  ASSERT_TRUE(controller_->Cancel(alice_, *cancelled).ok());
  auto pending = controller_->Submit(alice_, "tasks:\n  - command: [sleep, '100']\n");
  ASSERT_TRUE(pending.ok());
  httplib::Client client("127.0.0.1", server_->port());
  httplib::Headers auth = {{"Authorization", "Bearer " + admin_token_}};
  auto ids = [&](const std::string& query) {
    auto r = client.Get("/api/v1/jobs" + query, auth);
    std::vector<int64_t> out;
    if (!r || r->status != 200) {
      ADD_FAILURE() << query << ": " << (r ? r->body : "no reply");
      return out;
    }
    const nlohmann::json body = nlohmann::json::parse(r->body);  // kept: a temporary's ["jobs"] would dangle
    for (const auto& j : body["jobs"]) out.push_back(j["id"].get<int64_t>());
    return out;
  };
  EXPECT_EQ(ids("?state=Pending,Running"), (std::vector<int64_t>{*pending, *running}));
  EXPECT_EQ(ids("?state=Running"), (std::vector<int64_t>{*running}));
  EXPECT_EQ(ids(""), (std::vector<int64_t>{*pending, *cancelled, *running}));
  auto bad = client.Get("/api/v1/jobs?state=Pending,Done", auth);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_THAT(bad->body, HasSubstr("state 'Done' is not one of"));
}

}  // namespace
}  // namespace icos::controller
