// Streamed responses (Response::BeginStream): pieces reach the client as
// they are written, a broken stream is cut off rather than ended, and a
// client that leaves stops the producer instead of hanging it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>

#include "net/server.h"
#include "net/test_util.h"

namespace icos::net {
namespace {

using namespace ::icos::net::testing;

class StreamTest : public ::testing::Test {
 protected:
  ~StreamTest() override {
    if (server_) server_->Stop();
  }
  void Serve() {
    ServerOptions o;
    o.port = 0;
    o.io_threads = 1;
    o.limits.write_timeout_ms = 2'000;
    o.channels = {{"user", 2, 8}};
    server_ = std::make_unique<Server>(std::move(router_), o);
    ASSERT_TRUE(server_->Start().ok());
  }

  Router router_;
  std::unique_ptr<Server> server_;
};

TEST_F(StreamTest, PiecesReachTheClientAsTheyAreWrittenAndTheConnectionIsKept) {
  std::promise<void> got_first;
  std::shared_future<void> first_seen = got_first.get_future().share();
  std::atomic<bool> waited_for_client{false};
  router_.Get("/tokens", [&](const Request&, Response& res) {
    res.status = 200;
    res.content_type = "text/event-stream";
    res.SetHeader("X-Model", "tiny");
    ASSERT_TRUE(res.BeginStream());
    ASSERT_TRUE(res.WriteChunk("data: one\n\n"));
    // The second piece only once the client holds the first: the answer
    // streams, it is not sent whole at the end.
    waited_for_client = first_seen.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    ASSERT_TRUE(res.WriteChunk(""));  // nothing to send is no end of the stream
    ASSERT_TRUE(res.WriteChunk("data: two\n\n"));
  });
  router_.Get("/hello", [](const Request&, Response& res) { res.Set("hello", "text/plain"); });
  Serve();
  httplib::Client client("127.0.0.1", server_->port());
  std::string body;
  bool signalled = false;
  auto r = client.Get(
      "/tokens",
      [&](const httplib::Response& head) {
        EXPECT_EQ(head.get_header_value("Transfer-Encoding"), "chunked");
        EXPECT_EQ(head.get_header_value("Content-Type"), "text/event-stream");
        EXPECT_EQ(head.get_header_value("X-Model"), "tiny");
        return true;
      },
      [&](const char* data, size_t n) {
        body.append(data, n);
        if (!signalled && body.find("one") != std::string::npos) {
          signalled = true;
          got_first.set_value();
        }
        return true;
      });
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body, "data: one\n\ndata: two\n\n");
  EXPECT_TRUE(waited_for_client);
  // The same connection serves the next request.
  auto again = client.Get("/hello");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, "hello");
}

TEST_F(StreamTest, ABrokenStreamIsCutOffNotEnded) {
  router_.Get("/broken", [](const Request&, Response& res) {
    ASSERT_TRUE(res.BeginStream());
    ASSERT_TRUE(res.WriteChunk("part"));
    res.BreakStream();  // the producer failed midway
    EXPECT_FALSE(res.WriteChunk("more"));
  });
  router_.Get("/throws", [](const Request&, Response& res) {
    ASSERT_TRUE(res.BeginStream());
    ASSERT_TRUE(res.WriteChunk("part"));
    throw std::runtime_error("boom");
  });
  Serve();
  for (const char* path : {"/broken", "/throws"}) {
    SCOPED_TRACE(path);
    const int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string got;
    char buf[4096];
    for (;;) {  // until the server closes
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    EXPECT_EQ(StatusOf(got), 200);
    EXPECT_NE(got.find("4\r\npart\r\n"), std::string::npos) << got;
    EXPECT_EQ(got.find("\r\n0\r\n\r\n"), std::string::npos) << "a broken stream must not end like a whole one: " << got;
  }
}

TEST_F(StreamTest, AClientThatLeavesStopsTheProducer) {
  std::promise<int> written;
  router_.Get("/endless", [&](const Request&, Response& res) {
    ASSERT_TRUE(res.BeginStream());
    const std::string piece(64 * 1024, 'x');
    int n = 0;
    while (n < 100'000 && res.WriteChunk(piece)) ++n;
    written.set_value(n);
  });
  Serve();
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n"));
  char buf[1024];
  ASSERT_GT(::read(fd, buf, sizeof buf), 0);
  ::close(fd);
  std::future<int> n = written.get_future();
  ASSERT_EQ(n.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the producer hangs";
  EXPECT_LT(n.get(), 100'000);
}

TEST_F(StreamTest, AHeadOrHttp10RequestCannotStreamAndIsAnsweredWhole) {
  router_.Get("/x", [](const Request&, Response& res) {  // HEAD is served by the GET route too
    EXPECT_FALSE(res.BeginStream());
    res.Set("whole", "text/plain");
  });
  Serve();
  httplib::Client client("127.0.0.1", server_->port());
  auto r = client.Head("/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Length"), "5");
  // HTTP/1.0 has no chunked encoding: the answer comes whole.
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /x HTTP/1.0\r\n\r\n"));
  const std::string got = ReadResponse(fd, 2'000);
  ::close(fd);
  EXPECT_EQ(StatusOf(got), 200);
  EXPECT_EQ(BodyOf(got), "whole");
}

}  // namespace
}  // namespace icos::net
