// Uniform doubles from 64 random bits, the same on every standard library
// (std::uniform_real_distribution's algorithm is unspecified, so a seeded
// run would differ between libstdc++ and libc++).
#ifndef ICOS_COMMON_UNIT_INTERVAL_H_
#define ICOS_COMMON_UNIT_INTERVAL_H_

#include <cstdint>

namespace icos {

// In [0, 1): the top 53 bits, as many as a double holds exactly.
inline double UnitFromBits(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// In (0, 1): never 0, so that -log(u) (an exponential draw) stays finite.
inline double OpenUnitFromBits(uint64_t bits) { return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53; }

}  // namespace icos

#endif  // ICOS_COMMON_UNIT_INTERVAL_H_
