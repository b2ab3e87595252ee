#include <cmath>
#include <vector>

#include "hpd/kernels.h"

namespace hpd::kernels {
namespace {

inline float* k_at(const PagedKv& kv, int64_t pos, int64_t head, int64_t head_dim) {
  const int64_t block = kv.block_table[pos / kv.block_size], slot = pos % kv.block_size;
  return kv.cache + block * kv.block_stride + kv.k_offset + head * kv.head_stride + slot * head_dim;
}

inline float* v_at(const PagedKv& kv, int64_t pos, int64_t head, int64_t head_dim) {
  const int64_t block = kv.block_table[pos / kv.block_size], slot = pos % kv.block_size;
  return kv.cache + block * kv.block_stride + kv.v_offset + head * kv.head_stride + slot * head_dim;
}

}  // namespace

void kv_cache_write(const PagedKv& kv, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t pos0,
                    int64_t tokens, int64_t kv_heads, int64_t head_dim, int ith, int nth) {
  int64_t begin, end;
  thread_slice(tokens, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    for (int64_t h = 0; h < kv_heads; ++h) {
      float* kd = k_at(kv, pos0 + t, h, head_dim);
      float* vd = v_at(kv, pos0 + t, h, head_dim);
      const float* ks = k + t * ldk + h * head_dim;
      const float* vs = v + t * ldv + h * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) {
        kd[d] = ks[d];
        vd[d] = vs[d];
      }
    }
  }
}

void paged_attention(const PagedKv& kv, const float* q, int64_t ldq, float* o, int64_t pos0, int64_t tokens,
                     int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale, int ith, int nth) {
  // One (query token, query head) pair per work item; keys 0..pos0+t (causal). Scores are kept
  // per pair (at most the context length), softmax in fp32 with the max subtracted.
  int64_t begin, end;
  thread_slice(tokens * q_heads, ith, nth, &begin, &end);
  const int64_t group = q_heads / kv_heads;
  std::vector<float> scores(static_cast<size_t>(pos0 + tokens));
  for (int64_t item = begin; item < end; ++item) {
    const int64_t t = item / q_heads, j = item % q_heads, h = j / group;
    const int64_t ctx = pos0 + t + 1;
    const float* qv = q + t * ldq + j * head_dim;
    float max_score = -INFINITY;
    for (int64_t s = 0; s < ctx; ++s) {
      const float* kv_k = k_at(kv, s, h, head_dim);
      float dot = 0.0f;
      for (int64_t d = 0; d < head_dim; ++d) dot += qv[d] * kv_k[d];
      scores[s] = dot * scale;
      if (scores[s] > max_score) max_score = scores[s];
    }
    float denom = 0.0f;
    for (int64_t s = 0; s < ctx; ++s) {
      scores[s] = std::exp(scores[s] - max_score);
      denom += scores[s];
    }
    float* out = o + (t * q_heads + j) * head_dim;
    for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
    const float inv = 1.0f / denom;
    for (int64_t s = 0; s < ctx; ++s) {
      const float* vv = v_at(kv, s, h, head_dim);
      const float p = scores[s] * inv;
      for (int64_t d = 0; d < head_dim; ++d) out[d] += p * vv[d];
    }
  }
}

}  // namespace hpd::kernels
