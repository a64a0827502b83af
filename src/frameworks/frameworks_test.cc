#include "frameworks/frameworks.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace icos::frameworks {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// The job every test uses: "llm" (id 7), 2 nodes x 2 ranks.
//   rank:        0          1          2          3
//   host:        node-a     node-a     node-b     node-b
//   node_rank:   0          0          1          1
//   local_rank:  0          1          0          1
//   port:        23456      23457      23458      23459
//   devices:     {4}        {5}        {2}        {3}
//   device_ip:   10.0.0.4   10.0.0.5   10.0.1.2   10.0.1.3
// Rendezvous at node-a:29500 (rank 0's host).
RankInfo TwoByTwo(const std::string& framework, int32_t rank) {
  RankInfo info;
  info.framework = framework;
  info.job_name = "llm";
  info.job_id = 7;
  info.rank = rank;
  info.world_size = 4;
  info.local_rank = rank % 2;
  info.local_world_size = 2;
  info.node_rank = rank / 2;
  info.num_nodes = 2;
  info.master_addr = "node-a";
  info.master_port = 29500;
  info.rank_hosts = {"node-a", "node-a", "node-b", "node-b"};
  info.rank_ports = {23456, 23457, 23458, 23459};
  info.rank_devices = {{4}, {5}, {2}, {3}};
  info.rank_device_ips = {"10.0.0.4", "10.0.0.5", "10.0.1.2", "10.0.1.3"};
  info.files_dir = "/var/lib/icos/jobs/7/rank-" + std::to_string(rank);
  return info;
}

TEST(FrameworksTest, NoneGetsOnlyTheIcosVariables) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("none", 3));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_THAT(setup->env, UnorderedElementsAre(Pair("ICOS_RANK", "3"), Pair("ICOS_WORLD_SIZE", "4"),
                                               Pair("ICOS_JOB_ID", "7"), Pair("ICOS_JOB_NAME", "llm")));
  EXPECT_THAT(setup->files, IsEmpty());
}

TEST(FrameworksTest, PytorchGetsEnvInitAndTorchrunVariables) {
  // Rank 3 is the second rank (local_rank 1) of the second node (node_rank 1);
  // torchrun's nproc-per-node is the local world size, 2.
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("pytorch", 3));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_THAT(setup->env, UnorderedElementsAre(
                              Pair("ICOS_RANK", "3"), Pair("ICOS_WORLD_SIZE", "4"), Pair("ICOS_JOB_ID", "7"),
                              Pair("ICOS_JOB_NAME", "llm"), Pair("MASTER_ADDR", "node-a"), Pair("MASTER_PORT", "29500"),
                              Pair("RANK", "3"), Pair("WORLD_SIZE", "4"), Pair("LOCAL_RANK", "1"),
                              Pair("LOCAL_WORLD_SIZE", "2"), Pair("GROUP_RANK", "1"), Pair("PET_NNODES", "2"),
                              Pair("PET_NODE_RANK", "1"), Pair("PET_MASTER_ADDR", "node-a"),
                              Pair("PET_MASTER_PORT", "29500"), Pair("PET_NPROC_PER_NODE", "2")));
  EXPECT_THAT(setup->files, IsEmpty());
}

TEST(FrameworksTest, MpiWritesOneHostfileLinePerNodeWithItsRankCount) {
  // Two ranks on each host, hosts in order of their first rank.
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("mpi", 0));
  ASSERT_TRUE(setup.ok()) << setup.status();
  const std::string path = "/var/lib/icos/jobs/7/rank-0/hostfile";
  EXPECT_THAT(setup->files, ElementsAre(Pair(path, "node-a slots=2\nnode-b slots=2\n")));
  EXPECT_EQ(setup->env.at("ICOS_HOSTFILE"), path);
  for (const auto& [key, value] : setup->env) EXPECT_NE(key.rfind("OMPI_", 0), 0u) << key;
  EXPECT_EQ(setup->env.count("MASTER_ADDR"), 0u);
}

TEST(FrameworksTest, DeepSpeedGetsHostfileAndTorchVariables) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("deepspeed", 2));
  ASSERT_TRUE(setup.ok()) << setup.status();
  const std::string path = "/var/lib/icos/jobs/7/rank-2/hostfile";
  EXPECT_THAT(setup->files, ElementsAre(Pair(path, "node-a slots=2\nnode-b slots=2\n")));
  // Rank 2 is the first rank (local_rank 0) of node-b.
  EXPECT_THAT(
      setup->env,
      AllOf(::testing::Contains(Pair("ICOS_HOSTFILE", path)), ::testing::Contains(Pair("MASTER_ADDR", "node-a")),
            ::testing::Contains(Pair("MASTER_PORT", "29500")), ::testing::Contains(Pair("RANK", "2")),
            ::testing::Contains(Pair("WORLD_SIZE", "4")), ::testing::Contains(Pair("LOCAL_RANK", "0"))));
}

TEST(FrameworksTest, HostfileCountsUnevenRanksPerHost) {
  // Three ranks: two on a, one on b, a listed first because rank 0 is there.
  RankInfo info = TwoByTwo("mpi", 0);
  info.world_size = 3;
  info.num_nodes = 2;
  info.rank_hosts = {"a", "b", "a"};
  info.rank_devices.clear();
  info.rank_device_ips.clear();
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(info);
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->files.begin()->second, "a slots=2\nb slots=1\n");
}

TEST(FrameworksTest, MindSporeGetsHcclRankTableAndMsrunVariables) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("mindspore", 3));
  ASSERT_TRUE(setup.ok()) << setup.status();
  const std::string path = "/var/lib/icos/jobs/7/rank-3/rank_table.json";
  ASSERT_EQ(setup->files.count(path), 1u);
  // Rank 3 drives physical device 3 on node-b.
  EXPECT_THAT(setup->env, UnorderedElementsAre(
                              Pair("ICOS_RANK", "3"), Pair("ICOS_WORLD_SIZE", "4"), Pair("ICOS_JOB_ID", "7"),
                              Pair("ICOS_JOB_NAME", "llm"), Pair("RANK_TABLE_FILE", path), Pair("RANK_ID", "3"),
                              Pair("RANK_SIZE", "4"), Pair("DEVICE_ID", "3"), Pair("MS_WORKER_NUM", "4"),
                              Pair("MS_LOCAL_WORKER", "2"), Pair("MS_SCHED_HOST", "node-a"),
                              Pair("MS_SCHED_PORT", "29500"), Pair("MS_ROLE", "MS_WORKER"), Pair("MS_NODE_RANK", "1")));
  // Version 1.0 layout: every value a string, one server per host holding its
  // ranks' devices.
  nlohmann::json expected = nlohmann::json::parse(R"({
    "version": "1.0",
    "server_count": "2",
    "server_list": [
      {"server_id": "node-a", "host_nic_ip": "reserve", "device": [
        {"device_id": "4", "device_ip": "10.0.0.4", "rank_id": "0"},
        {"device_id": "5", "device_ip": "10.0.0.5", "rank_id": "1"}]},
      {"server_id": "node-b", "host_nic_ip": "reserve", "device": [
        {"device_id": "2", "device_ip": "10.0.1.2", "rank_id": "2"},
        {"device_id": "3", "device_ip": "10.0.1.3", "rank_id": "3"}]}
    ],
    "status": "completed"
  })");
  EXPECT_EQ(nlohmann::json::parse(setup->files.at(path)), expected);
}

TEST(FrameworksTest, MindSporeOmitsDeviceIpWhenUnknownAndNumbersDevicesPerHost) {
  RankInfo info = TwoByTwo("mindspore", 1);
  info.rank_devices.clear();
  info.rank_device_ips.clear();
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(info);
  ASSERT_TRUE(setup.ok()) << setup.status();
  // Without assigned devices a rank drives the device matching its position
  // on its host: rank 1 is the second rank on node-a, so device 1.
  EXPECT_EQ(setup->env.at("DEVICE_ID"), "1");
  nlohmann::json table = nlohmann::json::parse(setup->files.begin()->second);
  const nlohmann::json& device = table["server_list"][1]["device"][0];
  EXPECT_EQ(device, nlohmann::json::parse(R"({"device_id": "0", "rank_id": "2"})"));
}

TEST(FrameworksTest, PaddleGetsOneEndpointPerRank) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("paddle", 2));
  ASSERT_TRUE(setup.ok()) << setup.status();
  // Rank 2 listens on node-b:23458; the trainer hosts are the distinct hosts.
  EXPECT_THAT(setup->env, UnorderedElementsAre(
                              Pair("ICOS_RANK", "2"), Pair("ICOS_WORLD_SIZE", "4"), Pair("ICOS_JOB_ID", "7"),
                              Pair("ICOS_JOB_NAME", "llm"), Pair("PADDLE_MASTER", "node-a:29500"),
                              Pair("PADDLE_TRAINER_ENDPOINTS", "node-a:23456,node-a:23457,node-b:23458,node-b:23459"),
                              Pair("PADDLE_CURRENT_ENDPOINT", "node-b:23458"), Pair("PADDLE_TRAINER_ID", "2"),
                              Pair("PADDLE_TRAINERS_NUM", "4"), Pair("PADDLE_TRAINERS", "node-a,node-b"),
                              Pair("PADDLE_NNODES", "2"), Pair("PADDLE_RANK_IN_NODE", "0"), Pair("POD_IP", "node-b")));
}

TEST(FrameworksTest, TensorflowGetsTfConfigWithEveryWorker) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("tensorflow", 1));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->env.at("TF_CONFIG"),
            R"({"cluster":{"worker":["node-a:23456","node-a:23457","node-b:23458","node-b:23459"]},)"
            R"("task":{"type":"worker","index":1}})");
  EXPECT_THAT(setup->files, IsEmpty());
}

TEST(FrameworksTest, UnknownFrameworkListsTheKnownOnes) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("jax", 0));
  ASSERT_EQ(setup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(setup.status().message(),
              AllOf(HasSubstr("'jax'"), HasSubstr("deepspeed, mindspore, mpi, none, paddle, pytorch, tensorflow")));
}

TEST(FrameworksTest, RejectsRankOutsideWorldSize) {
  RankInfo info = TwoByTwo("pytorch", 0);
  info.rank = 4;
  EXPECT_EQ(SetupFramework(info).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FrameworksTest, RejectsHostListOfWrongLength) {
  RankInfo info = TwoByTwo("mpi", 0);
  info.rank_hosts.pop_back();
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(info);
  ASSERT_EQ(setup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(setup.status().message(), HasSubstr("rank_hosts"));
}

TEST(FrameworksTest, RejectsPytorchWithoutMaster) {
  RankInfo info = TwoByTwo("pytorch", 0);
  info.master_addr.clear();
  EXPECT_EQ(SetupFramework(info).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FrameworksTest, RejectsRelativeFilesDir) {
  RankInfo info = TwoByTwo("deepspeed", 0);
  info.files_dir = "jobs/7";
  EXPECT_EQ(SetupFramework(info).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CollectiveInterfaceTest, NoneSetsNoInterfaceVariables) {
  absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo("none", 0));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_THAT(setup->default_env, IsEmpty());
}

TEST(CollectiveInterfaceTest, CpuRanksPinGlooAndTensorPipeToTheNodesInterface) {
  // A rank without devices (vendor "") only talks gloo/TensorPipe; the
  // agent substitutes the placeholder with its own NIC's name.
  for (const char* fw : {"pytorch", "deepspeed", "mpi", "mindspore", "paddle", "tensorflow"}) {
    absl::StatusOr<FrameworkSetup> setup = SetupFramework(TwoByTwo(fw, 2));
    ASSERT_TRUE(setup.ok()) << fw << ": " << setup.status();
    EXPECT_THAT(setup->default_env, UnorderedElementsAre(Pair("GLOO_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}"),
                                                         Pair("TP_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}")))
        << fw;
  }
}

TEST(CollectiveInterfaceTest, EachVendorsLibraryIsPinned) {
  // NCCL and HCCL take "=NAME" as an exact match; HCCL_IF_IP, which HCCL
  // prefers, is the node's own IP.
  const std::vector<std::pair<std::string, std::map<std::string, std::string>>> expected = {
      {"nvidia", {{"NCCL_SOCKET_IFNAME", "=${ICOS_NODE_INTERFACE}"}}},
      {"iluvatar", {{"NCCL_SOCKET_IFNAME", "=${ICOS_NODE_INTERFACE}"}}},
      {"amd", {{"NCCL_SOCKET_IFNAME", "=${ICOS_NODE_INTERFACE}"}}},
      {"hygon", {{"NCCL_SOCKET_IFNAME", "=${ICOS_NODE_INTERFACE}"}}},
      {"ascend", {{"HCCL_SOCKET_IFNAME", "=${ICOS_NODE_INTERFACE}"}, {"HCCL_IF_IP", "${ICOS_NODE_IP}"}}},
      {"cambricon", {{"CNCL_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}"}}},
      {"kunlunxin", {{"BKCL_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}"}}},
      {"moorethreads", {{"MCCL_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}"}}},
      {"metax", {{"MCCL_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}"}}},
      {"enflame", {{"ECCL_SOCKET_IFNAME", "${ICOS_NODE_INTERFACE}"}}},
      {"quantum-abacus", {}},
  };
  for (const auto& [vendor, vars] : expected) {
    std::map<std::string, std::string> want = vars;
    want["GLOO_SOCKET_IFNAME"] = "${ICOS_NODE_INTERFACE}";
    want["TP_SOCKET_IFNAME"] = "${ICOS_NODE_INTERFACE}";
    EXPECT_EQ(CollectiveInterfaceEnv(vendor), want) << vendor;
    RankInfo info = TwoByTwo("pytorch", 1);
    info.vendor = vendor;
    absl::StatusOr<FrameworkSetup> setup = SetupFramework(info);
    ASSERT_TRUE(setup.ok()) << setup.status();
    EXPECT_EQ(setup->default_env, want) << vendor;
  }
  EXPECT_EQ(CollectiveInterfaceEnv("NVIDIA").count("NCCL_SOCKET_IFNAME"), 1u);
}

TEST(CollectiveInterfaceTest, PlaceholdersAreTheOnesTheAgentSubstitutes) {
  EXPECT_STREQ(kNodeInterfacePlaceholder, "${ICOS_NODE_INTERFACE}");
  EXPECT_STREQ(kNodeIpPlaceholder, "${ICOS_NODE_IP}");
}

}  // namespace
}  // namespace icos::frameworks
