// Strong identifier types shared by every icos component.
//
// A JobId is not interchangeable with a node index or a queue position even
// though all are integers underneath; the compiler enforces that.
#ifndef ICOS_COMMON_IDS_H_
#define ICOS_COMMON_IDS_H_

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace icos {

// An integer id with a tag type so different kinds of id never mix.
// Value semantics; trivially copyable; hashable with absl and std.
template <typename Tag>
class StrongInt {
 public:
  constexpr StrongInt() = default;
  constexpr explicit StrongInt(int64_t value) : value_(value) {}

  constexpr int64_t value() const { return value_; }
  std::string ToString() const { return std::to_string(value_); }

  friend constexpr auto operator<=>(StrongInt, StrongInt) = default;

  template <typename H>
  friend H AbslHashValue(H h, StrongInt id) {
    return H::combine(std::move(h), id.value_);
  }

 private:
  int64_t value_ = 0;
};

struct JobIdTag {};
using JobId = StrongInt<JobIdTag>;

}  // namespace icos

template <typename Tag>
struct std::hash<icos::StrongInt<Tag>> {
  size_t operator()(icos::StrongInt<Tag> id) const noexcept { return std::hash<int64_t>()(id.value()); }
};

#endif  // ICOS_COMMON_IDS_H_
