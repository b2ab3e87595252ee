#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "hpd/kernels.h"

namespace hpd::kernels {

int32_t sample(const float* logits, int64_t vocab, const SampleArgs& args, double uniform) {
  if (args.temperature <= 0.0) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return static_cast<int32_t>(best);
  }
  // Sort ids by logit (descending; ties by id so the order is deterministic). Every cut below
  // (min-p, top-k, top-p) keeps a prefix of this order, so they compose as vLLM applies them.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  int64_t keep = (args.top_k > 0 && args.top_k < vocab) ? args.top_k : vocab;
  const double max_logit = logits[order[0]];
  // A logit of -inf (a token masked by min_tokens or logit_bias) is never sampled.
  while (keep > 1 && std::isinf(logits[order[keep - 1]]) && logits[order[keep - 1]] < 0) --keep;
  std::vector<double> probs(static_cast<size_t>(keep));
  for (int64_t i = 0; i < keep; ++i) probs[i] = std::exp((static_cast<double>(logits[order[i]]) - max_logit) / args.temperature);
  // min-p (vLLM MinPLogitsProcessor, after temperature): drop tokens whose probability is below
  // min_p times the most likely one's. probs[i] is already p_i / p_max.
  if (args.min_p > 0.0) {
    int64_t kept = 1;
    while (kept < keep && probs[kept] >= args.min_p) ++kept;
    keep = kept;
  }
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) total += probs[i];
  // Nucleus: the smallest prefix whose mass (renormalised over what is left) reaches top_p.
  if (args.top_p > 0.0 && args.top_p < 1.0) {
    double mass = 0.0;
    for (int64_t i = 0; i < keep; ++i) {
      mass += probs[i] / total;
      if (mass >= args.top_p) {
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

double log_softmax_top(const float* logits, int64_t vocab, int64_t k, int32_t* top_ids, float* top_logprobs) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  const double lse = max_logit + std::log(sum);
  if (k > 0) {
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int64_t i = 0; i < k; ++i) {
      top_ids[i] = order[i];
      top_logprobs[i] = static_cast<float>(logits[order[i]] - lse);
    }
  }
  return lse;
}

}  // namespace hpd::kernels
