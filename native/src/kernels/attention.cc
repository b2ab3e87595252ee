#include <cmath>
#include <vector>

#include <cblas.h>

#include <algorithm>

#include "hpd/kernels.h"
#include "vec.h"

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

namespace {

// Few queries (decode): one (query token, query head) pair per work item, dot products per key.
void attention_rows(const PagedKv& kv, const float* q, int64_t ldq, float* o, int64_t pos0, int64_t tokens,
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
      scores[s] = dot_f32(qv, kv_k, head_dim) * scale;
      if (scores[s] > max_score) max_score = scores[s];
    }
    const float denom = exp_shift_sum(scores.data(), ctx, max_score);
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

constexpr int64_t kQueryTile = 128;

// Many queries (prefill): work item = (query head, tile of up to 128 queries). The tile's K and V
// (one kv head, positions 0..last query) are gathered from the paged blocks into contiguous
// scratch once, then scores = Q·Kᵀ and O = P·V are single-threaded sgemm calls; the causal mask
// and the fp32 softmax run between them. Gathering costs ctx·hd per tile against 2·tile·ctx·hd
// of products, so it is amortised for tiles of 16+ queries.
void attention_tiles(const PagedKv& kv, const float* q, int64_t ldq, float* o, int64_t pos0, int64_t tokens,
                     int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale, int ith, int nth) {
  const int64_t tiles = (tokens + kQueryTile - 1) / kQueryTile;
  int64_t begin, end;
  thread_slice(q_heads * tiles, ith, nth, &begin, &end);
  const int64_t group = q_heads / kv_heads;
  std::vector<float> keys, values, scores;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t j = item / tiles, tile = item % tiles, h = j / group;
    const int64_t t_a = tile * kQueryTile, t_b = std::min(tokens, t_a + kQueryTile), nt = t_b - t_a;
    const int64_t ctx = pos0 + t_b;
    keys.resize(ctx * head_dim);
    values.resize(ctx * head_dim);
    scores.resize(nt * ctx);
    for (int64_t s = 0; s < ctx; ++s) {
      std::copy_n(k_at(kv, s, h, head_dim), head_dim, keys.data() + s * head_dim);
      std::copy_n(v_at(kv, s, h, head_dim), head_dim, values.data() + s * head_dim);
    }
    const int ictx = static_cast<int>(ctx), ihd = static_cast<int>(head_dim), int_ = static_cast<int>(nt);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int_, ictx, ihd, scale, q + t_a * ldq + j * head_dim,
                static_cast<int>(ldq), keys.data(), ihd, 0.0f, scores.data(), ictx);
    std::vector<float> inv(nt);
    for (int64_t r = 0; r < nt; ++r) {
      float* row = scores.data() + r * ctx;
      const int64_t valid = pos0 + t_a + r + 1;
      float max_score = -INFINITY;
      for (int64_t s = 0; s < valid; ++s) max_score = std::max(max_score, row[s]);
      const float denom = exp_shift_sum(row, valid, max_score);
      for (int64_t s = valid; s < ctx; ++s) row[s] = 0.0f;
      inv[r] = 1.0f / denom;
    }
    float* out = o + (t_a * q_heads + j) * head_dim;
    const int ldo = static_cast<int>(q_heads * head_dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int_, ihd, ictx, 1.0f, scores.data(), ictx, values.data(), ihd,
                0.0f, out, ldo);
    for (int64_t r = 0; r < nt; ++r) {
      for (int64_t d = 0; d < head_dim; ++d) out[r * ldo + d] *= inv[r];
    }
  }
}

}  // namespace

void paged_attention(const PagedKv& kv, const float* q, int64_t ldq, float* o, int64_t pos0, int64_t tokens,
                     int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale, int ith, int nth) {
  if (tokens >= 16) {
    attention_tiles(kv, q, ldq, o, pos0, tokens, q_heads, kv_heads, head_dim, scale, ith, nth);
  } else {
    attention_rows(kv, q, ldq, o, pos0, tokens, q_heads, kv_heads, head_dim, scale, ith, nth);
  }
}

}  // namespace hpd::kernels
