#include "controller/accounting.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace icos::controller {

using nlohmann::json;

const char* UsageByName(UsageBy by) { return by == UsageBy::kUser ? "user" : "queue"; }

std::optional<UsageBy> ParseUsageBy(const std::string& name) {
  if (name == "user") return UsageBy::kUser;
  if (name == "queue") return UsageBy::kQueue;
  return std::nullopt;
}

std::string UsageDevicesJson(const std::vector<std::pair<std::string, double>>& slices) {
  json out = json::array();
  for (const auto& [type, share] : slices) out.push_back({{"type", type}, {"share", share}});
  return out.dump();
}

absl::StatusOr<std::vector<UsageRow>> ComputeUsage(const std::vector<store::UsageRecord>& intervals,
                                                   const std::vector<store::JobCounts>& counts, UsageBy by,
                                                   int64_t since_ms, int64_t until_ms, int64_t now_ms) {
  constexpr double kMsPerHour = 3'600'000.0;
  std::map<std::string, UsageRow> rows;
  auto row = [&](const std::string& user, const std::string& queue) -> UsageRow& {
    const std::string& key = by == UsageBy::kUser ? user : queue;
    UsageRow& r = rows[key];
    r.key = key;
    return r;
  };
  for (const store::UsageRecord& u : intervals) {
    const int64_t end = u.end_ms == 0 ? now_ms : u.end_ms;
    const int64_t clipped = std::min(end, until_ms) - std::max(u.start_ms, since_ms);
    if (clipped <= 0) continue;
    const double hours = static_cast<double>(clipped) / kMsPerHour;
    json devices = json::parse(u.devices_json, nullptr, false);
    if (!devices.is_array()) {
      return absl::DataLossError(absl::StrCat("usage of job ", u.job_id, ": devices are not a JSON array"));
    }
    UsageRow& r = row(u.user, u.queue);
    for (const json& d : devices) {
      if (!d.is_object() || !d.contains("type") || !d["type"].is_string() || !d.contains("share") ||
          !d["share"].is_number()) {
        return absl::DataLossError(absl::StrCat("usage of job ", u.job_id, ": malformed device ", d.dump()));
      }
      const double dh = d["share"].get<double>() * hours;
      r.device_hours[d["type"].get<std::string>()] += dh;
      r.device_hours_total += dh;
    }
    r.cpu_hours += static_cast<double>(u.cpu_milli) / 1000.0 * hours;
  }
  for (const store::JobCounts& c : counts) {
    UsageRow& r = row(c.user, c.queue);
    r.submitted += c.submitted;
    r.succeeded += c.succeeded;
    r.failed += c.failed;
    r.cancelled += c.cancelled;
    r.device_hours_lost += static_cast<double>(c.lost_device_ms) / kMsPerHour;
  }
  std::vector<UsageRow> out;
  for (auto& [key, r] : rows) out.push_back(std::move(r));
  return out;
}

}  // namespace icos::controller
