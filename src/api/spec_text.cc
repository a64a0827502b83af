#include "api/spec_text.h"

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
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace icos::api::detail {

// ---------------------------------------------------------------------------
// Checks on the raw text, before yaml-cpp sees it.

// 1-based line of byte `pos`.
int LineOf(absl::string_view text, size_t pos) {
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<ptrdiff_t>(pos), '\n'));
}

// Position of the first byte that is not part of valid UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF), or npos.
size_t FirstInvalidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return i;
    }
    i += len;
  }
  return absl::string_view::npos;
}

// A cheap upper-bound-ish estimate of how deeply collections nest: block
// indentation levels (and "- " prefixes) plus open flow brackets, ignoring
// quoted text and comments. Returns the line where `limit` is first exceeded,
// or 0. It can over-count only for brackets inside plain scalars, which real
// specs do not have; yaml-cpp's own depth guard backs it up.
int LineExceedingNesting(absl::string_view text, int limit) {
  std::vector<size_t> indents;
  int flow = 0;
  char quote = 0;
  int line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    ++line_no;
    size_t end = text.find('\n', start);
    if (end == absl::string_view::npos) end = text.size();
    const absl::string_view line = text.substr(start, end - start);
    size_t p = 0;
    if (quote == 0 && flow == 0) {
      const size_t indent = line.find_first_not_of(' ');
      if (indent != absl::string_view::npos && line[indent] != '#' && line[indent] != '\r') {
        while (!indents.empty() && indents.back() >= indent) indents.pop_back();
        indents.push_back(indent);
        p = indent;
        // "- - x": each dash opens one more sequence.
        while (p < line.size() && line[p] == '-' && p + 1 < line.size() && line[p + 1] == ' ') {
          const size_t next = line.find_first_not_of(' ', p + 1);
          if (next == absl::string_view::npos) break;
          indents.push_back(next);
          p = next;
        }
        if (static_cast<int>(indents.size()) > limit) return line_no;
      }
    }
    for (; p < line.size(); ++p) {
      const char c = line[p];
      if (quote != 0) {
        if (quote == '"' && c == '\\') {
          ++p;
        } else if (c == quote) {
          if (quote == '\'' && p + 1 < line.size() && line[p + 1] == '\'') {
            ++p;
          } else {
            quote = 0;
          }
        }
        continue;
      }
      const bool after_separator =
          p == 0 || absl::string_view(" \t[{,:-?").find(line[p - 1]) != absl::string_view::npos;
      if (c == '#' && (p == 0 || line[p - 1] == ' ' || line[p - 1] == '\t')) break;
      if ((c == '"' || c == '\'') && after_separator) {
        quote = c;
      } else if (c == '[' || c == '{') {
        ++flow;
        if (static_cast<int>(indents.size()) + flow > limit) return line_no;
      } else if ((c == ']' || c == '}') && flow > 0) {
        --flow;
      }
    }
    start = end + 1;
  }
  return 0;
}

// Notes whether a document holds anything but a null, and where it starts.
class DocumentProbe : public YAML::EventHandler {
 public:
  bool has_content() const { return has_content_; }
  const YAML::Mark& start() const { return start_; }

  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { has_content_ = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {
    has_content_ = true;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    has_content_ = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    has_content_ = true;
  }
  void OnMapEnd() override {}

 private:
  bool has_content_ = false;
  YAML::Mark start_ = YAML::Mark::null_mark();
};

// Accepts one document, optionally followed by one empty one (a trailing
// "---"). Throws YAML::Exception on syntax errors.
absl::Status CheckSingleDocument(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentProbe first;
  if (!parser.HandleNextDocument(first)) return absl::OkStatus();
  DocumentProbe second;
  if (!parser.HandleNextDocument(second)) return absl::OkStatus();
  DocumentProbe third;
  if (!second.has_content() && !parser.HandleNextDocument(third)) return absl::OkStatus();
  const YAML::Mark& at = second.start();
  return absl::InvalidArgumentError(absl::StrCat("spec (line ", at.line + 1, ", column ", at.column + 1,
                                                 "): unexpected text after the end of the spec (a second YAML "
                                                 "document?); submit one job per spec"));
}

// --- names ---------------------------------------------------------------------

bool IsDnsLabel(absl::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) || absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
          c == '-')) {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

bool IsEnvName(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

namespace {

bool IsLabelChar(char c, absl::string_view extra) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || extra.find(c) != absl::string_view::npos;
}

}  // namespace

bool IsLabelKey(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (!IsLabelChar(s.front(), "") || !IsLabelChar(s.back(), "")) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLabelChar(c, "-_./"); });
}

bool IsLabelValue(absl::string_view s) {
  if (s.empty()) return true;
  if (s.size() > kMaxNameLength) return false;
  if (!IsLabelChar(s.front(), "") || !IsLabelChar(s.back(), "")) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLabelChar(c, "-_."); });
}

bool IsVendorName(absl::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength || !absl::ascii_isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_islower(static_cast<unsigned char>(c)) || absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
           c == '-' || c == '_';
  });
}

}  // namespace icos::api::detail
