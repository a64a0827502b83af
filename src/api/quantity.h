// Quantities in job specs: CPU ("2", "500m"), memory ("512Mi", "2Gi") and
// durations ("90s", "2h"), parsed exactly (no floating point) and written back
// in a canonical form the parser accepts. Internal to icos_api; the public
// parsers are declared in api/job_spec.h.
#ifndef ICOS_API_QUANTITY_H_
#define ICOS_API_QUANTITY_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::api::detail {

// Values quoted back in error messages are cut to this many bytes.
constexpr size_t kMaxShown = 40;
constexpr int64_t kMi = 1LL << 20;

bool AllDigits(absl::string_view s);
// `text` as an error message may quote it: cut to kMaxShown bytes, control
// characters escaped.
std::string Shown(absl::string_view text);
// Memory in MiB; *under_one_mib is set for a non-zero amount below 1 MiB.
absl::StatusOr<int64_t> ParseMemory(absl::string_view text, bool* under_one_mib);
std::string FormatCpu(int64_t milli);
std::string FormatMemory(int64_t mib);
std::string FormatDuration(int64_t s);

}  // namespace icos::api::detail

#endif  // ICOS_API_QUANTITY_H_
