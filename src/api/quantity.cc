#include "api/quantity.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "api/job_spec.h"
#include "common/utf8.h"

namespace icos::api::detail {

// ---------------------------------------------------------------------------
// Quantities.

using u128 = unsigned __int128;

// A non-negative decimal number as written: "12", "0.5", ".5", "5.".
struct Decimal {
  absl::string_view whole;
  absl::string_view frac;
};

bool AllDigits(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); });
}

std::optional<Decimal> SplitDecimal(absl::string_view s) {
  const size_t dot = s.find('.');
  Decimal d{s.substr(0, dot), dot == absl::string_view::npos ? absl::string_view() : s.substr(dot + 1)};
  if (d.whole.empty() && d.frac.empty()) return std::nullopt;
  if (!AllDigits(d.whole) || !AllDigits(d.frac)) return std::nullopt;
  return d;
}

enum class ScaleError { kNone, kTooLarge, kTooPrecise };

// ceil(d * scale / divisor) in exact integer arithmetic.
// REQUIRES: 1 <= scale < 2^63, 1 <= divisor <= 2^40.
int64_t ScaleUp(const Decimal& d, uint64_t scale, uint64_t divisor, ScaleError* error) {
  constexpr u128 kMax = std::numeric_limits<int64_t>::max();
  *error = ScaleError::kNone;
  u128 whole = 0;
  for (char c : d.whole) {
    whole = whole * 10 + static_cast<u128>(c - '0');
    if (whole > kMax) {
      *error = ScaleError::kTooLarge;
      return 0;
    }
  }
  absl::string_view frac = d.frac;
  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > 18) {
    *error = ScaleError::kTooPrecise;
    return 0;
  }
  u128 frac_num = 0;
  u128 pow10 = 1;
  for (char c : frac) {
    frac_num = frac_num * 10 + static_cast<u128>(c - '0');
    pow10 *= 10;
  }
  // value = whole + frac_num / pow10; every product below stays under 2^127.
  const u128 whole_scaled = whole * scale;
  const u128 q = whole_scaled / divisor;
  const u128 r = whole_scaled % divisor;
  if (q > kMax) {
    *error = ScaleError::kTooLarge;
    return 0;
  }
  const u128 den = pow10 * divisor;
  const u128 num = r * pow10 + frac_num * scale;
  const u128 total = q + (num + den - 1) / den;
  if (total > kMax) {
    *error = ScaleError::kTooLarge;
    return 0;
  }
  return static_cast<int64_t>(total);
}

// `text` cut to kMaxShown bytes (at a UTF-8 boundary) with control characters
// escaped, for quoting user input back in messages.
std::string Shown(absl::string_view text) {
  bool cut = false;
  if (text.size() > kMaxShown) {
    text = Utf8Prefix(text, kMaxShown);
    cut = true;
  }
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", u));
    } else {
      out.push_back(c);
    }
  }
  if (cut) out += "...";
  return out;
}

absl::Status QuantityError(absl::string_view text, ScaleError error, absl::string_view usage) {
  if (error == ScaleError::kTooLarge) {
    return absl::InvalidArgumentError(absl::StrCat("'", Shown(text), "' is too large"));
  }
  if (error == ScaleError::kTooPrecise) {
    return absl::InvalidArgumentError(absl::StrCat("'", Shown(text), "' has more than 18 decimal places"));
  }
  return absl::InvalidArgumentError(absl::StrCat("'", Shown(text), "' ", usage));
}

// "-2Gi" is a quantity, just a wrong one: say so rather than "not a quantity".
// `parse` is the unsigned parser; it is applied to the text after the sign.
template <typename Parse>
std::optional<absl::Status> NegativeError(absl::string_view text, Parse parse) {
  const absl::string_view s = absl::StripAsciiWhitespace(text);
  if (s.empty() || s[0] != '-' || !parse(s.substr(1)).ok()) return std::nullopt;
  return absl::InvalidArgumentError(absl::StrCat("'", Shown(text), "' is negative"));
}

constexpr absl::string_view kCpuUsage = "is not a CPU quantity; use e.g. 2, 0.5 or 500m";
constexpr absl::string_view kMemoryUsage = "is not a quantity; use e.g. 512Mi or 2Gi";
constexpr absl::string_view kDurationUsage = "is not a duration; use e.g. 90s, 10m, 2h or 1d";

struct Suffix {
  absl::string_view name;
  uint64_t multiplier;
};

constexpr Suffix kMemorySuffixes[] = {
    {"Ki", 1ULL << 10},
    {"Mi", 1ULL << 20},
    {"Gi", 1ULL << 30},
    {"Ti", 1ULL << 40},
    {"Pi", 1ULL << 50},
    {"Ei", 1ULL << 60},
    {"k", 1'000ULL},
    {"K", 1'000ULL},
    {"M", 1'000'000ULL},
    {"G", 1'000'000'000ULL},
    {"T", 1'000'000'000'000ULL},
    {"P", 1'000'000'000'000'000ULL},
    {"E", 1'000'000'000'000'000'000ULL},
};

constexpr Suffix kDurationSuffixes[] = {{"s", 1}, {"m", 60}, {"h", 3'600}, {"d", 86'400}};

// Memory in MiB, rounded up. *under_one_mib is set when the text is a bare
// number of bytes below 1 MiB, which the user surely meant in MiB or GiB.
absl::StatusOr<int64_t> ParseUnsignedMemory(absl::string_view text, bool* under_one_mib) {
  const absl::string_view s = absl::StripAsciiWhitespace(text);
  uint64_t multiplier = 1;
  absl::string_view number = s;
  for (const Suffix& suffix : kMemorySuffixes) {
    if (absl::EndsWith(s, suffix.name)) {
      multiplier = suffix.multiplier;
      number = s.substr(0, s.size() - suffix.name.size());
      break;
    }
  }
  const std::optional<Decimal> d = SplitDecimal(number);
  if (!d) return QuantityError(text, ScaleError::kNone, kMemoryUsage);
  ScaleError error;
  const int64_t mib = ScaleUp(*d, multiplier, kMi, &error);
  if (error != ScaleError::kNone) return QuantityError(text, error, kMemoryUsage);
  if (multiplier == 1) *under_one_mib = ScaleUp(*d, 1, 1, &error) < kMi;
  return mib;
}

absl::StatusOr<int64_t> ParseMemory(absl::string_view text, bool* under_one_mib) {
  *under_one_mib = false;
  bool ignored;
  auto parse = [&ignored](absl::string_view s) { return ParseUnsignedMemory(s, &ignored); };
  if (std::optional<absl::Status> negative = NegativeError(text, parse)) return *negative;
  return ParseUnsignedMemory(text, under_one_mib);
}

absl::StatusOr<int64_t> ParseUnsignedCpu(absl::string_view text) {
  const absl::string_view s = absl::StripAsciiWhitespace(text);
  ScaleError error = ScaleError::kNone;
  int64_t milli = 0;
  if (absl::EndsWith(s, "m")) {
    const absl::string_view number = s.substr(0, s.size() - 1);
    if (number.empty() || !AllDigits(number)) return QuantityError(text, ScaleError::kNone, kCpuUsage);
    milli = ScaleUp(Decimal{number, {}}, 1, 1, &error);
  } else {
    const std::optional<Decimal> d = SplitDecimal(s);
    if (!d) return QuantityError(text, ScaleError::kNone, kCpuUsage);
    milli = ScaleUp(*d, 1000, 1, &error);
  }
  if (error != ScaleError::kNone) return QuantityError(text, error, kCpuUsage);
  return milli;
}

absl::StatusOr<int64_t> ParseUnsignedDuration(absl::string_view text) {
  const absl::string_view s = absl::StripAsciiWhitespace(text);
  uint64_t unit = 1;
  absl::string_view number = s;
  for (const Suffix& suffix : kDurationSuffixes) {
    if (absl::EndsWith(s, suffix.name)) {
      unit = suffix.multiplier;
      number = s.substr(0, s.size() - suffix.name.size());
      break;
    }
  }
  const std::optional<Decimal> d = SplitDecimal(number);
  if (!d) return QuantityError(text, ScaleError::kNone, kDurationUsage);
  ScaleError error;
  const int64_t seconds = ScaleUp(*d, unit, 1, &error);
  if (error != ScaleError::kNone) return QuantityError(text, error, kDurationUsage);
  return seconds;
}

// ---------------------------------------------------------------------------
// Canonical text forms, each accepted by the parser above.

std::string FormatCpu(int64_t milli) {
  if (milli % 1000 == 0) return absl::StrCat(milli / 1000);
  return absl::StrCat(milli, "m");
}

std::string FormatMemory(int64_t mib) {
  constexpr int64_t kMibPerGib = 1LL << 10;
  constexpr int64_t kMibPerTib = 1LL << 20;
  if (mib != 0 && mib % kMibPerTib == 0) return absl::StrCat(mib / kMibPerTib, "Ti");
  if (mib != 0 && mib % kMibPerGib == 0) return absl::StrCat(mib / kMibPerGib, "Gi");
  return absl::StrCat(mib, "Mi");
}

std::string FormatDuration(int64_t s) {
  for (int i = std::size(kDurationSuffixes) - 1; i > 0; --i) {
    const auto unit = static_cast<int64_t>(kDurationSuffixes[i].multiplier);
    if (s != 0 && s % unit == 0) return absl::StrCat(s / unit, kDurationSuffixes[i].name);
  }
  return absl::StrCat(s, "s");
}

}  // namespace icos::api::detail

namespace icos::api {

using detail::NegativeError;
using detail::ParseMemory;
using detail::ParseUnsignedCpu;
using detail::ParseUnsignedDuration;

absl::StatusOr<int64_t> ParseCpuMilli(const std::string& text) {
  if (std::optional<absl::Status> negative = NegativeError(text, ParseUnsignedCpu)) return *negative;
  return ParseUnsignedCpu(text);
}

absl::StatusOr<int64_t> ParseMemoryMib(const std::string& text) {
  bool under_one_mib;
  return ParseMemory(text, &under_one_mib);
}

absl::StatusOr<int64_t> ParseDurationS(const std::string& text) {
  if (std::optional<absl::Status> negative = NegativeError(text, ParseUnsignedDuration)) return *negative;
  return ParseUnsignedDuration(text);
}

}  // namespace icos::api
