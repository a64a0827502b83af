// Cost of one Prometheus scrape of the controller: CollectMetrics (state
// under the controller's lock) and RenderMetrics (text), by cluster size.
// Each node has 8 devices, so 10,000 nodes make 80,000 device series per
// metric family, the data-centre scale of ../shared/DESIGN.md.
#include <benchmark/benchmark.h>

#include <memory>

#include "controller/controller.h"
#include "store/sqlite_state_store.h"

namespace {

using icos::controller::Controller;

struct Cluster {
  std::unique_ptr<icos::store::SqliteStateStore> store;
  std::unique_ptr<Controller> controller;
  icos::FakeClock clock;
};

std::unique_ptr<Cluster> MakeCluster(int nodes) {
  auto c = std::make_unique<Cluster>();
  c->store = *icos::store::SqliteStateStore::Open({.path = ":memory:"});
  c->controller = *Controller::Create({}, c->store.get(), &c->clock);
  icos::controller::Principal admin{"bench", icos::controller::Role::kAdmin, "admin"};
  for (int i = 0; i < nodes; ++i) {
    icos::core::Node n;
    n.name = "node-" + std::to_string(i);
    n.cpu_milli = 128'000;
    n.memory_mib = 1 << 20;
    for (int d = 0; d < 8; ++d) {
      icos::core::Device dev;
      dev.vendor = i % 2 == 0 ? "nvidia" : "ascend";
      dev.model = i % 2 == 0 ? "H100" : "910B";
      dev.memory_mib = 81'920;
      n.devices.push_back(dev);
    }
    (void)c->controller->RegisterNode(admin, n, "10.0.0.1", "http://10.0.0.1:1", "k");
  }
  return c;
}

void BM_Scrape(benchmark::State& state) {
  auto c = MakeCluster(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    auto m = c->controller->CollectMetrics();
    icos::controller::metrics::ExpositionWriter w;
    icos::controller::RenderMetrics(*m, c->controller->counters(), w);
    bytes = w.text().size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Scrape)->Arg(100)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
