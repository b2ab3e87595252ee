#include <cmath>
#include <cstring>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {

void embedding(const int32_t* ids, int64_t tokens, WeightView table, int64_t vocab_begin, int64_t vocab_end,
               int64_t dim, float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t id = ids[t];
    if (id >= vocab_begin && id < vocab_end) {
      if (table.bf16) {
        widen_bf16(table.bf16 + (id - vocab_begin) * dim, out + t * dim, dim);
      } else {
        std::memcpy(out + t * dim, table.f32 + (id - vocab_begin) * dim, sizeof(float) * dim);
      }
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

void mul_columns(float* x, int64_t ld, int64_t rows, int64_t cols, const float* scale, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    float* r = x + t * ld;
    for (int64_t c = 0; c < cols; ++c) r[c] *= scale[c];
  }
}

void copy_columns(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, const int32_t* runs,
                  int64_t num_runs, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    for (int64_t r = 0; r < num_runs; ++r) {
      std::memcpy(dst + t * ldd + runs[3 * r + 1], src + t * lds + runs[3 * r], sizeof(float) * runs[3 * r + 2]);
    }
  }
}

void scale_rows(float* x, int64_t ld, int64_t rows, int64_t cols, const float* scale, bool sigmoid, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    float* r = x + t * ld;
    const float s = sigmoid ? 1.0f / (1.0f + std::exp(-scale[t])) : scale[t];
    for (int64_t c = 0; c < cols; ++c) r[c] *= s;
  }
}

void scale_inplace(float* x, int64_t n, float alpha, int ith, int nth) {
  int64_t begin, end;
  thread_slice(n, ith, nth, &begin, &end);
  for (int64_t i = begin; i < end; ++i) x[i] *= alpha;
}

void sigmoid_mul(float* x, const float* gate, int64_t ldg, int64_t rows, int64_t cols, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  std::vector<float> e(cols);
  for (int64_t t = begin; t < end; ++t) {
    // sigmoid(g) = 1 / (1 + exp(-g)): exp of -g with the vectorized helper (shift 0).
    for (int64_t c = 0; c < cols; ++c) e[c] = -gate[t * ldg + c];
    exp_shift_sum(e.data(), cols, 0.0f);
    float* r = x + t * cols;
    for (int64_t c = 0; c < cols; ++c) r[c] /= 1.0f + e[c];
  }
}

void rope_neox(float* x, int64_t ldx, int64_t pos0, int64_t tokens, int64_t heads, int64_t head_dim, float theta,
               int64_t rotary_dim) {
  const int64_t half = rotary_dim / 2;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(rotary_dim));
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
