#include "net/router.h"

#include <gtest/gtest.h>

namespace icos::net {
namespace {

Handler Named(std::string name) {
  return [name](const Request&, Response& res) { res.body = name; };
}

TEST(RouterTest, RegexGroupsBecomeMatchesAndPlaceholders) {
  Router r;
  r.Get(R"(/api/v1/jobs/(\d+)/logs)", Named("logs"));
  std::vector<std::string> m;
  const Route* route = r.Match("GET", "/api/v1/jobs/42/logs", &m);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->label, "/api/v1/jobs/:id/logs");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], "/api/v1/jobs/42/logs");
  EXPECT_EQ(m[1], "42");
  EXPECT_EQ(r.Match("GET", "/api/v1/jobs/x/logs", &m), nullptr);
  EXPECT_EQ(r.Match("POST", "/api/v1/jobs/42/logs", &m), nullptr);
}

TEST(RouterTest, LabelsArePatternsNotPaths) {
  EXPECT_EQ(RouteLabel(R"(/api/v1/nodes/([^/]+)/(drain|resume))"), "/api/v1/nodes/:name/:drain|resume");
  EXPECT_EQ(RouteLabel("/metrics"), "/metrics");
  Router r;
  r.Exact("GET", "/assets/index-abc.js", Named("asset"), {.label = "static"});
  std::vector<std::string> m;
  const Route* route = r.Match("GET", "/assets/index-abc.js", &m);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->label, "static");
}

// A literal pattern is found by lookup; a "." in an exact path is itself, not
// "any character" as in a regex.
TEST(RouterTest, ExactPathsMatchOnlyThemselves) {
  Router r;
  r.Exact("GET", "/index.html", Named("index"));
  r.Get("/api/v1/nodes", Named("nodes"));
  std::vector<std::string> m;
  EXPECT_NE(r.Match("GET", "/index.html", &m), nullptr);
  EXPECT_EQ(r.Match("GET", "/indexXhtml", &m), nullptr);
  const Route* nodes = r.Match("GET", "/api/v1/nodes", &m);
  ASSERT_NE(nodes, nullptr);
  EXPECT_EQ(nodes->label, "/api/v1/nodes");
  EXPECT_EQ(r.Match("GET", "/api/v1/nodes/", &m), nullptr);
}

TEST(RouterTest, HeadIsServedByGet) {
  Router r;
  r.Get("/healthz", Named("ok"));
  std::vector<std::string> m;
  EXPECT_NE(r.Match("HEAD", "/healthz", &m), nullptr);
  EXPECT_EQ(r.Match("PUT", "/healthz", &m), nullptr);
}

TEST(RouterTest, FirstAddedRouteWins) {
  Router r;
  r.Get(R"(/a/(\d+))", Named("digits"), {.channel = 1});
  r.Get(R"(/a/([^/]+))", Named("any"), {.channel = 2});
  std::vector<std::string> m;
  EXPECT_EQ(r.Match("GET", "/a/7", &m)->options.channel, 1);
  EXPECT_EQ(r.Match("GET", "/a/x", &m)->options.channel, 2);
}

// Whatever method a client invents, it is one label: metrics cannot grow.
TEST(RouterTest, UnknownMethodsFoldIntoOther) {
  for (const char* m : {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}) EXPECT_EQ(MethodLabel(m), m);
  EXPECT_EQ(MethodLabel("BREW"), "other");
  EXPECT_EQ(MethodLabel("get"), "other");
  EXPECT_EQ(MethodLabel(std::string(1000, 'X')), "other");
}

TEST(HttpTest, TargetsAreDecoded) {
  std::string path;
  std::multimap<std::string, std::string> params;
  ParseTarget("/api/v1/nodes/gpu%2D1/assignments?since=3&wait_ms=25000&q=a+b%26c&flag", &path, &params);
  EXPECT_EQ(path, "/api/v1/nodes/gpu-1/assignments");
  EXPECT_EQ(params.find("since")->second, "3");
  EXPECT_EQ(params.find("q")->second, "a b&c");
  EXPECT_EQ(params.count("flag"), 1u);
  EXPECT_EQ(PercentDecode("a+b%zz%4", false), "a+b%zz%4");
}

TEST(HttpTest, HeadersAreCaseInsensitive) {
  Request req;
  req.headers.emplace("Authorization", "Bearer x");
  EXPECT_EQ(req.header("authorization"), "Bearer x");
  EXPECT_EQ(req.header("AUTHORIZATION"), "Bearer x");
  EXPECT_EQ(req.header("X-Missing"), "");
}

TEST(HttpTest, JsonErrorEscapes) {
  EXPECT_EQ(JsonError("bad \"x\"\n", "InvalidArgument"), R"({"code":"InvalidArgument","error":"bad \"x\"\n"})");
}

}  // namespace
}  // namespace icos::net
