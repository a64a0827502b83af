// Checks on a spec's raw text before yaml-cpp parses it (valid UTF-8, bounded
// nesting: yaml-cpp recurses; a single document), and on the names in it.
// Internal to icos_api.
#ifndef ICOS_API_SPEC_TEXT_H_
#define ICOS_API_SPEC_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace icos::api::detail {

// 1-based line of byte `pos`.
int LineOf(absl::string_view text, size_t pos);
// Position of the first byte that is not part of valid UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF), or npos.
size_t FirstInvalidUtf8(absl::string_view s);
// The line where collections first nest deeper than `limit`, or 0 (an
// estimate that may over-count, never under-count, for real specs).
int LineExceedingNesting(absl::string_view text, int limit);
// Accepts one document, optionally followed by one empty one (a trailing
// "---"). Throws YAML::Exception on syntax errors.
absl::Status CheckSingleDocument(const std::string& text);

// Job and group names: DNS labels (1-63 of [a-z0-9-], no '-' at either end).
inline constexpr size_t kMaxNameLength = 63;
bool IsDnsLabel(absl::string_view s);
// Environment variable names: [A-Za-z_][A-Za-z0-9_]*.
bool IsEnvName(absl::string_view s);
// Node label keys: "zone", "icos.io/pool"; alphanumeric at both ends.
bool IsLabelKey(absl::string_view s);
// Node label values: empty, or up to 63 of [A-Za-z0-9-_.] alphanumeric at both ends.
bool IsLabelValue(absl::string_view s);
// Vendor names: "nvidia", "huawei-ascend": lowercase, digits, '-', '_'.
bool IsVendorName(absl::string_view s);

}  // namespace icos::api::detail

#endif  // ICOS_API_SPEC_TEXT_H_
