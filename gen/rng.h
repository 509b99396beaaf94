// The generator's randomness: a seeded xoshiro256** stream with hand-written
// distributions, and a weighted pick. Single-threaded; one Rng per stream.
//   Rng rng(seed);  double u = rng.Uniform();  int i = Weighted({3, 1}).Pick(rng);
#ifndef NOVAPULSE_GEN_RNG_H_
#define NOVAPULSE_GEN_RNG_H_

#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace novapulse::gen {

// xoshiro256** seeded through splitmix64: a fixed, published algorithm, so the
// stream is the same with every compiler and standard library. The std
// distributions are implementation-defined, hence the hand-written ones here.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) s = SplitMix64(seed);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n); the multiply-shift bias is far below anything visible.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

  // Standard normal, Marsaglia's polar method.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2 * Uniform() - 1;
      v = 2 * Uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s == 0);
    const double f = std::sqrt(-2 * std::log(s) / s);
    spare_ = v * f;
    has_spare_ = true;
    return u * f;
  }

  // Exponential with mean 1.
  double Exponential() { return -std::log1p(-Uniform()); }

  double LogNormal(double median, double sigma) { return median * std::exp(sigma * Normal()); }

  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  std::array<uint64_t, 4> s_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// Picks an index with probability proportional to its weight.
class Weighted {
 public:
  Weighted(std::initializer_list<double> weights) : Weighted(std::vector<double>(weights)) {}
  explicit Weighted(const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    double sum = 0;
    for (double w : weights) {
      sum += w;
      cumulative_.push_back(sum / total);
    }
    cumulative_.back() = 1.0;
  }

  int Pick(Rng& rng) const {
    const double u = rng.Uniform();
    int i = 0;
    while (u >= cumulative_[i]) ++i;
    return i;
  }

 private:
  std::vector<double> cumulative_;
};

}  // namespace novapulse::gen

#endif  // NOVAPULSE_GEN_RNG_H_
