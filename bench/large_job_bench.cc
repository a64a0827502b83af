// What the largest job a cluster accepts costs its controller: one PyTorch
// gang of `tasks` replicas (1 device each) bound on 1,250 nodes x 8 devices
// through the whole controller (spec, scheduling pass, rank setup, one
// durable commit to SQLite), while another thread times API reads (GetJob
// every millisecond). Figures: the pass's wall time, the longest API read
// meanwhile (how long the API stalled), and the controller's memory growth.
//
// Run: build/release/bench/icos_large_job_bench
// api::SpecLimits::max_job_tasks (docs/api.md, Limits) is set by what it shows.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "controller/controller.h"
#include "process_memory.h"
#include "store/sqlite_state_store.h"

namespace {

using icos::controller::Controller;
using icos::controller::Principal;
using icos::controller::Role;

void BM_BindLargeGang(benchmark::State& state) {
  const int tasks = static_cast<int>(state.range(0));
  char dir[] = "/tmp/icos-large-job-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    state.SkipWithError("mkdtemp");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = absl::StrCat(dir, "/icos.db");
    std::remove(path.c_str());
    auto store = icos::store::SqliteStateStore::Open({.path = path});
    if (!store.ok()) {
      state.SkipWithError(std::string(store.status().message()).c_str());
      return;
    }
    icos::controller::ControllerOptions options;
    options.learning.enabled = false;
    options.spec_limits.max_job_tasks = 100'000;  // measured past the default limit too
    auto c = Controller::Create(options, store->get(), icos::RealClock::Default());
    if (!c.ok()) {
      state.SkipWithError(std::string(c.status().message()).c_str());
      return;
    }
    const Principal admin{"admin", Role::kAdmin, "admin"};
    for (int n = 0; n < 1'250; ++n) {
      icos::core::Node node;
      node.name = absl::StrCat("n", n);
      node.cpu_milli = 64'000;
      node.memory_mib = 512 * 1024;
      for (int d = 0; d < 8; ++d) node.devices.push_back({"nvidia", "H100", 81'920});
      (void)(*c)->RegisterNode(admin, node, absl::StrCat("10.0.", n / 250, ".", n % 250), "http://x", "k");
    }
    const double rss_before = icos::bench::RssMib();
    auto id = (*c)->Submit(admin, absl::StrCat("framework: pytorch\ntasks:\n  - replicas: ", tasks,
                                               "\n    command: [python3, train.py]\n"
                                               "    resources: {cpu: 1, memory: 1Gi, devices: 1}\n"));
    if (!id.ok()) {
      state.SkipWithError(std::string(id.status().message()).c_str());
      return;
    }
    std::atomic<bool> done{false};
    double worst_read_ms = 0;
    std::thread reader([&] {
      while (!done) {
        const auto t0 = std::chrono::steady_clock::now();
        (void)(*c)->ListNodes(admin);
        worst_read_ms = std::max(
            worst_read_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status pass = (*c)->RunPass();
    const double pass_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    state.PauseTiming();
    done = true;
    reader.join();
    if (!pass.ok()) {
      state.SkipWithError(std::string(pass.message()).c_str());
      return;
    }
    auto job = (*c)->GetJob(admin, *id);
    state.counters["tasks_bound"] = job.ok() ? static_cast<double>(job->tasks.size()) : 0;
    state.counters["pass_ms"] = pass_ms;
    state.counters["worst_api_read_ms"] = worst_read_ms;
    state.counters["rss_growth_mib"] = icos::bench::RssMib() - rss_before;
    state.ResumeTiming();
  }
  std::remove(absl::StrCat(dir, "/icos.db").c_str());
  std::remove(absl::StrCat(dir, "/icos.db-wal").c_str());
  std::remove(absl::StrCat(dir, "/icos.db-shm").c_str());
  std::remove(absl::StrCat(dir, "/icos.db.leader").c_str());
  rmdir(dir);
}
BENCHMARK(BM_BindLargeGang)->Arg(1'000)->Arg(4'096)->Arg(10'000)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
