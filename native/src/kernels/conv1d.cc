#include <cmath>
#include <vector>

#include "hpd/kernels.h"

namespace hpd::kernels {

void conv1d_prefill(const float* xbc, int64_t ldx, const float* w, const float* bias, float* state, float* out,
                    int64_t tokens, int64_t cd, int64_t kernel, int ith, int nth) {
  // Per channel c: window = [state[c, 0..K-2], xbc[0..T-1, c]] (K-1+T raw values);
  // out[t, c] = silu(bias[c] + Σ_k w[c, k] * window[t + k]); new state = last K-1 of window.
  int64_t begin, end;
  thread_slice(cd, ith, nth, &begin, &end);
  const int64_t hist = kernel - 1;
  std::vector<float> window(static_cast<size_t>(hist + tokens));
  for (int64_t c = begin; c < end; ++c) {
    float* st = state + c * hist;
    for (int64_t j = 0; j < hist; ++j) window[j] = st[j];
    for (int64_t t = 0; t < tokens; ++t) window[hist + t] = xbc[t * ldx + c];
    const float* wc = w + c * kernel;
    const float b = bias ? bias[c] : 0.0f;
    for (int64_t t = 0; t < tokens; ++t) {
      float acc = b;
      for (int64_t k = 0; k < kernel; ++k) acc += wc[k] * window[t + k];
      out[t * cd + c] = acc / (1.0f + std::exp(-acc));
    }
    for (int64_t j = 0; j < hist; ++j) st[j] = window[tokens + j];
  }
}

}  // namespace hpd::kernels
