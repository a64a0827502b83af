// The service gateway against real HTTP replicas (issue #22).
#include "gateway/gateway.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"

namespace icos::gateway {
namespace {

using ::testing::HasSubstr;

// A replica: answers GET /who with its name and the target it was sent,
// POST /echo with the body.
class Replica {
 public:
  explicit Replica(std::string name) : name_(std::move(name)) {
    server_.Get("/who", [this](const httplib::Request& req, httplib::Response& res) {
      ++served_;
      std::string target = req.path;
      if (!req.params.empty()) target += "?" + httplib::detail::params_to_query_str(req.params);
      res.set_content(absl::StrCat(name_, " ", target, " ", req.get_header_value("X-Forwarded-For")), "text/plain");
      res.set_header("X-Replica", name_);
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 201;
      res.set_content(req.body, "application/octet-stream");
    });
    // A model's answer in pieces: "data: first", then (once the client
    // says it holds that) "data: second".
    server_.Get("/stream", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [this](size_t, httplib::DataSink& sink) {
        sink.write("data: first\n\n", 13);
        for (int i = 0; i < 500 && !first_seen; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        waited_for_client = first_seen.load();
        sink.write("data: second\n\n", 14);
        sink.done();
        return true;
      });
    });
    // ... and one whose process dies midway.
    server_.Get("/dies", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        sink.write("data: first\n\n", 13);
        return false;  // httplib drops the connection: no last chunk
      });
    });
    server_.set_keep_alive_timeout(1);  // Kill() waits for kept-alive connections this long
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Replica() { Kill(); }
  // Stops listening and closes its connections: a killed process, as far
  // as its clients can tell.
  void Kill() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int served() const { return served_; }
  std::atomic<bool> first_seen{false}, waited_for_client{false};  // /stream's

 private:
  std::string name_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> served_{0};
};

class GatewayTest : public ::testing::Test {
 protected:
  void StartGateway() {
    gateway_.emplace(
        options_,
        [this](const std::string& s) -> absl::StatusOr<controller::ServiceRoute> {
          std::lock_guard<std::mutex> lock(mu_);
          if (away_) return absl::UnavailableError("cannot reach http://127.0.0.1:7070: Connection");
          if (s == "web" || s == "12") return controller::ServiceRoute{.id = 12, .ready = ready_};
          if (s == "sleepy") return controller::ServiceRoute{.id = 14, .ready = ready_, .cold_start_ms = 3'000};
          if (s == "twice") return absl::FailedPreconditionError("2 running services are named twice (ids 3, 4)");
          return absl::NotFoundError(absl::StrCat("no running service ", s));
        },
        &clock_);
    ASSERT_TRUE(gateway_->Start().ok());
    client_.emplace("127.0.0.1", gateway_->port());
  }
  void SetReady(std::vector<std::string> ready) {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = std::move(ready);
  }
  std::string Metrics() {
    controller::metrics::ExpositionWriter w;
    gateway_->RenderMetrics(w);
    return w.text();
  }

  void SetAway(bool away) {
    std::lock_guard<std::mutex> lock(mu_);
    away_ = away;
  }

  GatewayOptions options_;
  RealClock clock_;
  std::mutex mu_;
  std::vector<std::string> ready_;
  bool away_ = false;  // the routes' source cannot be reached
  std::optional<Gateway> gateway_;
  std::optional<httplib::Client> client_;
};

TEST_F(GatewayTest, ARequestReachesAReadyReplicaWithoutTheServicePrefix) {
  Replica a("a"), b("b");
  SetReady({a.address(), b.address()});
  StartGateway();
  std::set<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    auto r = client_->Get("/web/who?x=1&y=two");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200);
    EXPECT_THAT(r->body, HasSubstr(" /who?x=1&y=two 127.0.0.1"));  // path, query and X-Forwarded-For
    seen.insert(r->get_header_value("X-Replica"));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"a", "b"}));  // one at a time: taken in turn
  auto by_id = client_->Post("/12/echo", "payload", "text/plain");
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->status, 201);
  EXPECT_EQ(by_id->body, "payload");
  EXPECT_THAT(Metrics(), HasSubstr("icos_gateway_requests_total{service=\"web\",code=\"200\"} 10"));
}

// A standalone gateway whose controller restarts or fails over keeps
// serving where it last said, for a while; a service it never saw is a
// 503 meanwhile. What it forwarded is what it reports (Loads).
TEST_F(GatewayTest, WhileTheControlPlaneIsAwayTheLastKnownReplicasServe) {
  Replica a("a");
  SetReady({a.address()});
  options_.endpoints_ttl_ms = 50;
  options_.stale_route_ms = 1'000;
  StartGateway();
  ASSERT_EQ(client_->Get("/web/who")->status, 200);
  SetAway(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // past the TTL: asked again, and away
  auto stale = client_->Get("/web/who");
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->status, 200);
  EXPECT_EQ(stale->get_header_value("X-Replica"), "a");
  auto never_seen = client_->Get("/other/who");
  ASSERT_TRUE(never_seen);
  EXPECT_EQ(never_seen->status, 503);
  EXPECT_THAT(never_seen->body, HasSubstr("cannot reach"));
  // Past stale_route_ms the old route is not trusted any more.
  std::this_thread::sleep_for(std::chrono::milliseconds(1'050));
  EXPECT_EQ(client_->Get("/web/who")->status, 503);
  SetAway(false);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(client_->Get("/web/who")->status, 200);
  const std::map<int64_t, controller::ServiceLoad> loads = gateway_->Loads();
  ASSERT_EQ(loads.size(), 1u);
  EXPECT_EQ(loads.begin()->first, 12);
  EXPECT_EQ(loads.begin()->second.requests, 3u);  // the three it forwarded
  EXPECT_EQ(loads.begin()->second.in_flight, 0);
}

// A language model's tokens: an answer of unknown length reaches the
// client piece by piece, as the replica writes it, not whole at its end.
TEST_F(GatewayTest, AStreamedAnswerReachesTheClientPieceByPiece) {
  Replica a("a");
  SetReady({a.address()});
  StartGateway();
  std::string body;
  auto r = client_->Get(
      "/web/stream",
      [&](const httplib::Response& head) {
        EXPECT_EQ(head.get_header_value("Content-Type"), "text/event-stream");
        EXPECT_EQ(head.get_header_value("Transfer-Encoding"), "chunked");
        return true;
      },
      [&](const char* data, size_t n) {
        body.append(data, n);
        if (body.find("first") != std::string::npos) a.first_seen = true;
        return true;
      });
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body, "data: first\n\ndata: second\n\n");
  EXPECT_TRUE(a.waited_for_client) << "the first piece reached the client only after the last was written";
  // A whole answer still comes whole, on the same connection.
  auto whole = client_->Get("/web/who");
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->get_header_value("Content-Length"), std::to_string(whole->body.size()));
  EXPECT_EQ(gateway_->LoadOf(12).requests, 2u);
  // A replica that dies midway: the client sees the answer broken, not
  // ended (it must not take a half answer for a whole one).
  httplib::Client fresh("127.0.0.1", gateway_->port());
  auto broken = fresh.Get("/web/dies");
  EXPECT_FALSE(broken) << "a half answer was ended like a whole one: " << broken->body;
}

TEST_F(GatewayTest, UnknownAmbiguousAndUnreadyServicesAreSaidSo) {
  StartGateway();
  auto none = client_->Get("/nope/x");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  EXPECT_THAT(none->body, HasSubstr("no running service nope"));
  EXPECT_EQ(client_->Get("/")->status, 404);
  EXPECT_EQ(client_->Get("/Not_A_Name/x")->status, 404);
  auto twice = client_->Get("/twice/x");
  EXPECT_EQ(twice->status, 409);
  EXPECT_THAT(twice->body, HasSubstr("ids 3, 4"));
  auto unready = client_->Get("/web/who");  // running, no replica ready
  EXPECT_EQ(unready->status, 503);
  EXPECT_EQ(unready->get_header_value("Retry-After"), "1");
  EXPECT_THAT(unready->body, HasSubstr("service web has no ready replica"));
}

// The replica dies while it is still listed ready (its probe has not run):
// requests it refuses go to the other, and none fails.
TEST_F(GatewayTest, AReplicaKilledUnderLoadCostsIdempotentClientsNothing) {
  std::optional<Replica> a(std::in_place, "a");
  Replica b("b");
  SetReady({a->address(), b.address()});
  StartGateway();
  std::atomic<int> failed{0}, ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", gateway_->port());
      for (int i = 0; i < 100; ++i) {
        auto r = c.Get("/web/who");
        (r && r->status == 200 ? ok : failed)++;
      }
    });
  }
  while (ok < 50) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  a->Kill();
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(ok, 400);
  EXPECT_GT(b.served(), 200);
  // A refused connect reached no replica: a POST goes elsewhere too.
  auto post = client_->Post("/web/echo", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 201);
}

// Its only replica failed once (skipped for 3 s), then came back: the next
// request still reaches it instead of being refused for the 3 s.
TEST_F(GatewayTest, AReplicaSkippedAfterAFailureIsStillTriedWhenItIsTheOnlyOne) {
  std::optional<Replica> a(std::in_place, "a");
  const std::string address = a->address();
  SetReady({address});
  StartGateway();
  a.reset();
  EXPECT_EQ(client_->Get("/web/who")->status, 502);  // refused: skipped from now
  // Back on the same port (a restarted process).
  httplib::Server again;
  again.set_keep_alive_timeout(1);
  again.Get("/who", [](const httplib::Request&, httplib::Response& res) { res.set_content("again", "text/plain"); });
  ASSERT_TRUE(again.bind_to_port("127.0.0.1", std::stoi(address.substr(address.rfind(':') + 1))));
  std::thread t([&] { again.listen_after_bind(); });
  while (!again.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto r = client_->Get("/web/who");
  again.stop();
  t.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "again");
}

TEST_F(GatewayTest, WhenEveryReplicaIsGoneTheClientIsToldWhy) {
  std::optional<Replica> a(std::in_place, "a");
  SetReady({a->address()});
  StartGateway();
  a->Kill();
  auto r = client_->Get("/web/who");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_THAT(r->body, HasSubstr(absl::StrCat("replica ", a->address())));
}

// A service at zero replicas: its request waits (counted in flight, which
// is what wakes the service) until a replica turns ready, then is served;
// with none in time the client is told why.
TEST_F(GatewayTest, ARequestForAServiceAtZeroWaitsForItsColdStart) {
  StartGateway();
  Replica a("a");
  std::atomic<int32_t> seen_waiting{0};
  std::thread starter([&] {
    for (int i = 0; i < 200 && seen_waiting.load() == 0; ++i) {
      seen_waiting = gateway_->LoadOf(14).in_flight;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the replica starts
    SetReady({a.address()});
  });
  auto r = client_->Get("/sleepy/who");
  starter.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(seen_waiting.load(), 1);
  const controller::ServiceLoad load = gateway_->LoadOf(14);
  EXPECT_EQ(load.requests, 1u);
  EXPECT_EQ(load.in_flight, 0);
  uint64_t slow = 0;  // its wait is in its latency: at least 300 ms
  for (size_t i = 0; i < controller::kLatencyBoundsMs.size(); ++i) {
    if (controller::kLatencyBoundsMs[i] >= 250) slow += load.latency[i];
  }
  slow += load.latency.back();
  EXPECT_EQ(slow, 1u);
  SetReady({});
  std::this_thread::sleep_for(std::chrono::milliseconds(GatewayOptions().endpoints_ttl_ms + 50));  // the cache forgets
  auto none = client_->Get("/sleepy/who");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 503);
  EXPECT_THAT(none->body, HasSubstr("none became ready within 3s of the request (a cold start)"));
  EXPECT_EQ(client_->Get("/web/who")->status, 503);  // no cold start: at once
}

}  // namespace
}  // namespace icos::gateway
