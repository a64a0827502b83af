// What each distributed training framework expects to find when one of its
// ranks starts: environment variables and generated files (hostfiles, rank
// tables). Pure functions: no I/O; the launcher writes the files and merges
// the environment.
//
// Thread-safety: all functions are pure and may be called from any thread.
#ifndef ICOS_FRAMEWORKS_FRAMEWORKS_H_
#define ICOS_FRAMEWORKS_FRAMEWORKS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace icos::frameworks {

// Stand for what only the rank's node knows, in the environment the
// controller computes for a task; the node's agent substitutes them at
// launch (net/net_util.h ExpandPlaceholders), as it does the task
// directory. The interface is the one holding the address the node's agent
// advertises (its --address), the IP that address. A job's own env may use
// them too. Where the agent cannot tell, the variable is left out.
inline constexpr char kNodeInterfacePlaceholder[] = "${ICOS_NODE_INTERFACE}";
inline constexpr char kNodeIpPlaceholder[] = "${ICOS_NODE_IP}";

// Everything about one rank of a job that a framework might need.
struct RankInfo {
  // "none", "pytorch", "mpi", "deepspeed", "mindspore", "paddle", "tensorflow".
  std::string framework = "none";
  std::string job_name;
  int64_t job_id = 0;
  int32_t rank = 0;        // global rank, 0..world_size-1
  int32_t world_size = 1;  // ranks in the job
  int32_t local_rank = 0;  // rank among those on this node
  int32_t local_world_size = 1;
  int32_t node_rank = 0;  // this node's index among the job's nodes
  int32_t num_nodes = 1;
  // Rendezvous endpoint (rank 0's host and a free port there).
  std::string master_addr;
  int32_t master_port = 0;
  // Host (name or address) of each rank, indexed by rank. Required by mpi,
  // deepspeed, mindspore, paddle and tensorflow.
  std::vector<std::string> rank_hosts;
  // A free port per rank on its host, for frameworks whose ranks each listen
  // (paddle, tensorflow). Indexed by rank.
  std::vector<int32_t> rank_ports;
  // Physical device indices of each rank; empty when unknown.
  std::vector<std::vector<int32_t>> rank_devices;
  // Ascend only: the NPU NIC address of each rank's device (from hccn_tool or
  // /etc/hccn.conf), written as device_ip in the HCCL rank table. Omitted when
  // empty, which HCCL accepts only on a single server.
  std::vector<std::string> rank_device_ips;
  // Absolute directory the generated files will be written to; required by
  // mpi, deepspeed and mindspore. Paths in FrameworkSetup::files live here.
  std::string files_dir;
  // Vendor of this rank's devices ("nvidia", "ascend", ...; matched
  // case-insensitively); empty for a rank without devices. Picks which
  // collective library is told its network interface.
  std::string vendor;
};

struct FrameworkSetup {
  std::map<std::string, std::string> env;
  // Set only where the job's own env does not set them: the network
  // interface the collective libraries use (GLOO_SOCKET_IFNAME,
  // NCCL_SOCKET_IFNAME, ...), as placeholders the node substitutes. An
  // operator who knows better (an RDMA NIC) names it in the job spec.
  std::map<std::string, std::string> default_env;
  std::map<std::string, std::string> files;  // absolute path -> content
};

// The frameworks SetupFramework knows, sorted.
std::vector<std::string> KnownFrameworks();

// What rank `info.rank` of the job needs. Every framework also gets
// ICOS_RANK, ICOS_WORLD_SIZE, ICOS_JOB_ID and ICOS_JOB_NAME; every one but
// "none" the interface variables of CollectiveInterfaceEnv(info.vendor).
// InvalidArgument for an unknown framework (the message lists the known ones)
// or for inconsistent info (rank outside world_size, rank_hosts of the wrong
// length, missing master_addr, ...).
absl::StatusOr<FrameworkSetup> SetupFramework(const RankInfo& info);

// The variables that pin the collective libraries a rank may use to its
// node's own interface, as placeholders (kNodeInterfacePlaceholder,
// kNodeIpPlaceholder): gloo's and TensorPipe's (PyTorch on CPU, and the
// CPU side of every framework) always, and the vendor's library: NCCL (also
// RCCL, which reads NCCL_*: nvidia, iluvatar, amd, hygon), HCCL (ascend:
// HCCL_SOCKET_IFNAME and HCCL_IF_IP), CNCL (cambricon), BKCL (kunlunxin),
// MCCL (moorethreads, metax), ECCL (enflame). Without it a library picks an
// interface by its own rules (often the first non-loopback one, or what the
// host name resolves to), which on a machine with several networks is not
// the one the other ranks reach.
std::map<std::string, std::string> CollectiveInterfaceEnv(const std::string& vendor);

}  // namespace icos::frameworks

#endif  // ICOS_FRAMEWORKS_FRAMEWORKS_H_
