// Process logging (spdlog): one line per event on stderr, logfmt-style so
// that journald, Loki or grep can pick fields out:
//   2026-12-06T00:20:00.123Z level=warn component=controller msg="loop step failed" step=pass error="..."
// Use spdlog's functions (spdlog::warn(...)) after Init; Field() quotes a value.
//
// Thread-safety: Init before starting threads; logging is thread-safe.
#ifndef ICOS_COMMON_LOG_H_
#define ICOS_COMMON_LOG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace icos::log {

// Makes the default logger write to stderr as `component` (e.g. "controller",
// "agent"). Level from ICOS_LOG_LEVEL (trace, debug, info, warn, error; info
// when unset or unknown).
void Init(absl::string_view component);

// `value` as a logfmt value: bare when it is one word, else double-quoted with
// quotes, backslashes and control characters escaped.
std::string Field(absl::string_view value);

// Logs a failed step at warn: msg="<what> failed" code=<code> error="<message>"
// plus `fields` (already "key=value ..."). Nothing for an OK status.
void Failure(absl::string_view what, const absl::Status& status, absl::string_view fields = "");

}  // namespace icos::log

#endif  // ICOS_COMMON_LOG_H_
