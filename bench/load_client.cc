// Load generator for the control-plane benchmarks (bench/*.sh). Talks to a
// running icos server over its REST API, like any client. Every mode takes
// --ca-cert FILE for an https:// server (as icos does).
//
//   icos_load submit  --server URL --token T --spec FILE --count N --threads K
//       N durable submissions from K threads; prints "submissions=N seconds=S per_s=R"
//   icos_load wait    --server URL --token T --count N [--timeout S]
//       waits until N jobs have ended; prints "ended=N seconds=S" (since the call)
//   icos_load latency --server URL --token T --spec FILE --count N
//       submits N jobs one at a time on an idle cluster and prints p50/p99 of
//       submit -> running (the task's start as its agent reported it)
//   icos_load agents  --server URL --token T --agent-token A --count N --timeout S [--spec FILE]
//       N fake agents (registered nodes with no devices, each watching its
//       assignments and heartbeating at the pace the controller asks, as icos agent does)
//       for S seconds, while one client times GET /api/v1/jobs?limit=1 every
//       20 ms (with --spec, every other call submits that job instead);
//       prints the API's p50/p99/max latency (corrected for coordinated
//       omission), the watches answered, and the failed calls of the agents
//       and the timed client together (errors) and of the latter (api_errors),
//       and the longest any agent went without a heartbeat taken (silent_nodes:
//       agents that went 30 s, after which the controller declares a node lost)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "protocol/http_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Jobs that ended, from the controller's icos_jobs{state} gauge: a scrape
// costs the controller one count by state however many jobs there are
// (listing them, as this once did, cost more than the jobs themselves).
int64_t CountEnded(icos::ApiClient& api) {
  auto r = api.Request("GET", "/metrics");
  if (!r.ok() || r->status != 200) return 0;
  int64_t ended = 0;
  for (const char* state : {"Succeeded", "Failed", "Cancelled"}) {
    const std::string key = std::string("\nicos_jobs{state=\"") + state + "\"} ";
    const size_t at = r->body.find(key);
    if (at != std::string::npos) ended += std::atoll(r->body.c_str() + at + key.size());
  }
  return ended;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"icos control-plane load generator"};
  std::string server, token, spec_file;
  int count = 100, threads = 4;
  double timeout = 600;
  app.add_option("--server", server)->required();
  std::string ca_cert;
  app.add_option("--ca-cert", ca_cert, "CA of an https:// server (as icos --ca-cert)");
  app.add_option("--token", token)->required();
  app.add_option("--spec", spec_file);
  app.add_option("--count", count);
  app.add_option("--threads", threads);
  app.add_option("--timeout", timeout);
  std::string agent_token;
  app.add_option("--agent-token", agent_token);
  std::string mode;
  app.add_option("mode", mode)->required()->check(CLI::IsMember({"submit", "wait", "latency", "agents"}));
  CLI11_PARSE(app, argc, argv);

  std::string spec;
  if (!spec_file.empty()) {
    std::ifstream f(spec_file);
    std::stringstream s;
    s << f.rdbuf();
    spec = s.str();
  }

  if (mode == "submit") {
    std::atomic<int> next{0}, failed{0};
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        icos::ApiClient api(server, token, icos::ApiClientOptions{.ca_cert_file = ca_cert});
        while (next.fetch_add(1) < count) {
          auto r = api.Json("POST", "/api/v1/jobs", spec, "application/yaml");
          if (!r.ok()) {
            if (failed++ == 0) std::cerr << "submit failed: " << r.status().message() << "\n";
          }
        }
      });
    }
    for (auto& t : pool) t.join();
    const double s = Seconds(start);
    std::printf("submissions=%d failed=%d seconds=%.3f per_s=%.0f\n", count, failed.load(), s, count / s);
    return failed == 0 ? 0 : 1;
  }
  if (mode == "agents") {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> watches{0}, errors{0}, registered{0}, api_errors{0}, join_retries{0};
    std::mutex gap_mu;
    double max_beat_gap_s = 0;  // the longest any agent went without a heartbeat taken
    int64_t silent_nodes = 0;   // agents that went 30 s or more (lost, to the controller)
    const auto launched = Clock::now();
    std::vector<std::thread> agents;
    for (int a = 0; a < count; ++a) {
      agents.emplace_back([&, a] {
        const std::string name = "load-agent-" + std::to_string(a);
        // As icos agent does: no keep-alive (an idle connection holds a server thread).
        const icos::ApiClientOptions agent_options{.timeout_ms = 30'000, .keep_alive = false, .ca_cert_file = ca_cert};
        icos::ApiClient join(server, agent_token, agent_options);
        json node = {{"name", name}, {"cpu_milli", 1000}, {"memory_mib", 1024}, {"devices", json::array()}};
        const std::string body = json{
            {"node", node},
            {"address", "127.0.0.1"},
            {"agent_url", "http://127.0.0.1:9"},
            {"log_key", "k"}}.dump();
        auto reg = join.Json("POST", "/api/v1/nodes/register", body);
        // A server that sheds a burst of joins (503, "retry after 1 s") is
        // asked again, spread over a second, as icos agent does.
        std::mt19937 jitter(static_cast<uint32_t>(a));
        while (!reg.ok() && absl::IsUnavailable(reg.status()) && !stop) {
          ++join_retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(500 + jitter() % 1000));
          reg = join.Json("POST", "/api/v1/nodes/register", body);
        }
        if (!reg.ok()) {
          if (errors++ == 0) std::cerr << "registration failed: " << reg.status().message() << "\n";
          return;
        }
        ++registered;
        // Every later call with the node's own credential, as icos agent does
        // (the join token may only register).
        icos::ApiClient api(server, reg->value("credential", agent_token), agent_options);
        uint64_t version = 0;
        auto last_beat = Clock::now();
        auto last_ok = Clock::now();  // the last heartbeat the controller took
        double max_gap = 0;
        int64_t beat_ms = 1'000;  // the controller slows it in a large cluster
        while (!stop) {
          auto r = api.Json("GET", "/api/v1/nodes/" + name + "/assignments?since=" + std::to_string(version) +
                                       "&wait_ms=" + (version == 0 ? "0" : "2000"));
          if (!r.ok()) {
            if (errors++ == 0) std::cerr << "watch failed: " << r.status().message() << "\n";
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
          } else {
            ++watches;
            version = (*r)["version"].get<uint64_t>();
            // A busy server may ask agents to come back later instead of holding a thread.
            if (const int64_t retry = r->value("retry_ms", int64_t{0}); retry > 0) {
              std::this_thread::sleep_for(std::chrono::milliseconds(retry));
            }
          }
          // Heartbeats go on whatever the watch does (icos agent beats on a thread of its own).
          if (Seconds(last_beat) * 1000 >= beat_ms) {
            auto beat = api.Json("POST", "/api/v1/nodes/" + name + "/heartbeat", R"({"tasks": []})");
            if (!beat.ok() && errors++ == 0) std::cerr << "heartbeat failed: " << beat.status().message() << "\n";
            if (beat.ok()) {
              beat_ms = std::max<int64_t>(1'000, beat->value("heartbeat_ms", int64_t{1'000}));
              max_gap = std::max(max_gap, Seconds(last_ok));
              last_ok = Clock::now();
            }
            last_beat = Clock::now();
          }
        }
        max_gap = std::max(max_gap, Seconds(last_ok));
        std::lock_guard<std::mutex> lock(gap_mu);
        max_beat_gap_s = std::max(max_beat_gap_s, max_gap);
        // The controller declares a node lost after 30 s without a heartbeat.
        if (max_gap >= 30) ++silent_nodes;
      });
    }
    // Measure the steady state: once every agent has joined (all at once, as
    // after a cluster-wide restart: that burst is reported on its own) and 2 s more.
    while (registered + errors < count && Seconds(launched) < 120) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const double register_s = Seconds(launched);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    icos::ApiClient api(server, token, icos::ApiClientOptions{.timeout_ms = 60'000, .ca_cert_file = ca_cert});
    std::vector<double> ms;
    size_t calls = 0;
    const auto start = Clock::now();
    while (Seconds(start) < timeout) {
      const auto t = Clock::now();
      const bool submit = !spec.empty() && calls % 2 == 1;
      ++calls;
      auto r =
          submit ? api.Json("POST", "/api/v1/jobs", spec, "application/yaml") : api.Json("GET", "/api/v1/jobs?limit=1");
      if (!r.ok()) {
        if (api_errors++ == 0) std::cerr << "API call failed: " << r.status().message() << "\n";
        ++errors;
      }
      // Corrected for coordinated omission (as wrk2 and HdrHistogram do): a
      // call that took T ms stands also for the calls a client on this 20 ms
      // schedule would have made meanwhile, which would have waited T-20,
      // T-40, ... ms. Otherwise a server that stalls for 40 s shows one slow
      // call among fast ones and a fine p99.
      const double took = Seconds(t) * 1000;
      for (double m = took; m > 0; m -= 20) ms.push_back(m);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop = true;
    for (auto& t : agents) t.join();
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double p) { return ms[static_cast<size_t>(p * static_cast<double>(ms.size() - 1))]; };
    std::printf(
        "agents=%d all_joined_s=%.2f join_retries=%lld api_requests=%zu api_p50_ms=%.1f api_p99_ms=%.1f "
        "api_max_ms=%.1f watches=%lld errors=%lld api_errors=%lld max_beat_gap_s=%.1f silent_nodes=%lld\n",
        count, register_s, static_cast<long long>(join_retries.load()), calls, pct(0.5), pct(0.99), ms.back(),
        static_cast<long long>(watches.load()), static_cast<long long>(errors.load()),
        static_cast<long long>(api_errors.load()), max_beat_gap_s, static_cast<long long>(silent_nodes));
    return errors == 0 ? 0 : 1;
  }
  if (mode == "wait") {
    icos::ApiClient api(server, token, icos::ApiClientOptions{.ca_cert_file = ca_cert});
    const auto start = Clock::now();
    int64_t ended = 0;
    while ((ended = CountEnded(api)) < count) {
      if (Seconds(start) > timeout) {
        std::printf("ended=%lld of %d: timed out after %.0f s\n", static_cast<long long>(ended), count, timeout);
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::printf("ended=%lld seconds=%.3f\n", static_cast<long long>(ended), Seconds(start));
    return 0;
  }
  // latency
  icos::ApiClient api(server, token, icos::ApiClientOptions{.ca_cert_file = ca_cert});
  std::vector<double> ms;
  for (int i = 0; i < count; ++i) {
    auto r = api.Json("POST", "/api/v1/jobs", spec, "application/yaml");
    if (!r.ok()) {
      std::cerr << r.status().message() << "\n";
      return 1;
    }
    const int64_t id = (*r)["id"].get<int64_t>();
    const auto start = Clock::now();
    while (true) {
      auto j = api.Json("GET", "/api/v1/jobs/" + std::to_string(id));
      if (!j.ok()) return 1;
      const std::string state = (*j)["state"].get<std::string>();
      const auto& tasks = (*j)["tasks"];
      if (!tasks.empty() && tasks[0]["start_ms"].get<int64_t>() > 0 && (state == "Succeeded" || state == "Running")) {
        ms.push_back(static_cast<double>(tasks[0]["start_ms"].get<int64_t>() - (*j)["submit_ms"].get<int64_t>()));
        break;
      }
      if (state == "Failed" || state == "Cancelled" || Seconds(start) > 30) {
        std::cerr << "job " << id << " " << state << "\n";
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // Let it finish so the next one starts on an idle node.
    while (true) {
      auto j = api.Json("GET", "/api/v1/jobs/" + std::to_string(id));
      if (!j.ok() || (*j)["state"].get<std::string>() != "Running") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[static_cast<size_t>(p * static_cast<double>(ms.size() - 1))]; };
  std::printf("latency_jobs=%zu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", ms.size(), pct(0.5), pct(0.99), ms.back());
  return 0;
}
