// Checks on a spec's raw text before yaml-cpp parses it: valid UTF-8, bounded
// nesting (yaml-cpp recurses), a single document. Internal to icos_api.
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

}  // namespace icos::api::detail

#endif  // ICOS_API_SPEC_TEXT_H_
