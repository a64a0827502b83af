// Seeded randomized property tests: invariants every policy combination must
// keep on random clusters, running sets, queues and pending jobs.
//   - never over-allocate CPU, memory or any device share;
//   - bind only on usable devices of a type the job accepts, on matching nodes;
//   - gangs all or nothing (each group between min_available and replicas);
//   - queue limits hold (no queue grows past a limit it was within);
//   - a preemption always lets the preemptor start;
//   - every pending job gets exactly one answer, each wait has a reason;
//   - the same input gives the same decisions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/scheduler.h"
#include "sim/synthetic.h"

namespace icos::core {
namespace {

struct Combo {
  std::string order, placement;
  bool topology;
  BackfillMode backfill;
  bool preemption;
};

std::vector<Combo> AllCombos() {
  std::vector<Combo> out;
  for (const char* order : {"fifo", "priority", "drf", "las", "srtf", "gittins"}) {
    for (const std::string& placement : NodeScorerNames()) {
      for (bool topology : {false, true}) {
        for (BackfillMode bf : {BackfillMode::kNone, BackfillMode::kStrict, BackfillMode::kEasy}) {
          for (bool preemption : {false, true}) out.push_back({order, placement, topology, bf, preemption});
        }
      }
    }
  }
  return out;
}

// A random small snapshot: mixed vendors, islands, some sick devices, queues
// with guarantees and limits, running jobs (some fractional), pending gangs.
Snapshot RandomSnapshot(uint64_t seed) {
  std::mt19937_64 rng(seed);
  sim::ClusterSpec spec;
  spec.nodes = 3 + static_cast<int32_t>(rng() % 8);
  spec.devices_per_node = 2 + static_cast<int32_t>(rng() % 7);
  spec.islands_per_node = 1 + static_cast<int32_t>(rng() % 2);
  spec.nodes_per_rack = 2;
  spec.cpu_milli = 32'000;
  spec.memory_mib = 256 * 1024;
  spec.types = {{"nvidia", "A100"}, {"ascend", "910B"}, {"nvidia", "T4"}};
  Snapshot s;
  s.now_ms = 1'000'000;
  s.nodes = sim::MakeCluster(spec);
  for (auto& n : s.nodes) {
    for (auto& d : n.devices) d.healthy = rng() % 20 != 0;
    n.schedulable = rng() % 15 != 0;
    if (rng() % 3 == 0) n.labels["zone"] = "b";
  }
  s.queues = {
      Queue{.name = "default"}, Queue{.name = "org"},
      Queue{.name = "team-a", .parent = "org", .guaranteed = {{"nvidia", 4'000}}, .limit = {{"devices", 12'000}}},
      Queue{.name = "team-b",
            .parent = "org",
            .weight = 2,
            .guaranteed = {{"ascend", 2'000}},
            .lend_idle = rng() % 2 == 0}};
  if (rng() % 2 == 0) s.queues[1].limit = {{"cpu", 40'000}};
  // Running: fill some devices directly (valid by construction), skipping sick ones.
  std::vector<std::vector<int>> free_share(s.nodes.size());
  std::vector<int64_t> free_cpu(s.nodes.size());
  for (size_t n = 0; n < s.nodes.size(); ++n) {
    free_share[n].assign(s.nodes[n].devices.size(), 100);
    free_cpu[n] = s.nodes[n].cpu_milli;
  }
  const char* queues[] = {"default", "team-a", "team-b"};
  const int running = static_cast<int>(rng() % 48);
  for (int i = 0; i < running; ++i) {
    const size_t n = rng() % s.nodes.size();
    const size_t d = rng() % s.nodes[n].devices.size();
    if (!s.nodes[n].devices[d].healthy || free_share[n][d] < 100 || free_cpu[n] < 2'000) continue;
    RunningJob r;
    r.job.id = JobId(1000 + i);
    r.job.queue = queues[rng() % 3];
    r.job.priority = static_cast<int32_t>(rng() % 3);
    r.job.runtime_estimate_ms = rng() % 2 ? static_cast<int64_t>(60'000 * (1 + rng() % 100)) : 0;
    r.start_ms = s.now_ms - static_cast<int64_t>(rng() % 100'000);
    TaskGroup g;
    const bool share = rng() % 4 == 0;
    g.request.cpu_milli = 2'000;
    g.request.memory_mib = 1'024;
    if (share) {
      g.request.device_percent = 50;
    } else {
      g.request.devices = 1;
    }
    g.device_choices.push_back({s.nodes[n].devices[d].vendor, "", 1.0});
    // Some whole-device jobs run twice as fast on any other type: candidates
    // for upgrade migration.
    if (!share && i % 3 == 0) g.device_choices.push_back({"", "", 2.0});
    r.job.groups.push_back(g);
    TaskPlacement p;
    p.node = static_cast<int32_t>(n);
    p.cpu_milli = 2'000;
    p.memory_mib = 1'024;
    p.devices.push_back({static_cast<int32_t>(d), share ? 50 : 100, share ? 0 : s.nodes[n].devices[d].memory_mib});
    free_share[n][d] -= share ? 50 : 100;
    free_cpu[n] -= 2'000;
    r.tasks.push_back(p);
    s.running.push_back(std::move(r));
  }
  sim::WorkloadSpec w;
  w.seed = seed * 7 + 3;
  w.jobs = 4 + static_cast<int32_t>(rng() % 14);
  w.max_devices = 16;
  w.fractional_share = 0.25;
  w.heterogeneous_share = 0.4;
  w.queues = {"default", "team-a", "team-b", "org"};
  s.pending = sim::MakeJobs(spec, w);
  for (auto& j : s.pending) {
    j.submit_ms = s.now_ms - static_cast<int64_t>(rng() % 50'000);
    j.attained_device_s = static_cast<double>(rng() % 40'000);
    if (rng() % 5 == 0) j.runtime_estimate_ms = 0;
    if (rng() % 2 == 0) j.runtime_log_sd = 0.05 * static_cast<double>(rng() % 60);  // 0 (default) .. 2.95
    auto& g = j.groups[0];
    if (rng() % 4 == 0) g.min_available = 1 + static_cast<int32_t>(rng() % g.replicas);
    const int a = static_cast<int>(rng() % 8);
    if (a == 1) g.affinity = Affinity::kSameIsland;
    if (a == 2) g.affinity = Affinity::kSameNode;
    if (a == 3) g.affinity = Affinity::kSameRack;
    if (a == 4) g.affinity = Affinity::kSpread;
    if (rng() % 6 == 0) g.node_selector["zone"] = "b";
    g.request.cpu_milli = std::min<int64_t>(g.request.cpu_milli, 8'000);
    if (rng() % 8 == 0) {  // a second task group makes a multi-group gang
      TaskGroup ps = g;
      ps.name = "ps";
      ps.replicas = 1;
      ps.min_available = 0;
      ps.request = TaskRequest{.cpu_milli = 1'000, .memory_mib = 512};
      ps.device_choices.clear();
      j.groups.push_back(ps);
    }
  }
  return s;
}

std::string Serialize(const Decisions& d) {
  std::ostringstream o;
  for (const auto& b : d.binds) {
    o << "B" << b.job.value() << ":" << b.device_type;
    for (const auto& t : b.tasks) {
      o << "[" << t.group << "," << t.replica << "@" << t.node;
      for (const auto& s : t.devices) o << " " << s.device << "/" << s.percent;
      o << "]";
    }
    for (JobId v : b.after_preemption) o << "<" << v.value();
    o << "\n";
  }
  for (const auto& p : d.preemptions) o << "P" << p.victim.value() << ">" << p.preemptor.value() << "\n";
  for (const auto& r : d.reservations) o << "R" << r.job.value() << "@" << r.start_ms << "\n";
  for (const auto& w : d.waiting) o << "W" << w.job.value() << ":" << WaitKindName(w.kind) << ":" << w.reason << "\n";
  return o.str();
}

// Checks every invariant of `d` against `s`; returns the first violation.
std::string Violation(const Snapshot& s, const Decisions& d) {
  // Capacity left after running jobs, minus victims, plus binds.
  std::set<int64_t> victims;
  for (const auto& p : d.preemptions) victims.insert(p.victim.value());
  std::set<int64_t> moved;
  for (const auto& m : d.migrations) {
    if (victims.count(m.job.value()) || !moved.insert(m.job.value()).second) {
      return absl::StrCat("job ", m.job.value(), " both preempted and moved, or moved twice");
    }
  }
  struct Free {
    int64_t cpu, mem;
    std::vector<int64_t> pct, dmem;
  };
  std::vector<Free> free;
  for (const auto& n : s.nodes) {
    Free f{n.cpu_milli, n.memory_mib, {}, {}};
    for (const auto& dev : n.devices) f.pct.push_back(100), f.dmem.push_back(dev.memory_mib);
    free.push_back(f);
  }
  auto take = [&](const TaskPlacement& t) {
    free[t.node].cpu -= t.cpu_milli;
    free[t.node].mem -= t.memory_mib;
    for (const auto& sl : t.devices)
      free[t.node].pct[sl.device] -= sl.percent, free[t.node].dmem[sl.device] -= sl.memory_mib;
  };
  std::set<int64_t> running_ids;
  for (const auto& r : s.running) {
    running_ids.insert(r.job.id.value());
    if (!victims.count(r.job.id.value()) && !moved.count(r.job.id.value())) {
      for (const auto& t : r.tasks) take(t);
    }
  }
  for (const auto& m : d.migrations) {
    auto it = std::find_if(s.running.begin(), s.running.end(), [&](const RunningJob& r) { return r.job.id == m.job; });
    if (it == s.running.end()) return absl::StrCat("moved job ", m.job.value(), " is not running");
    if (m.tasks.size() != 1 || m.tasks[0].devices.size() != 1)
      return absl::StrCat("job ", m.job.value(), " moved in a bad shape");
    const Device& dev = s.nodes[m.tasks[0].node].devices[m.tasks[0].devices[0].device];
    if (!dev.healthy || dev.drained || !s.nodes[m.tasks[0].node].schedulable) {
      return absl::StrCat("job ", m.job.value(), " moved to a sick device or node");
    }
    if (m.device_type == m.from_type) return absl::StrCat("job ", m.job.value(), " moved to the type it had");
    take(m.tasks[0]);
  }
  for (int64_t v : victims) {
    if (!running_ids.count(v)) return absl::StrCat("preempted job ", v, " is not running");
  }
  std::map<int64_t, const Job*> pending;
  for (const auto& j : s.pending) pending[j.id.value()] = &j;
  std::map<int64_t, int> answers;
  for (const auto& b : d.binds) {
    ++answers[b.job.value()];
    const Job* job = pending.at(b.job.value());
    std::vector<std::set<int32_t>> replicas(job->groups.size());
    for (const auto& t : b.tasks) {
      take(t);
      const TaskGroup& g = job->groups[t.group];
      replicas[t.group].insert(t.replica);
      const Node& node = s.nodes[t.node];
      for (const auto& [k, v] : g.node_selector) {
        auto it = node.labels.find(k);
        if (it == node.labels.end() || it->second != v)
          return absl::StrCat("job ", b.job.value(), " on a node failing its selector");
      }
      if (!node.schedulable) return absl::StrCat("job ", b.job.value(), " on an unschedulable node");
      const int want = g.request.devices > 0 ? g.request.devices : (g.request.IsFractional() ? 1 : 0);
      if (static_cast<int>(t.devices.size()) != want)
        return absl::StrCat("job ", b.job.value(), " got the wrong device count");
      for (const auto& sl : t.devices) {
        const Device& dev = node.devices[sl.device];
        if (!dev.healthy || dev.drained) return absl::StrCat("job ", b.job.value(), " on a sick device");
        bool accepted = g.device_choices.empty();
        for (const auto& c : g.device_choices) {
          accepted |= (c.vendor.empty() || c.vendor == dev.vendor) && (c.model.empty() || c.model == dev.model);
        }
        if (!accepted) return absl::StrCat("job ", b.job.value(), " on a device type it does not accept");
        if (g.affinity == Affinity::kSameIsland && dev.island != node.devices[t.devices[0].device].island) {
          return absl::StrCat("job ", b.job.value(), " spans islands");
        }
      }
    }
    for (size_t gi = 0; gi < job->groups.size(); ++gi) {
      const int n = static_cast<int>(replicas[gi].size());
      if (n < job->groups[gi].MinReplicas() || n > job->groups[gi].replicas) {
        return absl::StrCat("job ", b.job.value(), " group ", gi, " got ", n, " replicas: not a whole gang");
      }
    }
    for (JobId v : b.after_preemption) {
      if (!victims.count(v.value())) return absl::StrCat("bind waits for ", v.value(), " which is not preempted");
    }
  }
  for (size_t n = 0; n < free.size(); ++n) {
    if (free[n].cpu < 0 || free[n].mem < 0) return absl::StrCat("node ", n, " over-allocated CPU or memory");
    for (size_t i = 0; i < free[n].pct.size(); ++i) {
      if (free[n].pct[i] < 0 || free[n].dmem[i] < 0) return absl::StrCat("node ", n, " device ", i, " over-allocated");
    }
  }
  for (const auto& w : d.waiting) {
    ++answers[w.job.value()];
    if (w.reason.empty()) return absl::StrCat("job ", w.job.value(), " waits without a reason");
  }
  for (const auto& [id, job] : pending) {
    if (answers[id] != 1) return absl::StrCat("job ", id, " answered ", answers[id], " times");
  }
  return "";
}

// Device usage per (queue, vendor) after the decisions, counting descendants.
std::map<std::pair<std::string, std::string>, int64_t> VendorUsage(const Snapshot& s, const Decisions* d) {
  std::map<std::string, std::string> parent;
  for (const auto& q : s.queues) parent[q.name] = q.parent;
  std::map<std::pair<std::string, std::string>, int64_t> use;
  auto add = [&](const std::string& queue, const Node& node, const TaskPlacement& t) {
    for (const auto& sl : t.devices) {
      for (std::string q = queue; !q.empty(); q = parent[q]) {
        use[{q, node.devices[sl.device].vendor}] += sl.percent * 10;
        use[{q, "devices"}] += sl.percent * 10;
      }
    }
  };
  std::set<int64_t> victims;
  if (d != nullptr) {
    for (const auto& p : d->preemptions) victims.insert(p.victim.value());
  }
  for (const auto& r : s.running) {
    if (victims.count(r.job.id.value())) continue;
    for (const auto& t : r.tasks) add(r.job.queue, s.nodes[t.node], t);
  }
  if (d != nullptr) {
    for (const auto& b : d->binds) {
      for (const auto& j : s.pending) {
        if (j.id != b.job) continue;
        for (const auto& t : b.tasks) add(j.queue, s.nodes[t.node], t);
      }
    }
  }
  return use;
}

class PropertyTest : public ::testing::TestWithParam<int> {};

TEST_P(PropertyTest, InvariantsHoldForEveryPolicyCombination) {
  const auto combos = AllCombos();
  int64_t binds = 0, preemptions = 0, migrations = 0, reservations = 0, waits = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    const uint64_t mixed = seed * 1'000 + static_cast<uint64_t>(GetParam());
    const Snapshot s = RandomSnapshot(mixed);
    const auto before = VendorUsage(s, nullptr);
    for (const Combo& c : combos) {
      SCOPED_TRACE(absl::StrCat("seed ", mixed, " order ", c.order, " placement ", c.placement, " topology ",
                                c.topology, " backfill ", static_cast<int>(c.backfill), " preemption ", c.preemption));
      auto sched = Scheduler::Create({.order = c.order,
                                      .placement = c.placement,
                                      .topology_aware = c.topology,
                                      .migrate_to_faster_type = c.preemption,
                                      .backfill = c.backfill,
                                      .preemption = c.preemption});
      ASSERT_TRUE(sched.ok());
      auto d = sched->Schedule(s);
      ASSERT_TRUE(d.ok()) << d.status();
      ASSERT_EQ(Violation(s, *d), "");
      binds += static_cast<int64_t>(d->binds.size());
      preemptions += static_cast<int64_t>(d->preemptions.size());
      migrations += static_cast<int64_t>(d->migrations.size());
      reservations += static_cast<int64_t>(d->reservations.size());
      waits += static_cast<int64_t>(d->waiting.size());
      // Same input, same decisions.
      auto again = sched->Schedule(s);
      ASSERT_TRUE(again.ok());
      ASSERT_EQ(Serialize(*d), Serialize(*again));
      // The only limit in the tree: team-a at 12 devices. It may not grow past it.
      const auto after = VendorUsage(s, &*d);
      const auto key = std::make_pair(std::string("team-a"), std::string("devices"));
      const int64_t was = before.count(key) ? before.at(key) : 0;
      const int64_t now = after.count(key) ? after.at(key) : 0;
      ASSERT_TRUE(now <= 12'000 || now <= was) << "team-a grew to " << now;
      if (!c.preemption) {
        ASSERT_TRUE(d->preemptions.empty());
      }
    }
  }
  // The random inputs must exercise every path the invariants guard.
  EXPECT_GT(binds, 0);
  EXPECT_GT(migrations, 0);
  EXPECT_GT(reservations, 0);
  EXPECT_GT(waits, 0);
  std::printf("binds %lld preemptions %lld migrations %lld reservations %lld waits %lld\n",
              static_cast<long long>(binds), static_cast<long long>(preemptions), static_cast<long long>(migrations),
              static_cast<long long>(reservations), static_cast<long long>(waits));
}

INSTANTIATE_TEST_SUITE_P(Seeds, PropertyTest, ::testing::Range(0, 4));

// Preemption is rare in small random clusters; this runs enough of them with
// preemption on to be sure the invariants were checked on real preemptions.
TEST(PreemptionPropertyTest, PreemptionsLetThePreemptorStart) {
  int64_t preemptions = 0;
  for (const char* order : {"priority", "drf"}) {
    auto sched = Scheduler::Create({.order = order});
    ASSERT_TRUE(sched.ok());
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      const Snapshot s = RandomSnapshot(seed * 7'919);
      auto d = sched->Schedule(s);
      ASSERT_TRUE(d.ok()) << d.status();
      ASSERT_EQ(Violation(s, *d), "") << "seed " << seed;
      preemptions += static_cast<int64_t>(d->preemptions.size());
      for (const auto& b : d->binds) {
        for (JobId v : b.after_preemption) {
          bool listed = false;
          for (const auto& p : d->preemptions) listed |= p.victim == v && p.preemptor == b.job;
          ASSERT_TRUE(listed) << "victim " << v.value() << " of job " << b.job.value();
        }
      }
    }
  }
  EXPECT_GT(preemptions, 0);
}

}  // namespace
}  // namespace icos::core
