#include <cmath>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {

void conv1d_prefill(const float* xbc, int64_t ldx, const float* w, const float* bias, float* state, float* out,
                    int64_t tokens, int64_t cd, int64_t kernel, int ith, int nth) {
  // Per channel c: window = [state[c, 0..K-2], xbc[0..T-1, c]] (K-1+T raw values);
  // out[t, c] = silu(bias[c] + Σ_k w[c, k] * window[t + k]); new state = last K-1 of window.
  // Token-major over this thread's channel range so the inner loop runs along contiguous
  // channels of a row (vectorized); weights and history are transposed to [K, channels] first.
  int64_t c0, c1;
  thread_slice(cd, ith, nth, &c0, &c1);
  const int64_t nc = c1 - c0, hist = kernel - 1;
  if (nc <= 0) return;
  std::vector<float> wt(kernel * nc), window_head(hist * nc);
  for (int64_t i = 0; i < nc; ++i) {
    for (int64_t k = 0; k < kernel; ++k) wt[k * nc + i] = w[(c0 + i) * kernel + k];
    for (int64_t j = 0; j < hist; ++j) window_head[j * nc + i] = state[(c0 + i) * hist + j];
  }
  // Row `idx` of the window [history | tokens], restricted to this thread's channels.
  auto row = [&](int64_t idx) -> const float* {
    return idx < hist ? window_head.data() + idx * nc : xbc + (idx - hist) * ldx + c0;
  };
  for (int64_t t = 0; t < tokens; ++t) {
    float* o = out + t * cd + c0;
    for (int64_t i = 0; i < nc; ++i) o[i] = bias ? bias[c0 + i] : 0.0f;
    for (int64_t k = 0; k < kernel; ++k) {
      const float* r = row(t + k);
      const float* wk = wt.data() + k * nc;
      for (int64_t i = 0; i < nc; ++i) o[i] += wk[i] * r[i];
    }
    silu_inplace(o, nc);
  }
  for (int64_t j = 0; j < hist; ++j) {
    const float* r = row(tokens + j);
    for (int64_t i = 0; i < nc; ++i) state[(c0 + i) * hist + j] = r[i];
  }
}

}  // namespace hpd::kernels
