#include <algorithm>
#include <cmath>
#include <vector>

#include <cblas.h>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {
namespace {

inline float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

}  // namespace

void ssm_scan_sequential(const SsmArgs& s, int ith, int nth) {
  // Per head h, group g(h) = h / (H/G); S(t) = exp(dt*A) S(t-1) + dt x ⊗ B;
  // y = S C + D x, one [P, N] state row at a time (the row stays in L1 between update and dot).
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
        for (int64_t n = 0; n < N; ++n) row[n] = row[n] * decay + xd * B[n];
        y[p] = dot_f32(row, C, N) + s.d[h] * x[p];
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
  // The four products are single-threaded sgemm calls on strided views (this thread's slice of
  // heads; OpenBLAS runs with one thread, see napi/kernels.cc):
  //   Y[L,P]   = C[L,N] · S[P,N]ᵀ, then rows scaled by exp(acum)
  //   M[L,L]   = C[L,N] · B[L,N]ᵀ, masked causal and scaled by exp(acum[l]-acum[s]) dt[s]
  //   Y       += M[L,L] · X[L,P]
  //   S[P,N]   = exp(acum[L-1]) S + (coef ∘ X)[L,P]ᵀ · B[L,N]
  int64_t begin, end;
  thread_slice(s.heads, ith, nth, &begin, &end);
  const int64_t P = s.head_dim, N = s.state_size, H = s.heads, heads_per_group = s.heads / s.groups;
  std::vector<float> dt(chunk), acum(chunk), decay(chunk), m(chunk * chunk), xs(chunk * P);
  for (int64_t h = begin; h < end; ++h) {
    const int64_t g = h / heads_per_group;
    float* st = s.state + h * P * N;
    for (int64_t t0 = 0; t0 < s.tokens; t0 += chunk) {
      const int L = static_cast<int>(std::min(chunk, s.tokens - t0));
      float run = 0.0f;
      for (int64_t l = 0; l < L; ++l) {
        dt[l] = softplus(s.dt_raw[(t0 + l) * s.lddt + h] + s.dt_bias[h]);
        run += dt[l] * s.a[h];
        acum[l] = run;
      }
      const float* X = s.x + t0 * s.ldx + h * P;
      const float* B = s.b + t0 * s.ldbc + g * N;
      const float* C = s.c + t0 * s.ldbc + g * N;
      float* Y = s.y + (t0 * H + h) * P;
      const int ldx = static_cast<int>(s.ldx), ldbc = static_cast<int>(s.ldbc), ldy = static_cast<int>(H * P);
      const int iP = static_cast<int>(P), iN = static_cast<int>(N);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, iP, iN, 1.0f, C, ldbc, st, iN, 0.0f, Y, ldy);
      for (int64_t l = 0; l < L; ++l) {
        const float in_decay = std::exp(acum[l]);
        for (int64_t p = 0; p < P; ++p) Y[l * ldy + p] *= in_decay;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, iN, 1.0f, C, ldbc, B, ldbc, 0.0f, m.data(), L);
      for (int64_t l = 0; l < L; ++l) {
        // decay[j] = exp(acum[l] - acum[j]) for j <= l, vectorized as exp(-acum[j] - (-acum[l]))
        for (int64_t j = 0; j <= l; ++j) decay[j] = -acum[j];
        exp_shift_sum(decay.data(), l + 1, -acum[l]);
        float* row = m.data() + l * L;
        for (int64_t j = 0; j <= l; ++j) row[j] *= decay[j] * dt[j];
        for (int64_t j = l + 1; j < L; ++j) row[j] = 0.0f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, iP, L, 1.0f, m.data(), L, X, ldx, 1.0f, Y, ldy);
      for (int64_t l = 0; l < L; ++l) {
        for (int64_t p = 0; p < P; ++p) Y[l * ldy + p] += s.d[h] * X[l * ldx + p];
      }
      const float total = std::exp(acum[L - 1]);
      for (int64_t j = 0; j < L; ++j) {
        const float c = std::exp(acum[L - 1] - acum[j]) * dt[j];
        for (int64_t p = 0; p < P; ++p) xs[j * P + p] = c * X[j * ldx + p];
      }
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, iP, iN, L, 1.0f, xs.data(), iP, B, ldbc, total, st, iN);
    }
  }
}

}  // namespace hpd::kernels
