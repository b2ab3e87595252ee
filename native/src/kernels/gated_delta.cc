// Gated DeltaNet (Qwen3-Next / Qwen3.5 linear attention): the delta rule with a per-token decay,
// one state S [dv, dk] per value head. Preconditions (checked in napi/kernels_families.cc):
// value_heads % key_heads == 0, every view holds `tokens` rows of its stride.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {
namespace {

constexpr float kL2Eps = 1e-6f;  // FLA's l2norm epsilon (inside the sqrt, on the sum of squares)

inline float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }
inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// dst = src / sqrt(Σ src² + eps) · scale.
inline void l2_normalize(const float* src, float* dst, int64_t n, float scale) {
  const float inv = scale / std::sqrt(sumsq_f32(src, n) + kL2Eps);
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * inv;
}

// The per-token scalars of head h: decay exponent g and write strength beta.
inline void gate_and_beta(const GdnArgs& s, int64_t t, int64_t h, float* g, float* beta) {
  *g = s.a_neg[h] * softplus(s.a[t * s.ld_ba + h] + s.dt_bias[h]);
  *beta = sigmoid(s.b[t * s.ld_ba + h]);
}

}  // namespace

void gdn_sequential(const GdnArgs& s, int ith, int nth) {
  // Per token: S = e^g S; kv = S k̂; S += beta (v − kv) ⊗ k̂; o = S q̂ — one state row (one value
  // channel, dk long) at a time, so the row stays in L1 between its update and its two dots.
  int64_t begin, end;
  thread_slice(s.value_heads, ith, nth, &begin, &end);
  const int64_t dk = s.key_dim, dv = s.value_dim, ratio = s.value_heads / s.key_heads;
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
  std::vector<float> q(dk), k(dk);
  for (int64_t h = begin; h < end; ++h) {
    const int64_t kh = h / ratio;
    float* st = s.state + h * dv * dk;
    for (int64_t t = 0; t < s.tokens; ++t) {
      l2_normalize(s.q + t * s.ld_qkv + kh * dk, q.data(), dk, q_scale);
      l2_normalize(s.k + t * s.ld_qkv + kh * dk, k.data(), dk, 1.0f);
      float g, beta;
      gate_and_beta(s, t, h, &g, &beta);
      const float decay = std::exp(g);
      const float* v = s.v + t * s.ld_qkv + h * dv;
      float* o = s.out + (t * s.value_heads + h) * dv;
      for (int64_t j = 0; j < dv; ++j) {
        float* row = st + j * dk;
        for (int64_t i = 0; i < dk; ++i) row[i] *= decay;
        const float delta = beta * (v[j] - dot_f32(row, k.data(), dk));
        for (int64_t i = 0; i < dk; ++i) row[i] += delta * k[i];
        o[j] = dot_f32(row, q.data(), dk);
      }
    }
  }
}

void gdn_chunked(const GdnArgs& s, int64_t chunk, int ith, int nth) {
  // WY form per chunk of L tokens (the chunk's own G = inclusive cumsum of g, so e^(G_i) is the
  // decay of the entering state by token i). With Uu = (I + Lo)^-1 (beta v) and
  // W = (I + Lo)^-1 (beta e^G k̂) (forward substitution, strsm), the chunk's corrected values
  // V' = Uu − W Sᵀ make every output and the next state plain products:
  //   o  = (e^G q̂) Sᵀ + P V',  P[i, j] = (q̂_i·k̂_j) e^(G_i − G_j) for j <= i
  //   S' = e^(G_last) S + V'ᵀ (e^(G_last − G) k̂)
  // Six single-threaded OpenBLAS calls per chunk and head (OpenBLAS runs with one thread; this
  // thread owns its slice of heads and their states).
  int64_t begin, end;
  thread_slice(s.value_heads, ith, nth, &begin, &end);
  const int64_t dk = s.key_dim, dv = s.value_dim, ratio = s.value_heads / s.key_heads, H = s.value_heads;
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
  const int iK = static_cast<int>(dk), iV = static_cast<int>(dv);
  std::vector<float> q(chunk * dk), k(chunk * dk), w(chunk * dk), kd(chunk * dk), u(chunk * dv);
  std::vector<float> kk(chunk * chunk), p(chunk * chunk), gcum(chunk), beta(chunk);
  for (int64_t h = begin; h < end; ++h) {
    const int64_t kh = h / ratio;
    float* st = s.state + h * dv * dk;
    for (int64_t t0 = 0; t0 < s.tokens; t0 += chunk) {
      const int64_t L = std::min(chunk, s.tokens - t0);
      const int iL = static_cast<int>(L);
      float run = 0.0f;
      for (int64_t i = 0; i < L; ++i) {
        const int64_t t = t0 + i;
        l2_normalize(s.q + t * s.ld_qkv + kh * dk, q.data() + i * dk, dk, q_scale);
        l2_normalize(s.k + t * s.ld_qkv + kh * dk, k.data() + i * dk, dk, 1.0f);
        float g;
        gate_and_beta(s, t, h, &g, &beta[i]);
        run += g;
        gcum[i] = run;
        const float* v = s.v + t * s.ld_qkv + h * dv;
        for (int64_t j = 0; j < dv; ++j) u[i * dv + j] = beta[i] * v[j];
        const float wscale = beta[i] * std::exp(run);
        for (int64_t j = 0; j < dk; ++j) w[i * dk + j] = wscale * k[i * dk + j];
      }
      // Lo (strictly lower; the unit diagonal is implied by strsm) from k̂ k̂ᵀ.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iL, iL, iK, 1.0f, k.data(), iK, k.data(), iK, 0.0f,
                  kk.data(), iL);
      for (int64_t i = 0; i < L; ++i) {
        for (int64_t j = 0; j < i; ++j) kk[i * L + j] *= beta[i] * std::exp(gcum[i] - gcum[j]);
      }
      cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, iL, iV, 1.0f, kk.data(), iL, u.data(),
                  iV);
      cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, iL, iK, 1.0f, kk.data(), iL, w.data(),
                  iK);
      // V' = Uu − W Sᵀ (in u).
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iL, iV, iK, -1.0f, w.data(), iK, st, iK, 1.0f, u.data(), iV);
      // P = q̂ k̂ᵀ, decayed and causally masked.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iL, iL, iK, 1.0f, q.data(), iK, k.data(), iK, 0.0f,
                  p.data(), iL);
      for (int64_t i = 0; i < L; ++i) {
        for (int64_t j = 0; j <= i; ++j) p[i * L + j] *= std::exp(gcum[i] - gcum[j]);
        for (int64_t j = i + 1; j < L; ++j) p[i * L + j] = 0.0f;
      }
      // o = (e^G q̂) Sᵀ + P V'; q is scaled in place (not needed afterwards).
      for (int64_t i = 0; i < L; ++i) {
        const float e = std::exp(gcum[i]);
        for (int64_t j = 0; j < dk; ++j) q[i * dk + j] *= e;
      }
      float* o = s.out + (t0 * H + h) * dv;
      const int ldo = static_cast<int>(H * dv);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iL, iV, iK, 1.0f, q.data(), iK, st, iK, 0.0f, o, ldo);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, iL, iV, iL, 1.0f, p.data(), iL, u.data(), iV, 1.0f, o, ldo);
      // S' = e^(G_last) S + V'ᵀ (e^(G_last − G) k̂).
      const float last = gcum[L - 1];
      for (int64_t i = 0; i < L; ++i) {
        const float e = std::exp(last - gcum[i]);
        for (int64_t j = 0; j < dk; ++j) kd[i * dk + j] = e * k[i * dk + j];
      }
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, iV, iK, iL, 1.0f, u.data(), iV, kd.data(), iK, std::exp(last),
                  st, iK);
    }
  }
}

}  // namespace hpd::kernels
