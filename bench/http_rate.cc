// Open-loop HTTP load at a fixed rate, for bench/serve.sh: GETs of one URL
// path on HOST:PORT, spread over C kept-alive connections, each request
// sent at its scheduled time (rate / C per connection). Latency counts from
// the scheduled time, so a slow answer that delays the next send is charged
// to that one too (no coordinated omission).
//
//   icos_http_rate HOST PORT PATH RATE SECONDS [CONNECTIONS]
// prints one line:
//   requests=N ok=K failed=F p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. first_error=...
// ok: 2xx answers; failed: anything else, or no answer.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s HOST PORT PATH RATE SECONDS [CONNECTIONS]\n", argv[0]);
    return 2;
  }
  const std::string host = argv[1], path = argv[3];
  const int port = std::atoi(argv[2]);
  const double rate = std::atof(argv[4]), seconds = std::atof(argv[5]);
  const int connections = argc > 6 ? std::atoi(argv[6]) : 8;
  if (port <= 0 || rate <= 0 || seconds <= 0 || connections <= 0) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto interval = std::chrono::duration<double>(connections / rate);
  const int per_connection = static_cast<int>(rate * seconds / connections);
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client(host, port);
      client.set_keep_alive(true);
      client.set_read_timeout(std::chrono::seconds(10));
      std::vector<double> mine;
      mine.reserve(per_connection);
      // Connections start staggered across one interval.
      const auto offset =
          std::chrono::duration_cast<Clock::duration>(interval * (static_cast<double>(c) / connections));
      for (int i = 0; i < per_connection; ++i) {
        const auto due = start + offset + std::chrono::duration_cast<Clock::duration>(interval * i);
        std::this_thread::sleep_until(due);
        auto r = client.Get(path);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
        mine.push_back(ms);
        if (r && r->status / 100 == 2) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) {
            first_error = r ? "status " + std::to_string(r->status) : httplib::to_string(r.error());
          }
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1, static_cast<size_t>(p * latencies_ms.size()))];
  };
  std::printf("requests=%zu ok=%d failed=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f first_error=%s\n",
              latencies_ms.size(), ok.load(), failed.load(), pct(0.5), pct(0.9), pct(0.99),
              latencies_ms.empty() ? 0.0 : latencies_ms.back(), first_error.empty() ? "-" : first_error.c_str());
  return failed > 0 ? 1 : 0;
}
