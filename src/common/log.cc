#include "common/log.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace icos::log {

void Init(absl::string_view component) {
  auto logger = spdlog::stderr_logger_mt(std::string(component));
  // UTC ISO-8601 with milliseconds, then logfmt fields; %v is the message.
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l component=%n %v", spdlog::pattern_time_type::utc);
  spdlog::level::level_enum level = spdlog::level::info;
  if (const char* env = std::getenv("ICOS_LOG_LEVEL"); env != nullptr) {
    const auto parsed = spdlog::level::from_str(absl::AsciiStrToLower(env));
    if (parsed != spdlog::level::off || absl::AsciiStrToLower(env) == "off") level = parsed;
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

std::string Field(absl::string_view value) {
  bool bare = !value.empty();
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || c == '"' || c == '=' || c == '\\' || u == 0x7f) bare = false;
  }
  if (bare) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += absl::StrFormat("\\x%02x", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

void Failure(absl::string_view what, const absl::Status& status, absl::string_view fields) {
  if (status.ok()) return;
  spdlog::warn("msg={} code={} error={}{}{}", Field(absl::StrCat(what, " failed")),
               absl::StatusCodeToString(status.code()), Field(status.message()), fields.empty() ? "" : " ",
               std::string(fields));
}

}  // namespace icos::log
