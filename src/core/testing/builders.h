// Small builders for hand-written scheduler tests: a node, a job, a running
// job, in one line each. Test-only; header-only to keep the core target lean.
#ifndef ICOS_CORE_TESTING_BUILDERS_H_
#define ICOS_CORE_TESTING_BUILDERS_H_

#include <string>
#include <utility>
#include <vector>

#include "core/model/snapshot.h"

namespace icos::core::builders {

// A node with `devices` devices of vendor/model, split evenly into `islands`
// islands, 64 CPUs and 512 GiB unless told otherwise.
inline Node MakeNode(std::string name, const std::string& vendor, const std::string& model, int devices,
                     int islands = 1, std::vector<std::string> path = {"rack-0"}) {
  Node n;
  n.name = std::move(name);
  n.cpu_milli = 64'000;
  n.memory_mib = 512 * 1024;
  n.numa_nodes = {{32'000, 256 * 1024}, {32'000, 256 * 1024}};
  n.network_path = std::move(path);
  const int per_island = islands > 0 ? std::max(1, devices / islands) : devices;
  for (int d = 0; d < devices; ++d) {
    Device dev;
    dev.vendor = vendor;
    dev.model = model;
    dev.memory_mib = 80 * 1024;
    dev.island = d / per_island;
    dev.numa_node = d < devices / 2 ? 0 : 1;
    n.devices.push_back(dev);
  }
  return n;
}

// A one-group job: `replicas` tasks of `devices` whole devices each of `vendor`
// (any model when model is empty), 1 CPU and 1 GiB per task.
inline Job MakeJob(int64_t id, int devices, int replicas = 1, const std::string& vendor = "nvidia",
                   const std::string& model = "") {
  Job j;
  j.id = JobId(id);
  j.user = "alice";
  j.queue = "default";
  j.submit_ms = id;
  TaskGroup g;
  g.name = "worker";
  g.replicas = replicas;
  g.request.cpu_milli = 1'000;
  g.request.memory_mib = 1'024;
  g.request.devices = devices;
  if (!vendor.empty()) g.device_choices.push_back({vendor, model, 0.0});
  j.groups.push_back(std::move(g));
  return j;
}

// A job asking for `percent` per cent of one device per task.
inline Job MakeShareJob(int64_t id, int percent, const std::string& vendor = "nvidia") {
  Job j = MakeJob(id, 0, 1, vendor);
  j.groups[0].request.device_percent = percent;
  j.groups[0].request.device_memory_mib = 1'024;
  return j;
}

// `job` running since start_ms on node index `node`, holding `devices` (indices).
inline RunningJob MakeRunning(Job job, int node, const std::vector<int>& devices, int64_t start_ms = 0,
                              int64_t estimate_ms = 0) {
  RunningJob r;
  job.runtime_estimate_ms = estimate_ms;
  r.job = std::move(job);
  r.start_ms = start_ms;
  TaskPlacement p;
  p.node = node;
  p.cpu_milli = r.job.groups[0].request.cpu_milli;
  p.memory_mib = r.job.groups[0].request.memory_mib;
  for (int d : devices) p.devices.push_back({d, kWholeDevicePercent, 80 * 1024});
  r.tasks.push_back(std::move(p));
  return r;
}

// A queue with a name, optional parent and weight; nothing guaranteed or limited.
inline Queue Q(const std::string& name, const std::string& parent = "", double weight = 1.0) {
  Queue q;
  q.name = name;
  q.parent = parent;
  q.weight = weight;
  return q;
}

}  // namespace icos::core::builders

#endif  // ICOS_CORE_TESTING_BUILDERS_H_
