#include "net/net_util.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::net {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(ParseHostPortTest, AcceptsEveryForm) {
  struct Case {
    std::string text, host;
    int port;
  };
  for (const Case& c : std::vector<Case>{{"10.0.0.5", "10.0.0.5", 0},
                                         {"10.0.0.5:7071", "10.0.0.5", 7071},
                                         {":7071", "", 7071},
                                         {"0.0.0.0", "0.0.0.0", 0},
                                         {"node-a.example:1", "node-a.example", 1},
                                         {"[fd00::5]:7071", "fd00::5", 7071},
                                         {"[::]", "::", 0},
                                         {"fd00::5", "fd00::5", 0},
                                         {"::", "::", 0}}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(c.text);
    ASSERT_TRUE(hp.ok()) << c.text << ": " << hp.status();
    EXPECT_EQ(hp->host, c.host) << c.text;
    EXPECT_EQ(hp->port, c.port) << c.text;
  }
}

TEST(ParseHostPortTest, RefusesBadPortsAndBrackets) {
  for (const char* bad : {"", "10.0.0.5:0", "10.0.0.5:65536", "10.0.0.5:http", "[fd00::5", "[fd00::5]x", ":"}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(bad);
    EXPECT_FALSE(hp.ok()) << bad;
    if (!hp.ok()) {
      EXPECT_THAT(hp.status().message(), HasSubstr("HOST:PORT")) << bad;
    }
  }
}

TEST(HostTest, WildcardLoopbackAndUrlForms) {
  EXPECT_TRUE(IsWildcardHost("0.0.0.0"));
  EXPECT_TRUE(IsWildcardHost("::"));
  EXPECT_FALSE(IsWildcardHost("10.0.0.5"));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.5"));
  EXPECT_EQ(UrlHost("10.0.0.5"), "10.0.0.5");
  EXPECT_EQ(UrlHost("fd00::5"), "[fd00::5]");
  EXPECT_EQ(HostOfUrl("http://10.0.0.1:7070"), "10.0.0.1");
  EXPECT_EQ(HostOfUrl("http://ctl-a:7070,http://ctl-b:7070"), "ctl-a");
  EXPECT_EQ(HostOfUrl("https://[fd00::1]:7070/api"), "fd00::1");
  EXPECT_EQ(HostOfUrl("http://ctl"), "ctl");
}

TEST(CheckRegisteredReachableTest, RefusesLoopbackFromAnotherMachine) {
  // All on one machine: loopback is fine.
  EXPECT_TRUE(CheckRegisteredReachable("n1", "127.0.0.1", "http://127.0.0.1:9", "127.0.0.1").ok());
  EXPECT_TRUE(CheckRegisteredReachable("n1", "127.0.0.1", "http://127.0.0.1:9", "::1").ok());
  // From another machine, reachable addresses are fine.
  EXPECT_TRUE(CheckRegisteredReachable("n1", "10.0.0.5", "http://10.0.0.5:9", "10.0.0.5").ok());
  // ... loopback is not: other machines would reach themselves.
  absl::Status address = CheckRegisteredReachable("n1", "127.0.0.1", "http://10.0.0.5:9", "10.0.0.5");
  EXPECT_EQ(address.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(address.message(), HasSubstr("node 'n1' connects from 10.0.0.5 but registers address 127.0.0.1"));
  EXPECT_THAT(address.message(), HasSubstr("--address"));
  absl::Status logs = CheckRegisteredReachable("n1", "10.0.0.5", "http://127.0.0.1:9", "10.0.0.5");
  EXPECT_EQ(logs.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(logs.message(), HasSubstr("log server at http://127.0.0.1:9"));
  EXPECT_THAT(logs.message(), HasSubstr("--listen"));
}

TEST(InterfaceHoldingTest, FindsTheInterfaceOfAnAddressInAnyForm) {
  const std::vector<InterfaceAddress> local = {
      {"lo", "127.0.0.1"}, {"eth0", "10.0.0.5"}, {"ib0", "192.168.7.5"}, {"eth0", "fd00::5"}};
  EXPECT_EQ(InterfaceHolding("10.0.0.5", local)->name, "eth0");
  EXPECT_EQ(InterfaceHolding("192.168.7.5", local)->name, "ib0");
  EXPECT_EQ(InterfaceHolding("fd00:0:0::5", local)->name, "eth0");  // another spelling of fd00::5
  EXPECT_EQ(InterfaceHolding("::ffff:10.0.0.5", local)->name, "eth0");
  EXPECT_EQ(InterfaceHolding("10.0.0.5", local)->ip, "10.0.0.5");
  absl::StatusOr<InterfaceAddress> none = InterfaceHolding("10.0.0.6", local);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("10.0.0.6"));
}

TEST(InterfaceHoldingTest, LoopbackOfThisMachineIsLo) {
  // Every Linux machine (and network namespace) has lo with 127.0.0.1 once it is up.
  absl::StatusOr<InterfaceAddress> lo = InterfaceHolding("127.0.0.1", LocalInterfaceAddresses());
  ASSERT_TRUE(lo.ok()) << lo.status();
  EXPECT_EQ(lo->name, "lo");
}

TEST(SourceAddressForTest, LoopbackTrafficLeavesFromLoopback) {
  absl::StatusOr<std::string> src = SourceAddressFor("127.0.0.1");
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(*src, "127.0.0.1");
}

TEST(ExpandPlaceholdersTest, SubstitutesKnownValuesAndDropsVariablesOfUnknownOnes) {
  const std::map<std::string, std::string> env = {
      {"NCCL_SOCKET_IFNAME", "=${IF}"}, {"HCCL_IF_IP", "${IP}"}, {"CKPT", "/${DIR}/ckpt:/${DIR}/old"}, {"PLAIN", "x"}};
  EXPECT_THAT(ExpandPlaceholders(env, {{"${IF}", "eth0"}, {"${IP}", "10.0.0.5"}, {"/${DIR}", "/t"}}),
              UnorderedElementsAre(Pair("NCCL_SOCKET_IFNAME", "=eth0"), Pair("HCCL_IF_IP", "10.0.0.5"),
                                   Pair("CKPT", "/t/ckpt:/t/old"), Pair("PLAIN", "x")));
  // This node's interface is unknown: the library's own choice beats a literal "${IF}".
  EXPECT_THAT(ExpandPlaceholders(env, {{"${IF}", ""}, {"${IP}", ""}, {"/${DIR}", "/t"}}),
              UnorderedElementsAre(Pair("CKPT", "/t/ckpt:/t/old"), Pair("PLAIN", "x")));
}

}  // namespace
}  // namespace icos::net
