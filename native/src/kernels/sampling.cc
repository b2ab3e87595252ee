#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "hpd/kernels.h"

namespace hpd::kernels {

int32_t sample(const float* logits, int64_t vocab, float temperature, int64_t top_k, float top_p, double uniform) {
  if (temperature <= 0.0f) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return static_cast<int32_t>(best);
  }
  // Sort ids by logit (descending; ties by id so the order is deterministic), cut top-k.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const int64_t keep_k = (top_k > 0 && top_k < vocab) ? top_k : vocab;
  std::vector<double> probs(static_cast<size_t>(keep_k));
  const double max_logit = logits[order[0]];
  double total = 0.0;
  for (int64_t i = 0; i < keep_k; ++i) {
    probs[i] = std::exp((static_cast<double>(logits[order[i]]) - max_logit) / temperature);
    total += probs[i];
  }
  // Nucleus: the smallest prefix whose mass reaches top_p (at least one token).
  int64_t keep = keep_k;
  if (top_p > 0.0f && top_p < 1.0f) {
    double mass = 0.0;
    for (int64_t i = 0; i < keep_k; ++i) {
      mass += probs[i] / total;
      if (mass >= top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = 0.0;
  for (int64_t i = 0; i < keep; ++i) kept += probs[i];
  const double target = uniform * kept;
  double cum = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    cum += probs[i];
    if (target < cum) return order[i];
  }
  return order[keep - 1];
}

}  // namespace hpd::kernels
