// Usage accounting: device-hours by vendor/model, CPU-hours and job counts
// per user or per queue over a time window, computed from the store's durable
// per-task run intervals (store::UsageRecord) and job counts. Pure functions:
// no I/O, no clock (the caller passes "now" for intervals still open).
#ifndef ICOS_CONTROLLER_ACCOUNTING_H_
#define ICOS_CONTROLLER_ACCOUNTING_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "store/records.h"

namespace icos::controller {

enum class UsageBy { kUser, kQueue };
const char* UsageByName(UsageBy by);  // "user", "queue"
std::optional<UsageBy> ParseUsageBy(const std::string& name);

struct UsageRow {
  std::string key;                             // the user or the queue
  std::map<std::string, double> device_hours;  // "vendor/model" -> device-hours (shares count their fraction)
  double device_hours_total = 0;
  double cpu_hours = 0;  // cores x hours
  int64_t submitted = 0, succeeded = 0, failed = 0, cancelled = 0;
  // Work lost to interruptions by its jobs that ended in the window
  // (docs/frameworks.md "Checkpoints").
  double device_hours_lost = 0;
};

// One row per key, in key order. Each interval is clipped to
// [since_ms, until_ms); one still open (end_ms 0) ends at now_ms. Rows with
// neither usage nor job counts are left out.
// DataLoss when a record's devices_json is malformed.
absl::StatusOr<std::vector<UsageRow>> ComputeUsage(const std::vector<store::UsageRecord>& intervals,
                                                   const std::vector<store::JobCounts>& counts, UsageBy by,
                                                   int64_t since_ms, int64_t until_ms, int64_t now_ms);

// devices_json for a UsageRecord: one {"type", "share"} per device slice.
std::string UsageDevicesJson(const std::vector<std::pair<std::string, double>>& slices);

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_ACCOUNTING_H_
