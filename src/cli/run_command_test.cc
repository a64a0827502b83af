#include "cli/run_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace icos::cli {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(RunSpecTest, FlagsBecomeOneTaskGroup) {
  RunFlags f;
  f.command = {"/usr/bin/python3", "train.py", "--lr", "3e-4"};
  f.cpus = "2";
  f.memory = "8Gi";
  f.devices = "nvidia/A100:2";
  f.env = {"A=1", "B=x=y"};
  f.time_limit = "1h";
  f.queue = "team";
  f.replicas = 2;
  f.workdir = "/home/alice/proj";
  auto spec = RunSpec(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const json j = json::parse(*spec);
  EXPECT_EQ(j["name"], "python3");
  EXPECT_EQ(j["queue"], "team");
  EXPECT_EQ(j["time_limit"], "1h");
  const json& t = j["tasks"][0];
  EXPECT_EQ(t["command"], json({"/usr/bin/python3", "train.py", "--lr", "3e-4"}));
  EXPECT_EQ(t["replicas"], 2);
  EXPECT_EQ(t["resources"], json({{"cpu", "2"}, {"memory", "8Gi"}, {"devices", 2}}));
  EXPECT_EQ(t["devices"], json::parse(R"([{"vendor": "nvidia", "model": "A100"}])"));
  EXPECT_EQ(t["env"], json({{"A", "1"}, {"B", "x=y"}}));
  EXPECT_EQ(t["workdir"], "/home/alice/proj");
}

TEST(RunSpecTest, DeviceFormsAndMistakes) {
  RunFlags f;
  f.command = {"x"};
  f.devices = "4";  // any type
  json t = json::parse(*RunSpec(f))["tasks"][0];
  EXPECT_EQ(t["resources"]["devices"], 4);
  EXPECT_FALSE(t.contains("devices"));
  f.devices = "ascend";  // one of that vendor
  t = json::parse(*RunSpec(f))["tasks"][0];
  EXPECT_EQ(t["resources"]["devices"], 1);
  EXPECT_EQ(t["devices"], json::parse(R"([{"vendor": "ascend"}])"));
  f.devices = "nvidia:zero";
  EXPECT_THAT(std::string(RunSpec(f).status().message()), HasSubstr("--devices nvidia:zero"));
  f.devices.clear();
  f.env = {"NOEQUALS"};
  EXPECT_THAT(std::string(RunSpec(f).status().message()), HasSubstr("--env NOEQUALS: expected NAME=VALUE"));
  f.env.clear();
  f.command.clear();
  EXPECT_FALSE(RunSpec(f).ok());
}

}  // namespace
}  // namespace icos::cli
