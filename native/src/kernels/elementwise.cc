#include <cmath>
#include <cstring>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {

void embedding(const int32_t* ids, int64_t tokens, const float* table, int64_t vocab_begin, int64_t vocab_end,
               int64_t dim, float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t id = ids[t];
    if (id >= vocab_begin && id < vocab_end) {
      std::memcpy(out + t * dim, table + (id - vocab_begin) * dim, sizeof(float) * dim);
    } else {
      std::memset(out + t * dim, 0, sizeof(float) * dim);
    }
  }
}

void add_inplace(float* y, const float* x, int64_t n, int ith, int nth) {
  int64_t begin, end;
  thread_slice(n, ith, nth, &begin, &end);
  for (int64_t i = begin; i < end; ++i) y[i] += x[i];
}

void relu_squared_inplace(float* x, int64_t n, int ith, int nth) {
  int64_t begin, end;
  thread_slice(n, ith, nth, &begin, &end);
  for (int64_t i = begin; i < end; ++i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    x[i] = r * r;
  }
}

void silu_mul(const float* gu, float* out, int64_t tokens, int64_t inter, int ith, int nth) {
  int64_t begin, end;
  thread_slice(tokens, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    const float* g = gu + t * 2 * inter;
    const float* u = g + inter;
    float* o = out + t * inter;
    for (int64_t i = 0; i < inter; ++i) o[i] = g[i];
    silu_inplace(o, inter);
    for (int64_t i = 0; i < inter; ++i) o[i] *= u[i];
  }
}

void rope_neox(float* x, int64_t ldx, int64_t pos0, int64_t tokens, int64_t heads, int64_t head_dim, float theta) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  }
  for (int64_t t = 0; t < tokens; ++t) {
    const float pos = static_cast<float>(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      const float cs = std::cos(angle), sn = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + t * ldx + h * head_dim;
        const float a = v[i], b = v[i + half];
        v[i] = a * cs - b * sn;
        v[i + half] = b * cs + a * sn;
      }
    }
  }
}

void copy(float* dst, const float* src, int64_t n, int ith, int nth) {
  int64_t begin, end;
  thread_slice(n, ith, nth, &begin, &end);
  if (end > begin) std::memcpy(dst + begin, src + begin, sizeof(float) * (end - begin));
}

}  // namespace hpd::kernels
