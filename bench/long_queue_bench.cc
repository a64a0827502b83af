// What a long queue costs the controller and its API: `nodes` nodes x 8
// devices, every device held by one of `running` one-device jobs, and
// `pending` more jobs waiting (none fits), all through the whole controller
// and SQLite. Each iteration is two scheduling passes over all of them while
// another thread reads the API back to back (GetJob of a waiting job, then
// the queues): in-process during the first, over HTTP (the controller's own
// server, keep-alive) during the second. Figures: the passes' wall time,
// the reads' p50 / p99 / max, the controller's heap per node and per job,
// and how long a restarted controller takes to load them all.
//
// Run: build/release/bench/icos_long_queue_bench
// (setup: about a minute and 2-3 GiB at the default size)
#include <benchmark/benchmark.h>
#include <httplib.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "controller/controller.h"
#include "controller/http_server.h"
#include "process_memory.h"
#include "store/sqlite_state_store.h"

namespace {

using icos::controller::Controller;
using icos::controller::Principal;
using icos::controller::Role;

// The heap in use (glibc's mallinfo2: live allocations, not what a pass's
// freed scratch space still holds resident).
double HeapMib() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd) / (1024.0 * 1024.0);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// One job array of `n` one-device elements (the array limit is 100,000);
// its first element's id.
absl::StatusOr<int64_t> SubmitArray(Controller& c, const Principal& who, int n) {
  return c.Submit(who, absl::StrCat("array: 0-", n - 1,
                                    "\ntasks:\n  - command: [\"true\"]\n"
                                    "    resources: {cpu: 1, memory: 1Gi, devices: 1}\n"));
}

void BM_PassOverLongQueue(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const int running = nodes * 8;
  const int pending = static_cast<int>(state.range(1));
  char dir[] = "/tmp/icos-long-queue-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    state.SkipWithError("mkdtemp");
    return;
  }
  const std::string path = absl::StrCat(dir, "/icos.db");
  auto store = icos::store::SqliteStateStore::Open({.path = path});
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  icos::controller::ControllerOptions options;
  options.learning.enabled = false;
  options.forecast_interval_ms = 0;
  auto c = Controller::Create(options, store->get(), icos::RealClock::Default());
  if (!c.ok()) {
    state.SkipWithError(std::string(c.status().message()).c_str());
    return;
  }
  const Principal admin{"admin", Role::kAdmin, "admin"};
  auto fail = [&](const absl::Status& st) { state.SkipWithError(std::string(st.message()).c_str()); };
  const double heap_empty = HeapMib();
  for (int n = 0; n < nodes; ++n) {
    icos::core::Node node;
    node.name = absl::StrCat("n", n);
    node.cpu_milli = 64'000;
    node.memory_mib = 512 * 1024;
    for (int d = 0; d < 8; ++d) node.devices.push_back({"nvidia", "H100", 81'920});
    auto r = (*c)->RegisterNode(admin, node, absl::StrCat("10.", n / 62'500, ".", n / 250 % 250, ".", n % 250),
                                "http://x", "k");
    if (!r.ok()) return fail(r.status());
  }
  const double heap_nodes = HeapMib();
  for (int left = running; left > 0; left -= std::min(left, 100'000)) {
    if (auto id = SubmitArray(**c, admin, std::min(left, 100'000)); !id.ok()) return fail(id.status());
  }
  if (absl::Status st = (*c)->RunPass(); !st.ok()) return fail(st);  // binds every device
  const double heap_running = HeapMib();
  int64_t waiting = 0;
  for (int left = pending; left > 0; left -= std::min(left, 100'000)) {
    auto id = SubmitArray(**c, admin, std::min(left, 100'000));
    if (!id.ok()) return fail(id.status());
    waiting = *id;
  }
  const double heap_pending = HeapMib();
  if (absl::Status st = (*c)->RunPass(); !st.ok()) return fail(st);  // a first pass over them (warm)

  // The API over HTTP too, as clients reach it (the server's own pools and
  // queues included).
  icos::controller::HttpServerOptions http;
  http.port = 0;
  icos::controller::HttpServer server(c->get(), http);
  if (absl::Status st = server.Start(); !st.ok()) return fail(st);
  auto token = (*c)->CreateToken(admin, Role::kAdmin, "admin", "bench", {});
  if (!token.ok()) return fail(token.status());
  const httplib::Headers auth = {{"Authorization", "Bearer " + *token}};
  const std::string job_path = absl::StrCat("/api/v1/jobs/", waiting);

  // One pass while `read` runs back to back on another thread; its
  // latencies join `into`.
  std::vector<double> pass_ms, read_ms, http_ms;
  auto pass_while = [&](const std::function<bool()>& read, std::vector<double>& into) -> absl::Status {
    std::atomic<bool> done{false};
    std::vector<double> reads;
    bool read_failed = false;
    std::thread reader([&] {
      while (!done && !read_failed) {
        const auto t0 = std::chrono::steady_clock::now();
        read_failed = !read();
        reads.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
    });
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status pass = (*c)->RunPass();
    pass_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    done = true;
    reader.join();
    if (read_failed) return absl::InternalError("an API read failed");
    into.insert(into.end(), reads.begin(), reads.end());
    return pass;
  };
  httplib::Client client("127.0.0.1", server.port());
  client.set_keep_alive(true);
  for (auto _ : state) {
    absl::Status st =
        pass_while([&] { return (*c)->GetJob(admin, waiting).ok() && (*c)->ListQueues(admin).ok(); }, read_ms);
    if (!st.ok()) return fail(st);
    st = pass_while(
        [&] {
          auto job = client.Get(job_path, auth);
          auto queues = client.Get("/api/v1/queues", auth);
          return job && job->status == 200 && queues && queues->status == 200;
        },
        http_ms);
    if (!st.ok()) return fail(st);
  }
  server.Stop();
  // A controller restart over the same store: loading every open job.
  c->reset();
  const auto load_start = std::chrono::steady_clock::now();
  c = Controller::Create(options, store->get(), icos::RealClock::Default());
  if (!c.ok()) return fail(c.status());
  state.counters["restart_load_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  state.counters["pass_ms_p50"] = Percentile(pass_ms, 0.5);
  state.counters["api_reads"] = static_cast<double>(read_ms.size());
  state.counters["api_p50_ms"] = Percentile(read_ms, 0.5);
  state.counters["api_p99_ms"] = Percentile(read_ms, 0.99);
  state.counters["api_max_ms"] = Percentile(read_ms, 1.0);
  state.counters["http_reads"] = static_cast<double>(http_ms.size());
  state.counters["http_p50_ms"] = Percentile(http_ms, 0.5);
  state.counters["http_p99_ms"] = Percentile(http_ms, 0.99);
  state.counters["http_max_ms"] = Percentile(http_ms, 1.0);
  state.counters["heap_kib_per_node"] = (heap_nodes - heap_empty) * 1024 / nodes;
  state.counters["heap_kib_per_running_job"] = (heap_running - heap_nodes) * 1024 / running;
  state.counters["heap_kib_per_pending_job"] = (heap_pending - heap_running) * 1024 / pending;
  state.counters["rss_mib"] = icos::bench::RssMib();
  c->reset();
  store->reset();
  for (const char* suffix : {"", "-wal", "-shm", ".leader"}) std::remove(absl::StrCat(path, suffix).c_str());
  rmdir(dir);
}
BENCHMARK(BM_PassOverLongQueue)
    ->Args({1'000, 10'000})
    ->Args({10'000, 100'000})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
