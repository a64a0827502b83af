#include "sim/synthetic.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace icos::sim {

std::vector<core::Node> MakeCluster(const ClusterSpec& spec) {
  std::vector<core::Node> nodes;
  nodes.reserve(spec.nodes);
  const int32_t per_island = std::max(1, spec.devices_per_node / std::max(1, spec.islands_per_node));
  const int32_t per_numa = std::max(1, spec.devices_per_node / std::max(1, spec.numa_per_node));
  for (int32_t i = 0; i < spec.nodes; ++i) {
    core::Node n;
    n.name = absl::StrCat("node-", i);
    const auto& [vendor, model] = spec.types[i % spec.types.size()];
    n.labels["vendor"] = vendor;
    n.cpu_milli = spec.cpu_milli;
    n.memory_mib = spec.memory_mib;
    for (int32_t k = 0; k < spec.numa_per_node; ++k) {
      n.numa_nodes.push_back({spec.cpu_milli / spec.numa_per_node, spec.memory_mib / spec.numa_per_node});
    }
    for (int32_t d = 0; d < spec.devices_per_node; ++d) {
      core::Device dev;
      dev.vendor = vendor;
      dev.model = model;
      dev.memory_mib = spec.device_memory_mib;
      dev.compute_units = 108;
      dev.island = d / per_island;
      dev.numa_node = std::min(d / per_numa, spec.numa_per_node - 1);
      n.devices.push_back(dev);
    }
    const int32_t rack = i / spec.nodes_per_rack;
    n.network_path = {absl::StrCat("pod-", rack / spec.racks_per_superpod), absl::StrCat("rack-", rack)};
    nodes.push_back(std::move(n));
  }
  return nodes;
}

std::vector<core::Job> MakeJobs(const ClusterSpec& cluster, const WorkloadSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // Device counts and their weights: mostly small jobs, a tail of large gangs.
  const std::vector<std::pair<int32_t, double>> sizes = {{1, 0.40},  {2, 0.15},  {4, 0.15}, {8, 0.15},
                                                         {16, 0.08}, {32, 0.04}, {64, 0.03}};
  std::vector<core::Job> jobs;
  jobs.reserve(spec.jobs);
  for (int32_t i = 0; i < spec.jobs; ++i) {
    core::Job job;
    job.id = JobId(spec.first_id + i);
    job.queue = spec.queues[rng() % spec.queues.size()];
    job.user = absl::StrCat("user-", rng() % 20);
    job.priority = static_cast<int32_t>(rng() % std::max(1, spec.priorities));
    job.submit_ms = spec.submit_ms + i;
    job.runtime_estimate_ms = static_cast<int64_t>(60'000 * (1 + rng() % 240));
    core::TaskGroup g;
    g.name = "worker";
    const auto& [vendor, model] = cluster.types[rng() % cluster.types.size()];
    if (unit(rng) < spec.fractional_share) {
      g.request.device_percent = static_cast<int32_t>(10 * (1 + rng() % 9));
      g.request.device_memory_mib = cluster.device_memory_mib * g.request.device_percent / 100;
      g.request.cpu_milli = 2'000;
      g.request.memory_mib = 8'192;
      g.device_choices.push_back({vendor, model, 1.0});
    } else {
      double pick = unit(rng), acc = 0;
      int32_t devices = 1;
      for (const auto& [n, w] : sizes) {
        acc += w;
        if (pick <= acc) {
          devices = n;
          break;
        }
      }
      devices = std::min(devices, spec.max_devices);
      const int32_t per_task = std::min(devices, cluster.devices_per_node);
      g.replicas = devices / per_task;
      g.request.devices = per_task;
      g.request.cpu_milli = 4'000 * per_task;
      g.request.memory_mib = 32'768 * per_task;
      if (unit(rng) < spec.heterogeneous_share) {
        // Two models of the vendor with different speeds for this job.
        for (const auto& [v, m] : cluster.types) {
          if (v == vendor) g.device_choices.push_back({v, m, 0.5 + unit(rng)});
        }
      } else {
        g.device_choices.push_back({vendor, "", 1.0});
      }
    }
    job.groups.push_back(std::move(g));
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::vector<core::RunningJob> MakeRunning(const ClusterSpec& cluster, const std::vector<core::Node>& nodes,
                                          int32_t count, uint64_t seed, int64_t first_id, int64_t now_ms) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<bool>> used(nodes.size());
  std::vector<int32_t> free(nodes.size());
  std::vector<int64_t> free_cpu(nodes.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    used[n].assign(nodes[n].devices.size(), false);
    free[n] = static_cast<int32_t>(nodes[n].devices.size());
    free_cpu[n] = nodes[n].cpu_milli;
  }
  std::vector<core::RunningJob> out;
  const int32_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 8};
  int32_t misses = 0;
  while (static_cast<int32_t>(out.size()) < count && misses < 1000) {
    const size_t n = rng() % nodes.size();
    const int32_t want = std::min(sizes[rng() % 8], cluster.devices_per_node);
    if (free[n] < want || free_cpu[n] < 4'000 * want) {
      ++misses;
      continue;
    }
    misses = 0;
    core::RunningJob rj;
    rj.job.id = JobId(first_id + static_cast<int64_t>(out.size()));
    rj.job.queue = "default";
    rj.job.user = absl::StrCat("user-", rng() % 20);
    rj.job.priority = static_cast<int32_t>(rng() % 3);
    rj.job.runtime_estimate_ms = static_cast<int64_t>(60'000 * (1 + rng() % 240));
    rj.start_ms = now_ms - static_cast<int64_t>(rng() % 3'600'000);
    core::TaskGroup g;
    g.request.devices = want;
    g.request.cpu_milli = 4'000 * want;
    g.request.memory_mib = 32'768 * want;
    g.device_choices.push_back({nodes[n].devices[0].vendor, "", 1.0});
    rj.job.groups.push_back(g);
    core::TaskPlacement p;
    p.node = static_cast<int32_t>(n);
    p.cpu_milli = g.request.cpu_milli;
    p.memory_mib = g.request.memory_mib;
    for (size_t d = 0; d < used[n].size() && static_cast<int32_t>(p.devices.size()) < want; ++d) {
      if (used[n][d]) continue;
      used[n][d] = true;
      p.devices.push_back({static_cast<int32_t>(d), core::kWholeDevicePercent, nodes[n].devices[d].memory_mib});
    }
    free[n] -= want;
    free_cpu[n] -= p.cpu_milli;
    rj.tasks.push_back(std::move(p));
    out.push_back(std::move(rj));
  }
  return out;
}

}  // namespace icos::sim
