// Scheduler core benchmarks at data-centre scale.
//
// Cluster: N nodes x 8 devices (4 vendors, 2 models each, 2 islands per node),
// 2N running jobs, N pending jobs of 1 to 64 devices (issue #2's setting at
// N = 10,000). Figures:
//   BM_FullPass        one full scheduling pass over all pending jobs (ms),
//                      decisions/s, peak RSS
//   BM_PlaceOneNewJob  latency to place one newly arrived job against an open
//                      session (p50 / p99 in microseconds)
//   BM_Forecast        one start-time forecast refresh (core/forecast.h) for
//                      1,000 pending jobs on N nodes: ms, forward passes run
//                      within the controller's default budget, jobs given a P50
// Run: build/release/bench/icos_scheduler_bench --benchmark_filter=FullPass
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/forecast.h"
#include "core/scheduler.h"
#include "core/testing/builders.h"
#include "learn/seeded_noise.h"
#include "process_memory.h"
#include "sim/synthetic.h"

namespace {

using icos::core::Decisions;
using icos::core::Scheduler;
using icos::core::SchedulingSession;
using icos::core::Snapshot;

icos::sim::ClusterSpec Spec(int32_t nodes) {
  icos::sim::ClusterSpec spec;
  spec.nodes = nodes;
  return spec;
}

// Snapshots are built once per size and shared by the benchmarks.
const Snapshot& SnapshotFor(int32_t nodes) {
  static std::map<int32_t, std::unique_ptr<Snapshot>> cache;
  auto& slot = cache[nodes];
  if (!slot) {
    slot = std::make_unique<Snapshot>();
    const auto spec = Spec(nodes);
    slot->now_ms = 10'000'000;
    slot->nodes = icos::sim::MakeCluster(spec);
    slot->running =
        icos::sim::MakeRunning(spec, slot->nodes, 2 * nodes, /*seed=*/7, /*first_id=*/1'000'000, slot->now_ms);
    icos::sim::WorkloadSpec w;
    w.seed = 11;
    w.jobs = nodes;
    w.submit_ms = slot->now_ms - nodes;
    w.fractional_share = 0.05;
    slot->pending = icos::sim::MakeJobs(spec, w);
  }
  return *slot;
}

void BM_FullPass(benchmark::State& state) {
  const Snapshot& snap = SnapshotFor(static_cast<int32_t>(state.range(0)));
  auto sched = Scheduler::Create({});
  if (!sched.ok()) {
    state.SkipWithError(std::string(sched.status().message()).c_str());
    return;
  }
  Decisions last;
  for (auto _ : state) {
    auto d = sched->Schedule(snap);
    if (!d.ok()) {
      state.SkipWithError(std::string(d.status().message()).c_str());
      return;
    }
    last = *std::move(d);
    benchmark::DoNotOptimize(last);
  }
  const double decided = static_cast<double>(last.binds.size() + last.waiting.size());
  state.counters["pending"] = static_cast<double>(snap.pending.size());
  state.counters["running"] = static_cast<double>(snap.running.size());
  state.counters["binds"] = static_cast<double>(last.binds.size());
  state.counters["preemptions"] = static_cast<double>(last.preemptions.size());
  state.counters["reservations"] = static_cast<double>(last.reservations.size());
  state.counters["decisions_per_s"] =
      benchmark::Counter(decided * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_rss_mib"] = icos::bench::PeakRssMib();
}
BENCHMARK(BM_FullPass)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// A full cluster with a long queue of one shape and no runtime estimates
// (a job array, bench/trivial_jobs.sh): the first waiting job holds the
// EASY reservation and every later one must honour it. 8 nodes x 8 devices,
// all held; N pending one-device jobs.
void BM_QueueBehindAReservation(benchmark::State& state) {
  Snapshot snap;
  snap.now_ms = 10'000'000;
  for (int n = 0; n < 8; ++n) {
    snap.nodes.push_back(icos::core::builders::MakeNode(absl::StrCat("n", n), "nvidia", "H100", 8));
    icos::core::RunningJob r;
    r.job = icos::core::builders::MakeJob(1'000'000 + n, 8);
    r.job.runtime_estimate_ms = 3'600'000;
    r.start_ms = snap.now_ms - 60'000;
    icos::core::TaskPlacement t{.node = n, .cpu_milli = 1'000, .memory_mib = 1'024};
    for (int d = 0; d < 8; ++d) t.devices.push_back({.device = d, .percent = 100});
    r.tasks.push_back(t);
    snap.running.push_back(std::move(r));
  }
  for (int64_t i = 0; i < state.range(0); ++i) {
    snap.pending.push_back(icos::core::builders::MakeJob(i + 1, 1));
    snap.pending.back().preemptible = true;
  }
  auto sched = Scheduler::Create({});
  Decisions last;
  for (auto _ : state) {
    last = *sched->Schedule(snap);
    benchmark::DoNotOptimize(last);
  }
  state.counters["reservations"] = static_cast<double>(last.reservations.size());
  state.counters["waiting"] = static_cast<double>(last.waiting.size());
  state.counters["shape_cache_hits"] = static_cast<double>(last.stats.shape_cache_hits);
}
BENCHMARK(BM_QueueBehindAReservation)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

// A refresh as the controller makes one: 1,000 pending jobs, 8 samples, the
// forward passes cut to what 2 s buys at this size's pass time (measured
// here first, as the controller measures its last pass).
void BM_Forecast(benchmark::State& state) {
  Snapshot snap = SnapshotFor(static_cast<int32_t>(state.range(0)));
  snap.pending.resize(std::min<size_t>(snap.pending.size(), 1'000));
  auto sched = Scheduler::Create({});
  if (!sched.ok()) {
    state.SkipWithError(std::string(sched.status().message()).c_str());
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (!sched->Schedule(snap).ok()) return;
  const double pass_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  icos::core::ForecastOptions o;
  o.max_passes = static_cast<int32_t>(std::clamp(2'000.0 / std::max(0.05, pass_ms) / o.samples, 1.0, 5'000.0));
  size_t placed = 0;
  for (auto _ : state) {
    icos::learn::SeededNoise noise;
    auto f = icos::core::ForecastStarts(*sched, snap, {}, o, noise);
    if (!f.ok()) {
      state.SkipWithError(std::string(f.status().message()).c_str());
      return;
    }
    placed = static_cast<size_t>(std::count_if(f->begin(), f->end(), [](const auto& x) { return x.p50_ms >= 0; }));
  }
  state.counters["pass_ms"] = pass_ms;
  state.counters["max_passes"] = o.max_passes;
  state.counters["with_p50"] = static_cast<double>(placed);
}
BENCHMARK(BM_Forecast)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond)->Iterations(1);

// One job arrives while the cluster is busy: how long until the scheduler has
// an answer (bind or a reason), with the indexed state kept between arrivals.
void BM_PlaceOneNewJob(benchmark::State& state) {
  const int32_t nodes = static_cast<int32_t>(state.range(0));
  const Snapshot& snap = SnapshotFor(nodes);
  auto sched = Scheduler::Create({});
  icos::sim::WorkloadSpec w;
  w.seed = 99;
  w.jobs = 5'000;
  w.first_id = 5'000'000;
  w.submit_ms = snap.now_ms;
  const auto arrivals = icos::sim::MakeJobs(Spec(nodes), w);
  std::vector<double> micros;
  for (auto _ : state) {
    state.PauseTiming();
    auto session = SchedulingSession::Begin(*sched, snap);
    if (!session.ok()) {
      state.SkipWithError(std::string(session.status().message()).c_str());
      return;
    }
    state.ResumeTiming();
    for (const auto& job : arrivals) {
      const auto t0 = std::chrono::steady_clock::now();
      Decisions d = session->PlaceOne(job);
      const auto t1 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(d);
      micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
  }
  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) { return micros[static_cast<size_t>(p * static_cast<double>(micros.size() - 1))]; };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = micros.back();
  state.counters["arrivals"] = static_cast<double>(micros.size());
  state.counters["peak_rss_mib"] = icos::bench::PeakRssMib();
}
BENCHMARK(BM_PlaceOneNewJob)->Arg(10'000)->Unit(benchmark::kMillisecond)->Iterations(3);

// One gang of `tasks` replicas (1 device, 1 CPU each) arrives at an idle
// cluster of 10,000 nodes x 8 devices: what one scheduling pass costs for a
// job of that size (the API bounds tasks per job by this; docs/api.md).
void BM_LargeGang(benchmark::State& state) {
  const auto spec = Spec(10'000);
  Snapshot snap;
  snap.now_ms = 10'000'000;
  snap.nodes = icos::sim::MakeCluster(spec);
  icos::core::Job gang;
  gang.id = icos::JobId(1);
  gang.user = "alice";
  gang.queue = "default";
  gang.submit_ms = snap.now_ms;
  icos::core::TaskGroup g;
  g.name = "worker";
  g.replicas = static_cast<int32_t>(state.range(0));
  g.request.cpu_milli = 1'000;
  g.request.memory_mib = 1'024;
  g.request.devices = 1;
  gang.groups.push_back(g);
  snap.pending.push_back(gang);
  auto sched = Scheduler::Create({});
  size_t placed = 0;
  for (auto _ : state) {
    auto d = sched->Schedule(snap);
    if (!d.ok()) {
      state.SkipWithError(std::string(d.status().message()).c_str());
      return;
    }
    placed = d->binds.empty() ? 0 : d->binds[0].tasks.size();
    benchmark::DoNotOptimize(d);
  }
  state.counters["placed"] = static_cast<double>(placed);
  state.counters["peak_rss_mib"] = icos::bench::PeakRssMib();
}
BENCHMARK(BM_LargeGang)->Arg(1'000)->Arg(10'000)->Arg(50'000)->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
