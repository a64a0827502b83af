// The server against clients that misbehave: slow, silent, too many, too
// big, too eager. Timeouts are scaled down (hundreds of milliseconds) so the
// tests stay fast; each waits for an event with a generous bound rather than
// sleeping for a fixed time where it can.
#include "net/server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "net/test_util.h"

namespace icos::net {
namespace {

using ::testing::HasSubstr;
using namespace ::icos::net::testing;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Polls `done` for up to two seconds. A deadline closes the socket before
// the server's handler counts it, so counters trail what a client sees.
template <class Fn>
bool Eventually(Fn done) {
  for (int i = 0; i < 200; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() {
    router_.Get("/hello", [](const Request&, Response& res) { res.Set("hello", "text/plain"); });
  }
  ~ServerTest() override {
    if (server_) server_->Stop();
    for (int fd : fds_) ::close(fd);
  }
  // Test limits: deadlines of a fraction of a second.
  static ServerOptions Fast() {
    ServerOptions o;
    o.limits.header_timeout_ms = 400;
    o.limits.body_timeout_ms = 400;
    o.limits.idle_timeout_ms = 400;
    o.limits.deferred_grace_ms = 300;
    o.channels = {{"user", 1, 8}, {"agent", 1, 8}};
    o.io_threads = 1;
    return o;
  }
  void Serve(ServerOptions o = Fast()) {
    o.port = 0;
    o.on_request = [this](const RequestRecord& r) {
      std::lock_guard<std::mutex> lock(mu_);
      records_.push_back({std::string(r.method), std::string(r.route), r.status});
    };
    server_ = std::make_unique<Server>(std::move(router_), o);
    ASSERT_TRUE(server_->Start().ok());
  }
  int Open() {
    const int fd = Connect(server_->port());
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    return fd;
  }
  std::string Ask(const std::string& request, int timeout_ms = 2'000) {
    const int fd = Open();
    EXPECT_TRUE(SendAll(fd, request));
    return ReadResponse(fd, timeout_ms);
  }
  struct Record {
    std::string method, route;
    int status;
  };
  std::vector<Record> records() {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }

  Router router_;
  std::unique_ptr<Server> server_;
  std::vector<int> fds_;
  std::mutex mu_;
  std::vector<Record> records_;
};

TEST_F(ServerTest, ServesRoutesWithGroupsQueryAndKeepAlive) {
  router_.Get(R"(/jobs/(\d+))", [](const Request& req, Response& res) {
    res.Set(req.matches[1] + ":" + req.param("x") + ":" + req.header("x-test") + ":" + req.peer, "text/plain");
    res.SetHeader("X-Icos-Offset", "7");
  });
  Serve();
  const int fd = Open();
  ASSERT_TRUE(SendAll(fd, Get("/jobs/42?x=a%20b", "X-Test: yes\r\n")));
  std::string r = ReadResponse(fd, 2'000);
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), "42:a b:yes:127.0.0.1");
  EXPECT_THAT(r, HasSubstr("X-Icos-Offset: 7"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain"));
  // The same connection serves the next request (keep-alive), and a HEAD
  // gets the headers of a GET without its body.
  ASSERT_TRUE(SendAll(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = ReadResponse(fd, 2'000, /*head=*/true);
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_THAT(r, HasSubstr("Content-Length: 5"));
  EXPECT_EQ(BodyOf(r), "");
  // Two pipelined requests are answered in order.
  ASSERT_TRUE(SendAll(fd, Get("/jobs/1") + Get("/jobs/2")));
  r = ReadResponse(fd, 2'000);
  EXPECT_THAT(BodyOf(r), HasSubstr("1:"));
  r = ReadResponse(fd, 2'000);
  EXPECT_THAT(BodyOf(r), HasSubstr("2:"));
}

TEST_F(ServerTest, UnmatchedPathsGetAJson404) {
  Serve();
  const std::string r = Ask(Get("/nope"));
  EXPECT_EQ(StatusOf(r), 404);
  EXPECT_EQ(BodyOf(r), R"({"code":"NotFound","error":"no such route; see docs/api.md"})");
}

// 23,000 invented methods once grew /metrics to 81 MB: every one is labelled
// "other", every unmatched path "unmatched".
TEST_F(ServerTest, UnknownMethodsAndPathsAddNoLabels) {
  Serve();
  for (int i = 0; i < 20; ++i) {
    // StrCat, not "M" + std::to_string(i): a GCC 12 -O3 -Werror=restrict false positive.
    const std::string r = Ask(absl::StrCat("M", i, " /x", i, " HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(StatusOf(r), 404);
  }
  EXPECT_EQ(StatusOf(Ask(Get("/hello"))), 200);
  std::set<std::pair<std::string, std::string>> labels;
  for (const Record& r : records()) labels.insert({r.method, r.route});
  EXPECT_EQ(labels, (std::set<std::pair<std::string, std::string>>{{"other", "unmatched"}, {"GET", "/hello"}}));
}

// Slowloris: a header byte every 100 ms keeps every per-read timeout happy,
// but the header section as a whole has 400 ms.
TEST_F(ServerTest, SlowHeadersAreCutOffAtTheDeadline) {
  Serve();
  const int fd = Open();
  const auto start = Clock::now();
  const std::string request = Get("/hello", "X-Padding: " + std::string(100, 'a') + "\r\n");
  bool closed = false;
  for (size_t i = 0; i < request.size() && !closed; ++i) {
    if (!SendAll(fd, request.substr(i, 1))) break;
    closed = ClosedWithin(fd, 100);
  }
  const double took = SecondsSince(start);
  EXPECT_TRUE(closed || ClosedWithin(fd, 1'000));
  EXPECT_GE(took, 0.35);
  EXPECT_LT(took, 2.0);
  EXPECT_TRUE(Eventually([&] { return server_->Stats().header_timeouts == 1; }));
}

TEST_F(ServerTest, SilentAndIdleConnectionsAreClosed) {
  Serve();
  const int silent = Open();  // connects, sends nothing
  const int idle = Open();    // one request, then keep-alive silence
  ASSERT_TRUE(SendAll(idle, Get("/hello")));
  EXPECT_EQ(StatusOf(ReadResponse(idle, 2'000)), 200);
  EXPECT_TRUE(ClosedWithin(silent, 2'000));
  EXPECT_TRUE(ClosedWithin(idle, 2'000));
  EXPECT_TRUE(Eventually([&] {
    const ServerStats s = server_->Stats();
    return s.header_timeouts == 1 && s.idle_timeouts == 1 && s.open == 0;
  }));
}

// Hundreds of slow clients hold sockets, not the one worker thread.
TEST_F(ServerTest, SlowClientsHoldNoWorker) {
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 10'000;
  Serve(o);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(SendAll(Open(), "GET /hello HTTP/1.1\r\nHo"));
  const auto start = Clock::now();
  EXPECT_EQ(StatusOf(Ask(Get("/hello"))), 200);
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_EQ(server_->Stats().open, 301u);
}

// One address over its cap: the oldest idle connection is evicted so the
// newcomer is served; a connection waiting on a deferred response is not.
TEST_F(ServerTest, PerAddressCapEvictsTheOldestIdleConnection) {
  Deferred held;
  std::promise<void> deferred;
  router_.Get("/wait", [&](const Request&, Response& res) {
    held = res.Defer(std::chrono::seconds(10), nullptr);
    deferred.set_value();
  });
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 10'000;
  o.limits.max_connections_per_address = 3;
  Serve(o);
  const int waiting = Open();
  ASSERT_TRUE(SendAll(waiting, Get("/wait")));
  deferred.get_future().wait();
  const int idle1 = Open();
  const int idle2 = Open();
  const int fresh = Open();  // fourth: over the cap
  EXPECT_TRUE(ClosedWithin(idle1, 2'000));
  ASSERT_TRUE(SendAll(fresh, Get("/hello")));
  EXPECT_EQ(StatusOf(ReadResponse(fresh, 2'000)), 200);
  const int fresh2 = Open();
  EXPECT_TRUE(ClosedWithin(idle2, 2'000));
  (void)fresh2;
  EXPECT_EQ(server_->Stats().evicted, 2u);
  // The deferred one survived both evictions and still gets its answer.
  Response done;
  done.Set("done", "text/plain");
  EXPECT_TRUE(held.Complete(done));
  EXPECT_EQ(BodyOf(ReadResponse(waiting, 2'000)), "done");
}

// Every connection of the address busy: nothing can be evicted, and the new
// connection is refused (closed at once) instead.
TEST_F(ServerTest, RefusesWhenEveryConnectionIsBusy) {
  std::vector<Deferred> held;
  std::mutex mu;
  router_.Get("/wait", [&](const Request&, Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    held.push_back(res.Defer(std::chrono::seconds(10), nullptr));
  });
  ServerOptions o = Fast();
  o.limits.max_connections_per_address = 2;
  Serve(o);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(SendAll(Open(), Get("/wait")));
  for (int i = 0; i < 200 &&
                  [&] {
                    std::lock_guard<std::mutex> l(mu);
                    return held.size() < 2;
                  }();
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int refused = Open();
  EXPECT_TRUE(ClosedWithin(refused, 2'000));
  EXPECT_EQ(server_->Stats().refused, 1u);
  EXPECT_EQ(server_->Stats().evicted, 0u);
}

// A connection whose request the handler authenticated outlives newer
// connections that never authenticated.
TEST_F(ServerTest, AuthenticatedConnectionsAreEvictedLast) {
  router_.Get("/login", [](const Request&, Response& res) {
    res.authenticated = true;
    res.Set("in", "text/plain");
  });
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 10'000;
  o.limits.idle_timeout_ms = 10'000;
  o.limits.max_connections_per_address = 2;
  Serve(o);
  const int user = Open();
  ASSERT_TRUE(SendAll(user, Get("/login")));
  ASSERT_EQ(StatusOf(ReadResponse(user, 2'000)), 200);
  const int anon = Open();
  ASSERT_TRUE(SendAll(anon, Get("/hello")));  // served, but never authenticated
  ASSERT_EQ(StatusOf(ReadResponse(anon, 2'000)), 200);
  Open();
  EXPECT_TRUE(ClosedWithin(anon, 2'000));
  ASSERT_TRUE(SendAll(user, Get("/login")));
  EXPECT_EQ(StatusOf(ReadResponse(user, 2'000)), 200);
}

// A full queue is answered at once with 503 and Retry-After, and another
// channel's pool still serves.
TEST_F(ServerTest, FullQueueAnswers503AndOtherChannelsServe) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0};
  router_.Get("/block", [&started, released](const Request&, Response& res) {
    ++started;
    released.wait();
    res.Set("unblocked", "text/plain");
  });
  router_.Get("/agent", [](const Request&, Response& res) { res.Set("agent", "text/plain"); }, {.channel = 1});
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 10'000;
  o.channels = {{"user", 1, 1}, {"agent", 1, 1}};
  Serve(o);
  const int first = Open();
  ASSERT_TRUE(SendAll(first, Get("/block")));  // takes the one user thread
  while (started == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int second = Open();
  ASSERT_TRUE(SendAll(second, Get("/block")));  // waits in the queue of one
  for (int i = 0; i < 200 && server_->Stats().channels[0].queued == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::string r = Ask(Get("/hello"));  // the queue is full: refused at once
  EXPECT_EQ(StatusOf(r), 503);
  EXPECT_THAT(r, HasSubstr("Retry-After: 1"));
  EXPECT_THAT(BodyOf(r), HasSubstr(R"("code":"Unavailable")"));
  EXPECT_EQ(server_->Stats().channels[0].rejected, 1u);
  const auto start = Clock::now();
  EXPECT_EQ(BodyOf(Ask(Get("/agent"))), "agent");  // its own pool
  EXPECT_LT(SecondsSince(start), 1.0);
  release.set_value();
  EXPECT_EQ(BodyOf(ReadResponse(first, 2'000)), "unblocked");
  EXPECT_EQ(BodyOf(ReadResponse(second, 2'000)), "unblocked");
}

// A deferred response is completed later from another thread; meanwhile the
// only worker thread serves other requests.
TEST_F(ServerTest, DeferredResponsesHoldNoThread) {
  std::mutex mu;
  std::vector<Deferred> held;
  router_.Get(R"(/watch/(\d+))", [&](const Request& req, Response& res) {
    Deferred d = res.Defer(std::chrono::seconds(10), nullptr);
    std::lock_guard<std::mutex> lock(mu);
    held.push_back(d);
    (void)req;
  });
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 10'000;
  o.channels = {{"user", 1, 1'000}};
  Serve(o);
  std::vector<int> watchers;
  for (int i = 0; i < 200; ++i) {
    watchers.push_back(Open());
    ASSERT_TRUE(SendAll(watchers.back(), Get("/watch/" + std::to_string(i))));
  }
  for (int i = 0; i < 500 &&
                  [&] {
                    std::lock_guard<std::mutex> l(mu);
                    return held.size() < 200;
                  }();
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto start = Clock::now();
  EXPECT_EQ(StatusOf(Ask(Get("/hello"))), 200);
  EXPECT_LT(SecondsSince(start), 1.0);
  std::thread completer([&] {
    std::lock_guard<std::mutex> lock(mu);
    for (Deferred& d : held) {
      Response r;
      r.Set("changed", "text/plain");
      EXPECT_TRUE(d.Complete(r));
      EXPECT_FALSE(d.Complete(r));  // the first answer wins
      EXPECT_FALSE(d.open());
    }
  });
  completer.join();
  for (int fd : watchers) EXPECT_EQ(BodyOf(ReadResponse(fd, 2'000)), "changed");
}

// Unanswered, the deferred response's on_timeout runs on the pool and answers.
TEST_F(ServerTest, DeferredTimeoutRunsOnTimeout) {
  router_.Get("/watch", [](const Request&, Response& res) {
    res.Defer(std::chrono::milliseconds(200), [](Deferred d) {
      Response r;
      r.Set("timed out", "text/plain");
      d.Complete(r);
    });
  });
  Serve();
  const auto start = Clock::now();
  const std::string r = Ask(Get("/watch"));
  EXPECT_EQ(BodyOf(r), "timed out");
  EXPECT_GE(SecondsSince(start), 0.19);
  EXPECT_LT(SecondsSince(start), 2.0);
}

// An on_timeout that does not answer still gets the client a 504 (after the
// grace), and a handler that answers its own deferral at once is served.
TEST_F(ServerTest, DeferredWithoutAnswerGets504) {
  router_.Get("/forgotten",
              [](const Request&, Response& res) { res.Defer(std::chrono::milliseconds(100), [](Deferred) {}); });
  router_.Get("/at-once", [](const Request&, Response& res) {
    Deferred d = res.Defer(std::chrono::seconds(10), nullptr);
    Response r;
    r.Set("now", "text/plain");
    d.Complete(r);
  });
  Serve();
  const std::string r = Ask(Get("/forgotten"));
  EXPECT_EQ(StatusOf(r), 504);
  EXPECT_THAT(BodyOf(r), HasSubstr("DeadlineExceeded"));
  EXPECT_EQ(BodyOf(Ask(Get("/at-once"))), "now");
}

// A client that leaves while its response is deferred: on_timeout runs at
// once with a handle that can no longer answer, so registrations are dropped.
TEST_F(ServerTest, DeferredClientGoneRunsOnTimeoutClosed) {
  std::promise<bool> open_when_called;
  std::atomic<bool> called{false};
  router_.Get("/watch", [&](const Request&, Response& res) {
    res.Defer(std::chrono::seconds(30), [&](Deferred d) {
      if (!called.exchange(true)) open_when_called.set_value(d.open());
    });
  });
  Serve();
  const int fd = Connect(server_->port());
  ASSERT_TRUE(SendAll(fd, Get("/watch")));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = Clock::now();
  ::close(fd);
  auto f = open_when_called.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(f.get());
  EXPECT_LT(SecondsSince(start), 2.0);
}

TEST_F(ServerTest, BodyOverTheLimitGets413Json) {
  router_.Post("/echo", [](const Request& req, Response& res) { res.Set(req.body, "text/plain"); });
  ServerOptions o = Fast();
  o.limits.max_body_bytes = 1'000;
  Serve(o);
  httplib::Client client("127.0.0.1", server_->port());
  auto ok = client.Post("/echo", std::string(1'000, 'a'), "text/plain");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body.size(), 1'000u);
  // Far over the limit: answered before the body is read, and the body is
  // drained so the client reads the answer instead of a reset.
  auto big = client.Post("/echo", std::string(300'000, 'a'), "text/plain");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(big->body, R"({"code":"ResourceExhausted","error":"request body too large"})");
  // Chunked, no length announced: cut off at the limit.
  const std::string r = Ask("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
                            std::string(2048, 'b') + "\r\n0\r\n\r\n");
  EXPECT_EQ(StatusOf(r), 413);
}

TEST_F(ServerTest, HeaderOverTheLimitGets431AndGarbageGets400) {
  ServerOptions o = Fast();
  o.limits.max_header_bytes = 1'024;
  Serve(o);
  EXPECT_EQ(StatusOf(Ask(Get("/hello", "X-Big: " + std::string(2'000, 'a') + "\r\n"))), 431);
  EXPECT_EQ(StatusOf(Ask("\x01\x02 garbage\r\n\r\n")), 400);
}

TEST_F(ServerTest, SlowBodyIsCutOffAtTheDeadline) {
  router_.Post("/echo", [](const Request& req, Response& res) { res.Set(req.body, "text/plain"); });
  Serve();
  const int fd = Open();
  ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"));
  EXPECT_TRUE(ClosedWithin(fd, 2'000));
  EXPECT_TRUE(Eventually([&] { return server_->Stats().body_timeouts == 1; }));
}

TEST_F(ServerTest, ExpectContinueGetsItsBodyRead) {
  router_.Post("/echo", [](const Request& req, Response& res) { res.Set(req.body, "text/plain"); });
  Serve();
  const int fd = Open();
  ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_THAT(ReadResponse(fd, 2'000), HasSubstr("100 Continue"));
  ASSERT_TRUE(SendAll(fd, "abc"));
  EXPECT_EQ(BodyOf(ReadResponse(fd, 2'000)), "abc");
}

TEST_F(ServerTest, HandlerExceptionsAre500) {
  router_.Get("/throw", [](const Request&, Response&) { throw std::runtime_error("boom"); });
  Serve();
  const std::string r = Ask(Get("/throw"));
  EXPECT_EQ(StatusOf(r), 500);
  EXPECT_THAT(BodyOf(r), HasSubstr("boom"));
}

TEST_F(ServerTest, InlineRoutesAnswerEvenWhenPoolsAreFull) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  router_.Get("/block", [released](const Request&, Response&) { released.wait(); });
  router_.Get("/healthz", [](const Request&, Response& res) { res.Set("ok\n", "text/plain"); }, {.on_io_thread = true});
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 10'000;
  o.channels = {{"user", 1, 1}};
  Serve(o);
  const int blocked = Open();
  ASSERT_TRUE(SendAll(blocked, Get("/block")));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(BodyOf(Ask(Get("/healthz"))), "ok\n");
  release.set_value();
  EXPECT_EQ(StatusOf(ReadResponse(blocked, 2'000)), 200);
}

// Stop with connections idle, slow and waiting on deferred responses
// returns promptly and closes them all.
TEST_F(ServerTest, StopDoesNotHangOnOpenConnections) {
  router_.Get("/watch", [](const Request&, Response& res) { res.Defer(std::chrono::seconds(60), nullptr); });
  ServerOptions o = Fast();
  o.limits.header_timeout_ms = 60'000;
  o.limits.idle_timeout_ms = 60'000;
  Serve(o);
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) fds.push_back(Open());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(SendAll(fds[static_cast<size_t>(i)], Get("/watch")));
  for (int i = 10; i < 20; ++i) ASSERT_TRUE(SendAll(fds[static_cast<size_t>(i)], "GET /hel"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = Clock::now();
  server_->Stop();
  EXPECT_LT(SecondsSince(start), 3.0);
  for (int fd : fds) EXPECT_TRUE(ClosedWithin(fd, 1'000));
}

}  // namespace
}  // namespace icos::net
