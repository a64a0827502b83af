#include "controller/metrics.h"

#include <charconv>
#include <cmath>

namespace icos::controller::metrics {
namespace {

Labels Zip(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  Labels out;
  for (size_t i = 0; i < names.size(); ++i) out.emplace_back(names[i], i < values.size() ? values[i] : "");
  return out;
}

}  // namespace

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Shortest text that reads back as the same double: 0.1, not 0.10000000000000001.
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

void ExpositionWriter::Family(const std::string& name, const std::string& type, const std::string& help) {
  text_ += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  text_ += "# TYPE " + name + " " + type + "\n";
}

void ExpositionWriter::Sample(const std::string& name, const Labels& labels, double value) {
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
    }
    text_ += '}';
  }
  text_ += ' ' + FormatValue(value) + '\n';
}

CounterFamily::CounterFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void CounterFamily::Inc(const std::vector<std::string>& label_values, double by) {
  if (!(by >= 0)) return;  // a counter never goes down (NaN is dropped too)
  std::lock_guard<std::mutex> lock(mu_);
  values_[label_values] += by;
}

double CounterFamily::Value(const std::vector<std::string>& label_values) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(label_values);
  return it == values_.end() ? 0 : it->second;
}

void CounterFamily::Render(ExpositionWriter& w) const {
  w.Family(name_, "counter", help_);
  std::lock_guard<std::mutex> lock(mu_);
  // An unlabelled counter is shown at 0 before its first event, so rate() has a start.
  if (values_.empty() && label_names_.empty()) w.Sample(name_, {}, 0);
  for (const auto& [values, v] : values_) w.Sample(name_, Zip(label_names_, values), v);
}

HistogramFamily::HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                                 std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

std::vector<double> HistogramFamily::LatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void HistogramFamily::Observe(const std::vector<std::string>& label_values, double value) {
  if (std::isnan(value)) return;
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series_[label_values];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size(), 0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {  // buckets are upper-inclusive ("le")
      ++s.buckets[i];
      break;
    }
  }
  ++s.count;
  s.sum += value;
}

uint64_t HistogramFamily::Count(const std::vector<std::string>& label_values) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(label_values);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::Render(ExpositionWriter& w) const {
  w.Family(name_, "histogram", help_);
  std::lock_guard<std::mutex> lock(mu_);
  auto render = [&](const std::vector<std::string>& values, const Series& s) {
    Labels labels = Zip(label_names_, values);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets.empty() ? 0 : s.buckets[i];
      Labels with_le = labels;
      with_le.emplace_back("le", FormatValue(bounds_[i]));
      w.Sample(name_ + "_bucket", with_le, static_cast<double>(cumulative));
    }
    Labels inf = labels;
    inf.emplace_back("le", "+Inf");
    w.Sample(name_ + "_bucket", inf, static_cast<double>(s.count));
    w.Sample(name_ + "_sum", labels, s.sum);
    w.Sample(name_ + "_count", labels, static_cast<double>(s.count));
  };
  if (series_.empty() && label_names_.empty()) render({}, Series{});
  for (const auto& [values, s] : series_) render(values, s);
}

}  // namespace icos::controller::metrics
