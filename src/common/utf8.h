// Cutting UTF-8 text to a byte budget without splitting a character: a
// string cut mid-character is no longer valid UTF-8, and nlohmann::json
// refuses to write it (an API answer quoting it would fail).
#ifndef ICOS_COMMON_UTF8_H_
#define ICOS_COMMON_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace icos {

// The longest prefix of `s` of at most `max_bytes` that ends at a character
// boundary (continuation bytes, 10xxxxxx, are never left dangling).
inline absl::string_view Utf8Prefix(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace icos

#endif  // ICOS_COMMON_UTF8_H_
