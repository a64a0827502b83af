// A seeded source of draws for core::ForecastStarts (the core owns no
// randomness): the same seed, the same forecast.
#ifndef ICOS_LEARN_SEEDED_NOISE_H_
#define ICOS_LEARN_SEEDED_NOISE_H_

#include <cstdint>
#include <random>

#include "core/forecast.h"

namespace icos::learn {

class SeededNoise final : public core::Noise {
 public:
  explicit SeededNoise(uint64_t seed = 1) : rng_(seed) {}
  double Normal() override { return normal_(rng_); }
  double Exponential() override { return exponential_(rng_); }

 private:
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
  std::exponential_distribution<double> exponential_{1.0};
};

}  // namespace icos::learn

#endif  // ICOS_LEARN_SEEDED_NOISE_H_
