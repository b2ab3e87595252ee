#include <algorithm>
#include <cmath>
#include <vector>

#include "hpd/kernels.h"

namespace hpd::kernels {
namespace {

inline float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

}  // namespace

void ssm_scan_sequential(const SsmArgs& s, int ith, int nth) {
  // Per head h, group g(h) = h / (H/G); S(t) = exp(dt*A) S(t-1) + dt x ⊗ B;
  // y = S C + D x. Fused into one pass over the [P, N] state per token.
  int64_t begin, end;
  thread_slice(s.heads, ith, nth, &begin, &end);
  const int64_t P = s.head_dim, N = s.state_size, heads_per_group = s.heads / s.groups;
  for (int64_t h = begin; h < end; ++h) {
    const int64_t g = h / heads_per_group;
    float* st = s.state + h * P * N;
    for (int64_t t = 0; t < s.tokens; ++t) {
      const float dt = softplus(s.dt_raw[t * s.lddt + h] + s.dt_bias[h]);
      const float decay = std::exp(dt * s.a[h]);
      const float* x = s.x + t * s.ldx + h * P;
      const float* B = s.b + t * s.ldbc + g * N;
      const float* C = s.c + t * s.ldbc + g * N;
      float* y = s.y + (t * s.heads + h) * P;
      for (int64_t p = 0; p < P; ++p) {
        const float xd = dt * x[p];
        float* row = st + p * N;
        float acc = 0.0f;
        for (int64_t n = 0; n < N; ++n) {
          row[n] = row[n] * decay + xd * B[n];
          acc += row[n] * C[n];
        }
        y[p] = acc + s.d[h] * x[p];
      }
    }
  }
}

void ssm_scan_chunked(const SsmArgs& s, int64_t chunk, int ith, int nth) {
  // Chunked SSD (model-forward.md §3.4), per head, chunks of Q tokens (the last may be shorter,
  // which equals zero-padding). Within a chunk with inclusive cumsum acum of a = dt*A:
  //   y[l]  = exp(acum[l]) (S_in · C[l])                                  (state entering)
  //         + Σ_{s<=l} (C[l]·B[s]) exp(acum[l]-acum[s]) dt[s] x[s]         (intra-chunk)
  //   S_out = exp(acum[L-1]) S_in + Σ_s exp(acum[L-1]-acum[s]) dt[s] x[s] ⊗ B[s]
  int64_t begin, end;
  thread_slice(s.heads, ith, nth, &begin, &end);
  const int64_t P = s.head_dim, N = s.state_size, heads_per_group = s.heads / s.groups;
  std::vector<float> dt(chunk), acum(chunk), coef(chunk), cb(chunk);
  for (int64_t h = begin; h < end; ++h) {
    const int64_t g = h / heads_per_group;
    float* st = s.state + h * P * N;
    for (int64_t t0 = 0; t0 < s.tokens; t0 += chunk) {
      const int64_t L = std::min(chunk, s.tokens - t0);
      float run = 0.0f;
      for (int64_t l = 0; l < L; ++l) {
        dt[l] = softplus(s.dt_raw[(t0 + l) * s.lddt + h] + s.dt_bias[h]);
        run += dt[l] * s.a[h];
        acum[l] = run;
      }
      for (int64_t l = 0; l < L; ++l) {
        const int64_t t = t0 + l;
        const float* C = s.c + t * s.ldbc + g * N;
        const float* x = s.x + t * s.ldx + h * P;
        float* y = s.y + (t * s.heads + h) * P;
        const float in_decay = std::exp(acum[l]);
        for (int64_t p = 0; p < P; ++p) {
          const float* row = st + p * N;
          float acc = 0.0f;
          for (int64_t n = 0; n < N; ++n) acc += row[n] * C[n];
          y[p] = in_decay * acc + s.d[h] * x[p];
        }
        for (int64_t j = 0; j <= l; ++j) {
          const float* B = s.b + (t0 + j) * s.ldbc + g * N;
          float dot = 0.0f;
          for (int64_t n = 0; n < N; ++n) dot += C[n] * B[n];
          cb[j] = dot * std::exp(acum[l] - acum[j]) * dt[j];
        }
        for (int64_t j = 0; j <= l; ++j) {
          const float* xs = s.x + (t0 + j) * s.ldx + h * P;
          const float wgt = cb[j];
          for (int64_t p = 0; p < P; ++p) y[p] += wgt * xs[p];
        }
      }
      const float total = std::exp(acum[L - 1]);
      for (int64_t j = 0; j < L; ++j) coef[j] = std::exp(acum[L - 1] - acum[j]) * dt[j];
      for (int64_t p = 0; p < P; ++p) {
        float* row = st + p * N;
        for (int64_t n = 0; n < N; ++n) row[n] *= total;
        for (int64_t j = 0; j < L; ++j) {
          const float xs = coef[j] * s.x[(t0 + j) * s.ldx + h * P + p];
          const float* B = s.b + (t0 + j) * s.ldbc + g * N;
          for (int64_t n = 0; n < N; ++n) row[n] += xs * B[n];
        }
      }
    }
  }
}

}  // namespace hpd::kernels
