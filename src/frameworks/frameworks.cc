#include "frameworks/frameworks.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace icos::frameworks {
namespace {

using Env = std::map<std::string, std::string>;

// Hosts in order of their first rank, each with its number of ranks: the
// order is what makes rank r land on rank_hosts[r] when MPI fills slots.
std::vector<std::pair<std::string, int32_t>> HostSlots(const RankInfo& info) {
  std::vector<std::pair<std::string, int32_t>> slots;
  for (const std::string& host : info.rank_hosts) {
    auto it = std::find_if(slots.begin(), slots.end(), [&](const auto& s) { return s.first == host; });
    if (it == slots.end()) {
      slots.emplace_back(host, 1);
    } else {
      ++it->second;
    }
  }
  return slots;
}

// "host slots=N" per line: the format of both OpenMPI's and DeepSpeed's hostfile.
std::string Hostfile(const RankInfo& info) {
  std::string out;
  for (const auto& [host, slots] : HostSlots(info)) absl::StrAppend(&out, host, " slots=", slots, "\n");
  return out;
}

std::string Endpoint(const RankInfo& info, int32_t rank) {
  return absl::StrCat(info.rank_hosts[rank], ":", info.rank_ports[rank]);
}

std::string FilePath(const RankInfo& info, const std::string& name) { return absl::StrCat(info.files_dir, "/", name); }

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(absl::StrCat("rank info: ", what)); }

struct Needs {
  bool master = false;
  bool hosts = false;
  bool ports = false;
  bool files = false;
};

absl::Status Validate(const RankInfo& info, const Needs& needs) {
  if (info.world_size < 1) return Invalid("world_size must be >= 1");
  if (info.rank < 0 || info.rank >= info.world_size) {
    return Invalid(absl::StrCat("rank ", info.rank, " is outside [0, ", info.world_size, ")"));
  }
  if (info.local_world_size < 1 || info.local_world_size > info.world_size) {
    return Invalid("local_world_size must be within [1, world_size]");
  }
  if (info.local_rank < 0 || info.local_rank >= info.local_world_size) {
    return Invalid(absl::StrCat("local_rank ", info.local_rank, " is outside [0, ", info.local_world_size, ")"));
  }
  if (info.num_nodes < 1 || info.node_rank < 0 || info.node_rank >= info.num_nodes) {
    return Invalid(absl::StrCat("node_rank ", info.node_rank, " is outside [0, ", info.num_nodes, ")"));
  }
  if (needs.master && (info.master_addr.empty() || info.master_port < 1 || info.master_port > 65535)) {
    return Invalid(absl::StrCat(info.framework, " needs master_addr and a master_port in 1..65535"));
  }
  if (needs.hosts && info.rank_hosts.size() != static_cast<size_t>(info.world_size)) {
    return Invalid(absl::StrCat(info.framework, " needs one rank_hosts entry per rank (", info.world_size, "), got ",
                                info.rank_hosts.size()));
  }
  if (needs.hosts &&
      std::any_of(info.rank_hosts.begin(), info.rank_hosts.end(), [](const std::string& h) { return h.empty(); })) {
    return Invalid("rank_hosts has an empty entry");
  }
  if (needs.ports && info.rank_ports.size() != static_cast<size_t>(info.world_size)) {
    return Invalid(absl::StrCat(info.framework, " needs one rank_ports entry per rank (", info.world_size, "), got ",
                                info.rank_ports.size()));
  }
  if (needs.files && (info.files_dir.empty() || info.files_dir[0] != '/')) {
    return Invalid(absl::StrCat(info.framework, " writes files and needs an absolute files_dir"));
  }
  if (!info.rank_devices.empty() && info.rank_devices.size() != static_cast<size_t>(info.world_size)) {
    return Invalid("rank_devices must be empty or have one entry per rank");
  }
  if (!info.rank_device_ips.empty() && info.rank_device_ips.size() != static_cast<size_t>(info.world_size)) {
    return Invalid("rank_device_ips must be empty or have one entry per rank");
  }
  return absl::OkStatus();
}

void AddTorchStyle(const RankInfo& info, Env& env) {
  env["MASTER_ADDR"] = info.master_addr;
  env["MASTER_PORT"] = absl::StrCat(info.master_port);
  env["RANK"] = absl::StrCat(info.rank);
  env["WORLD_SIZE"] = absl::StrCat(info.world_size);
  env["LOCAL_RANK"] = absl::StrCat(info.local_rank);
}

// The device a rank drives: its first assigned device, else its position
// among the ranks of its host (the usual one-device-per-rank layout).
int32_t DeviceOf(const RankInfo& info, int32_t rank) {
  if (!info.rank_devices.empty() && !info.rank_devices[rank].empty()) return info.rank_devices[rank][0];
  int32_t position = 0;
  for (int32_t r = 0; r < rank; ++r) {
    if (info.rank_hosts[r] == info.rank_hosts[rank]) ++position;
  }
  return position;
}

// HCCL rank table, format version 1.0 (what MindSpore's hccl_tools.py
// writes): values are strings, servers in order of their first rank.
std::string MindSporeRankTable(const RankInfo& info) {
  nlohmann::ordered_json servers = nlohmann::ordered_json::array();
  for (const auto& [host, slots] : HostSlots(info)) {
    nlohmann::ordered_json devices = nlohmann::ordered_json::array();
    for (int32_t r = 0; r < info.world_size; ++r) {
      if (info.rank_hosts[r] != host) continue;
      nlohmann::ordered_json device;
      device["device_id"] = absl::StrCat(DeviceOf(info, r));
      if (!info.rank_device_ips.empty()) device["device_ip"] = info.rank_device_ips[r];
      device["rank_id"] = absl::StrCat(r);
      devices.push_back(std::move(device));
    }
    nlohmann::ordered_json server;
    server["server_id"] = host;
    server["device"] = std::move(devices);
    server["host_nic_ip"] = "reserve";
    servers.push_back(std::move(server));
  }
  nlohmann::ordered_json table;
  table["version"] = "1.0";
  table["server_count"] = absl::StrCat(servers.size());
  table["server_list"] = std::move(servers);
  table["status"] = "completed";
  return table.dump(2) + "\n";
}

}  // namespace

std::vector<std::string> KnownFrameworks() {
  return {"deepspeed", "mindspore", "mpi", "none", "paddle", "pytorch", "tensorflow"};
}

absl::StatusOr<FrameworkSetup> SetupFramework(const RankInfo& info) {
  const std::string& fw = info.framework;
  Needs needs;
  if (fw == "none") {
  } else if (fw == "pytorch") {
    needs.master = true;
  } else if (fw == "mpi") {
    needs = {.hosts = true, .files = true};
  } else if (fw == "deepspeed") {
    needs = {.master = true, .hosts = true, .files = true};
  } else if (fw == "mindspore") {
    needs = {.master = true, .hosts = true, .files = true};
  } else if (fw == "paddle") {
    needs = {.master = true, .hosts = true, .ports = true};
  } else if (fw == "tensorflow") {
    needs = {.hosts = true, .ports = true};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown framework '", fw, "'; known frameworks: ", absl::StrJoin(KnownFrameworks(), ", ")));
  }
  if (absl::Status s = Validate(info, needs); !s.ok()) return s;

  FrameworkSetup setup;
  Env& env = setup.env;
  env["ICOS_RANK"] = absl::StrCat(info.rank);
  env["ICOS_WORLD_SIZE"] = absl::StrCat(info.world_size);
  env["ICOS_JOB_ID"] = absl::StrCat(info.job_id);
  env["ICOS_JOB_NAME"] = info.job_name;

  if (fw != "none") setup.default_env = CollectiveInterfaceEnv(info.vendor);

  if (fw == "pytorch") {
    // What torch.distributed's env:// init reads, plus what torchrun itself
    // would read (PET_*) should the task be a torchrun launcher.
    AddTorchStyle(info, env);
    env["LOCAL_WORLD_SIZE"] = absl::StrCat(info.local_world_size);
    env["GROUP_RANK"] = absl::StrCat(info.node_rank);
    env["PET_NNODES"] = absl::StrCat(info.num_nodes);
    env["PET_NODE_RANK"] = absl::StrCat(info.node_rank);
    env["PET_MASTER_ADDR"] = info.master_addr;
    env["PET_MASTER_PORT"] = absl::StrCat(info.master_port);
    env["PET_NPROC_PER_NODE"] = absl::StrCat(info.local_world_size);
  } else if (fw == "mpi" || fw == "deepspeed") {
    // The launcher (mpirun / deepspeed) sets OMPI_* itself from the hostfile;
    // setting them here would contradict it.
    std::string path = FilePath(info, "hostfile");
    setup.files[path] = Hostfile(info);
    env["ICOS_HOSTFILE"] = path;
    if (fw == "deepspeed") AddTorchStyle(info, env);
  } else if (fw == "mindspore") {
    std::string path = FilePath(info, "rank_table.json");
    setup.files[path] = MindSporeRankTable(info);
    env["RANK_TABLE_FILE"] = path;
    env["RANK_ID"] = absl::StrCat(info.rank);
    env["RANK_SIZE"] = absl::StrCat(info.world_size);
    env["DEVICE_ID"] = absl::StrCat(DeviceOf(info, info.rank));
    // Dynamic networking (msrun): the scheduler runs at master_addr:master_port.
    env["MS_WORKER_NUM"] = absl::StrCat(info.world_size);
    env["MS_LOCAL_WORKER"] = absl::StrCat(info.local_world_size);
    env["MS_SCHED_HOST"] = info.master_addr;
    env["MS_SCHED_PORT"] = absl::StrCat(info.master_port);
    env["MS_ROLE"] = "MS_WORKER";
    env["MS_NODE_RANK"] = absl::StrCat(info.node_rank);
  } else if (fw == "paddle") {
    std::vector<std::string> endpoints;
    for (int32_t r = 0; r < info.world_size; ++r) endpoints.push_back(Endpoint(info, r));
    std::vector<std::string> hosts;
    for (const auto& [host, slots] : HostSlots(info)) hosts.push_back(host);
    env["PADDLE_MASTER"] = absl::StrCat(info.master_addr, ":", info.master_port);
    env["PADDLE_TRAINER_ENDPOINTS"] = absl::StrJoin(endpoints, ",");
    env["PADDLE_CURRENT_ENDPOINT"] = endpoints[info.rank];
    env["PADDLE_TRAINER_ID"] = absl::StrCat(info.rank);
    env["PADDLE_TRAINERS_NUM"] = absl::StrCat(info.world_size);
    env["PADDLE_TRAINERS"] = absl::StrJoin(hosts, ",");
    env["PADDLE_NNODES"] = absl::StrCat(info.num_nodes);
    env["PADDLE_RANK_IN_NODE"] = absl::StrCat(info.local_rank);
    env["POD_IP"] = info.rank_hosts[info.rank];
  } else if (fw == "tensorflow") {
    nlohmann::ordered_json workers = nlohmann::ordered_json::array();
    for (int32_t r = 0; r < info.world_size; ++r) workers.push_back(Endpoint(info, r));
    nlohmann::ordered_json tf_config;
    tf_config["cluster"]["worker"] = std::move(workers);
    tf_config["task"]["type"] = "worker";
    tf_config["task"]["index"] = info.rank;
    env["TF_CONFIG"] = tf_config.dump();
  }
  return setup;
}

std::map<std::string, std::string> CollectiveInterfaceEnv(const std::string& vendor) {
  const std::string nic = kNodeInterfacePlaceholder;
  // "=NAME" is an exact match for NCCL and HCCL; a bare name is a prefix
  // (eth1 would also pick eth10). The others take a bare name.
  std::map<std::string, std::string> env = {{"GLOO_SOCKET_IFNAME", nic}, {"TP_SOCKET_IFNAME", nic}};
  const std::string v = absl::AsciiStrToLower(vendor);
  if (v == "nvidia" || v == "iluvatar" || v == "amd" || v == "hygon") {
    env["NCCL_SOCKET_IFNAME"] = "=" + nic;
  } else if (v == "ascend") {
    env["HCCL_SOCKET_IFNAME"] = "=" + nic;
    env["HCCL_IF_IP"] = kNodeIpPlaceholder;  // takes precedence over HCCL_SOCKET_IFNAME
  } else if (v == "cambricon") {
    env["CNCL_SOCKET_IFNAME"] = nic;
  } else if (v == "kunlunxin") {
    env["BKCL_SOCKET_IFNAME"] = nic;
  } else if (v == "moorethreads" || v == "metax") {
    env["MCCL_SOCKET_IFNAME"] = nic;
  } else if (v == "enflame") {
    env["ECCL_SOCKET_IFNAME"] = nic;
  }
  return env;
}

}  // namespace icos::frameworks
