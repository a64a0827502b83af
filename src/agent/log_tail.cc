#include "agent/log_tail.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace icos::agent {

std::string LogTail(const std::string& path, int max_lines, size_t max_bytes) {
  constexpr std::streamoff kWindow = 8 * 1024;
  std::ifstream f(path, std::ios::binary);
  if (!f || max_lines <= 0 || max_bytes == 0) return "";
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size <= 0) return "";
  const std::streamoff from = std::max<std::streamoff>(0, size - kWindow);
  f.seekg(from);
  std::string window(static_cast<size_t>(size - from), '\0');
  f.read(window.data(), static_cast<std::streamsize>(window.size()));
  window.resize(static_cast<size_t>(f.gcount()));
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(window, absl::ByAnyChar("\n\r"))) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::string clean(absl::StripAsciiWhitespace(line));
    for (char& ch : clean) {
      const auto u = static_cast<unsigned char>(ch);
      if (u < 0x20 || u == 0x7f) ch = '?';
    }
    lines.push_back(std::move(clean));
  }
  // The window's first line may be cut: it counts only when nothing else is there.
  if (from > 0 && lines.size() > 1) lines.erase(lines.begin());
  if (lines.size() > static_cast<size_t>(max_lines)) lines.erase(lines.begin(), lines.end() - max_lines);
  std::string out = absl::StrJoin(lines, " | ");
  if (out.size() > max_bytes) {
    size_t cut = out.size() - max_bytes;
    while (cut < out.size() && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) ++cut;
    out = "..." + out.substr(cut);
  }
  return out;
}

}  // namespace icos::agent
