// What the cluster engine's side of a scheduling pass costs on a full cluster
// with a queue: Engine::BeginPass (the snapshot the scheduler decides on;
// the controller lets API readers run beside it, not writers) with
// `nodes` x 8 devices, every device held by a one-device running job, and
// `pending` one-device jobs waiting. The scheduler's own time is
// icos_scheduler_bench's.
//
// BM_SetWaitingReasons: what telling every waiting job why costs after it.
//
// Run: build/release/bench/icos_engine_pass_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/scheduler.h"
#include "engine/engine.h"

namespace {

using icos::engine::Engine;
using icos::engine::JobEntry;

JobEntry OneDeviceJob(int64_t id) {
  static const icos::api::JobSpec spec = *icos::api::ParseJobSpec(
      "name: train\ntasks: [{command: [python3, train.py], resources: {cpu: 1, memory: 1Gi, devices: 1}}]\n");
  JobEntry j;
  j.spec = spec;
  j.rec.id = id;
  j.rec.user = "alice";
  j.rec.state = icos::store::JobState::kPending;
  j.rec.submit_ms = id;
  j.core = icos::api::ToCoreJob(j.spec, icos::JobId(id), "alice", id);
  return j;
}

// An engine whose `nodes` x 8 devices all run a job, with `pending` more waiting.
void Fill(Engine& engine, int nodes, int pending) {
  for (int n = 0; n < nodes; ++n) {
    icos::engine::NodeEntry e;
    e.rec.name = absl::StrCat("n", n);
    e.rec.state = "Ready";
    e.node.name = e.rec.name;
    e.node.cpu_milli = 64'000;
    e.node.memory_mib = 512 * 1024;
    for (int d = 0; d < 8; ++d) e.node.devices.push_back({"nvidia", "H100", 81'920});
    engine.nodes()[e.rec.name] = std::move(e);
  }
  int64_t id = 1;
  for (int i = 0; i < nodes * 8; ++i) engine.AddJob(OneDeviceJob(id++));
  const icos::core::Scheduler scheduler = *icos::core::Scheduler::Create({});
  icos::engine::PassInput in = engine.BeginPass(1'000);
  auto decisions = scheduler.Schedule(in.snap);
  icos::engine::BindWork work = engine.PrepareBinds(in, *decisions);
  engine.MakeTasks(in, work);
  engine.Adopt(std::move(engine.ApplyPass(in, *decisions, std::move(work), 1'000).change));
  for (int i = 0; i < pending; ++i) engine.AddJob(OneDeviceJob(id++));
}

void BM_BeginPass(benchmark::State& state) {
  Engine engine({});
  Fill(engine, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  int64_t now = 2'000;
  for (auto _ : state) {
    auto in = std::make_unique<icos::engine::PassInput>(engine.BeginPass(now += 1'000));
    benchmark::DoNotOptimize(in);
    // Handed back when the pass is over, as the controller does.
    state.PauseTiming();
    engine.RecyclePass(std::move(*in));
    in.reset();
    state.ResumeTiming();
  }
  state.counters["running"] = static_cast<double>(state.range(0) * 8);
  state.counters["pending"] = static_cast<double>(state.range(1));
}
BENCHMARK(BM_BeginPass)
    ->Args({125, 1'000})
    ->Args({1'250, 10'000})
    ->Args({10'000, 100'000})
    ->Unit(benchmark::kMillisecond);

// What copying a pass's snapshot costs (the part of BeginPass that is a
// copy of every open job).
void BM_CopyJobs(benchmark::State& state) {
  Engine engine({});
  Fill(engine, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  icos::engine::PassInput in = engine.BeginPass(2'000);
  for (auto _ : state) {
    icos::core::Snapshot copy = in.snap;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_CopyJobs)->Args({1'250, 10'000})->Unit(benchmark::kMillisecond);

// Engine::WaitingReasons (readers run beside it) and SetReasons (under the
// controller's lock) after a pass on the full cluster: every pending job
// gets its reason, memory only.
void BM_SetWaitingReasons(benchmark::State& state) {
  Engine engine({});
  Fill(engine, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  icos::engine::PassInput in = engine.BeginPass(2'000);
  const icos::core::Scheduler scheduler = *icos::core::Scheduler::Create({});
  const auto decisions = scheduler.Schedule(in.snap);
  int64_t now = 2'000;
  for (auto _ : state) engine.SetReasons(engine.WaitingReasons(*decisions, now += 1'000));
  state.counters["waiting"] = static_cast<double>(decisions->waiting.size());
}
BENCHMARK(BM_SetWaitingReasons)->Args({1'250, 10'000})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
