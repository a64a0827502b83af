// Time as an injected dependency (Firmament's TimeInterface, LevelDB's Env):
// components take a Clock* so tests and the simulator control time and never sleep.
#ifndef ICOS_COMMON_CLOCK_H_
#define ICOS_COMMON_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace icos {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (wall clock: timestamps users see).
  virtual int64_t NowMs() const = 0;
};

// The real wall clock. Thread-safe.
class RealClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static RealClock* Default() {
    static RealClock clock;
    return &clock;
  }
};

// A clock tests move by hand. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMs() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace icos

#endif  // ICOS_COMMON_CLOCK_H_
