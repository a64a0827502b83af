// Prometheus metrics without a client library: Debian 12 packages none for C++
// (no libprometheus-cpp-dev), and the text exposition format 0.0.4 is small.
//
//   ExpositionWriter  formats families and samples (escaping, +Inf, NaN).
//   CounterFamily     monotonically increasing values by label values.
//   HistogramFamily   fixed buckets by label values; rendered cumulatively
//                     with +Inf, _sum and _count as the format requires.
//
// Names follow Prometheus' conventions (docs/metrics.md lists every one):
// prefix icos_, base units (seconds, bytes, ratios 0..1), _total on counters.
//
// Thread-safety: CounterFamily and HistogramFamily are thread-safe (one mutex
// each; an increment is a map lookup, far below an HTTP request or a pass).
// ExpositionWriter is not: one per scrape.
#ifndef ICOS_CONTROLLER_METRICS_H_
#define ICOS_CONTROLLER_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace icos::controller::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// The exposition's Content-Type.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// A label value with \, " and newline escaped as the format demands.
std::string EscapeLabelValue(const std::string& value);
// A HELP text with \ and newline escaped.
std::string EscapeHelp(const std::string& help);
// A sample value: shortest round-trip decimal, "+Inf", "-Inf" or "NaN".
std::string FormatValue(double value);

class ExpositionWriter {
 public:
  // Starts a family: # HELP and # TYPE lines. type: counter, gauge, histogram.
  // REQUIRES: each family name at most once per exposition.
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // One sample line; `name` may carry a suffix of the family (_bucket, _sum, _count).
  void Sample(const std::string& name, const Labels& labels, double value);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

class CounterFamily {
 public:
  // label_names: the labels every sample carries, in order.
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  // Adds `by` (>= 0) to the counter of `label_values` (same order as label_names).
  void Inc(const std::vector<std::string>& label_values, double by = 1);
  double Value(const std::vector<std::string>& label_values) const;
  void Render(ExpositionWriter& w) const;

 private:
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, double> values_;
};

class HistogramFamily {
 public:
  // bounds: upper bounds of the finite buckets, strictly increasing; +Inf is implied.
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds);
  void Observe(const std::vector<std::string>& label_values, double value);
  // Observations so far for these labels (tests).
  uint64_t Count(const std::vector<std::string>& label_values) const;
  void Render(ExpositionWriter& w) const;

  // Latency buckets in seconds, 0.5 ms to 60 s.
  static std::vector<double> LatencyBounds();

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // per finite bound, not cumulative; +Inf is count
    uint64_t count = 0;
    double sum = 0;
  };
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, Series> series_;
};

}  // namespace icos::controller::metrics

#endif  // ICOS_CONTROLLER_METRICS_H_
