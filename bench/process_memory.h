// What this process holds in memory, for benchmarks' counters (Linux).
#ifndef ICOS_BENCH_PROCESS_MEMORY_H_
#define ICOS_BENCH_PROCESS_MEMORY_H_

#include <fstream>
#include <string>

namespace icos::bench {

// A field of /proc/self/status in MiB: "VmRSS:" (resident now) or "VmHWM:"
// (the peak); 0 when absent.
inline double StatusMib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == field) {
      double kib = 0;
      status >> kib;
      return kib / 1024.0;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

inline double RssMib() { return StatusMib("VmRSS:"); }
inline double PeakRssMib() { return StatusMib("VmHWM:"); }

}  // namespace icos::bench

#endif  // ICOS_BENCH_PROCESS_MEMORY_H_
