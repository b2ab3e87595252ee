#include <cmath>
#include <cstring>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    const float* xr = x + t * dim;
    float* yr = y + t * dim;
    const float sum = sumsq_f32(xr, dim);
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void gated_norm_sumsq(const float* y, const float* z, int64_t ldz, float* out, float* sumsq, int64_t rows,
                      int64_t dim, int64_t group_size, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  const int64_t groups = dim / group_size;
  for (int64_t t = begin; t < end; ++t) {
    float* o = out + t * dim;
    for (int64_t c = 0; c < dim; ++c) o[c] = z[t * ldz + c];
    silu_inplace(o, dim);
    for (int64_t c = 0; c < dim; ++c) o[c] *= y[t * dim + c];
    for (int64_t j = 0; j < groups; ++j) sumsq[t * groups + j] = sumsq_f32(o + j * group_size, group_size);
  }
}

void norm_first_sumsq(const float* y, float* out, float* sumsq, int64_t rows, int64_t dim, int64_t group_size,
                      int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  const int64_t groups = dim / group_size;
  for (int64_t t = begin; t < end; ++t) {
    float* o = out + t * dim;
    if (o != y + t * dim) std::memcpy(o, y + t * dim, sizeof(float) * dim);
    for (int64_t j = 0; j < groups; ++j) sumsq[t * groups + j] = sumsq_f32(o + j * group_size, group_size);
  }
}

void gated_norm_apply(float* out, const float* sumsq, const float* w, int64_t rows, int64_t dim, int64_t group_size,
                      int64_t norm_count, float eps, const float* z, int64_t ldz, int ith, int nth) {
  int64_t begin, end;
  thread_slice(rows, ith, nth, &begin, &end);
  const int64_t groups = dim / group_size;
  std::vector<float> gate(z ? dim : 0);
  for (int64_t t = begin; t < end; ++t) {
    float* o = out + t * dim;
    for (int64_t j = 0; j < groups; ++j) {
      const float inv = 1.0f / std::sqrt(sumsq[t * groups + j] / static_cast<float>(norm_count) + eps);
      for (int64_t c = j * group_size; c < (j + 1) * group_size; ++c) o[c] = w[c] * (o[c] * inv);
    }
    if (z) {
      std::memcpy(gate.data(), z + t * ldz, sizeof(float) * dim);
      silu_inplace(gate.data(), dim);
      for (int64_t c = 0; c < dim; ++c) o[c] *= gate[c];
    }
  }
}

void head_rms_norm(float* x, int64_t ldx, int64_t tokens, int64_t heads, int64_t head_dim, const float* w, float eps) {
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + t * ldx + h * head_dim;
      const float inv = 1.0f / std::sqrt(sumsq_f32(v, head_dim) / static_cast<float>(head_dim) + eps);
      for (int64_t i = 0; i < head_dim; ++i) v[i] = w[i] * (v[i] * inv);
    }
  }
}

}  // namespace hpd::kernels
