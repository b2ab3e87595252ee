// Small vector helpers for the kernels. Float reductions do not auto-vectorize without
// -ffast-math (reassociation), so dot products keep 8 independent partial sums, which GCC maps to
// one AVX2 FMA lane each (-march=x86-64-v3), instead of one latency-bound scalar chain.
#pragma once

#include <cstdint>

namespace hpd::kernels {

inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

inline float sumsq_f32(const float* a, int64_t n) { return dot_f32(a, a, n); }

}  // namespace hpd::kernels
