// CPU kernels of the hpd engine (N-API free). Everything is fp32, row-major, and ggml-style:
// each kernel states its preconditions and shapes, and the parallel ones take their thread slice
// (ith, nth) and never create threads. The caller (native/src/napi/kernels.cc) fans a kernel out
// over the persistent pool in thread_pool.h. Shapes are written [outer, ..., inner]; `ld*` is a
// row stride in elements (>= the row's length), so kernels can read column slices of a fused
// projection output (z | xBC | dt) without copying.
#pragma once

#include <cstdint>

namespace hpd::kernels {

/** [begin, end) of n items for thread ith of nth: contiguous, balanced slices. */
inline void thread_slice(int64_t n, int ith, int nth, int64_t* begin, int64_t* end) {
  const int64_t per = n / nth, rem = n % nth;
  *begin = ith * per + (ith < rem ? ith : rem);
  *end = *begin + per + (ith < rem ? 1 : 0);
}

// ---- GEMM ----------------------------------------------------------------------------------
/**
 * y[m, n_begin:n_end] (+)= x[m, k] · w[n_begin:n_end, k]^T, torch Linear layout (w is [out, in]).
 * Single-threaded OpenBLAS sgemm on the rows [n_begin, n_end) of w: the caller splits the output
 * features over threads, so OpenBLAS must run with 1 thread (set once at module init).
 * Preconditions: ldx >= k, ldy >= n_end; x, w, y do not overlap.
 */
void linear_slice(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t m, int64_t k,
                  int64_t n_begin, int64_t n_end, bool accumulate);

// ---- norms ---------------------------------------------------------------------------------
/** y[t, :] = w * x[t, :] * rsqrt(mean(x[t, :]^2) + eps) for rows t in the slice. x may equal y. */
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps, int ith, int nth);

/**
 * Mamba2 grouped gated norm, step 1: g = y * silu(z); sumsq[t, j] = Σ_{c in group j} g[t, c]^2.
 * y: [rows, dim] (ld = dim), z: [rows, dim] with row stride ldz; g written to out [rows, dim].
 * groups of group_size contiguous channels; dim % group_size == 0.
 */
void gated_norm_sumsq(const float* y, const float* z, int64_t ldz, float* out, float* sumsq, int64_t rows,
                      int64_t dim, int64_t group_size, int ith, int nth);
/**
 * Step 2: out[t, c] = w[c] * g[t, c] * rsqrt(sumsq[t, j(c)] / norm_count + eps). norm_count is
 * the number of channels the statistic covers (group_size, or the full I when one group is split
 * across TP ranks and sumsq was all-reduced).
 */
void gated_norm_apply(float* out, const float* sumsq, const float* w, int64_t rows, int64_t dim, int64_t group_size,
                      int64_t norm_count, float eps, int ith, int nth);

// ---- Mamba2 causal conv1d ------------------------------------------------------------------
/**
 * Depthwise causal conv over T tokens of one sequence, then silu.
 * xbc: [T, cd] raw conv input (row stride ldx); w: [cd, K]; bias: [cd] or null;
 * state: [cd, K-1] (DS layout: channel-major; state[c, j] = the input K-1-j steps before the
 * first token), read as the history and overwritten with the last K-1 raw inputs;
 * out: [T, cd] contiguous. Channels split over threads.
 */
void conv1d_prefill(const float* xbc, int64_t ldx, const float* w, const float* bias, float* state, float* out,
                    int64_t tokens, int64_t cd, int64_t kernel, int ith, int nth);

// ---- Mamba2 SSM scan -----------------------------------------------------------------------
/** Pointers and sizes of one sequence's SSM inputs; all fp32. */
struct SsmArgs {
  const float* x;        // [T, H, P] (row stride ldx): head-major channels h*P + p
  int64_t ldx;
  const float* b;        // [T, G, N] (row stride ldbc)
  const float* c;        // [T, G, N] (row stride ldbc)
  int64_t ldbc;
  const float* dt_raw;   // [T, H] (row stride lddt): before + dt_bias and softplus
  int64_t lddt;
  const float* dt_bias;  // [H]
  const float* a;        // [H]: A = -exp(A_log)
  const float* d;        // [H]
  float* state;          // [H, P, N]: initial state in, final state out
  float* y;              // [T, H, P] contiguous
  int64_t tokens, heads, head_dim, groups, state_size;
};
/** Step-by-step recurrence (reference and decode). Heads split over threads. */
void ssm_scan_sequential(const SsmArgs& args, int ith, int nth);
/** Chunked SSD (prefill): same result as sequential within fp32 rounding. */
void ssm_scan_chunked(const SsmArgs& args, int64_t chunk, int ith, int nth);

// ---- paged attention -----------------------------------------------------------------------
/**
 * Where a sequence's K/V live: kernel block j of the sequence is block_table[j]; inside the cache
 * tensor (fp32 elements) K of (block b, kv head h, slot s, dim d) is at
 * b*block_stride + k_offset + h*head_stride + s*head_dim + d, and V at the same with v_offset
 * (HND halves: [K: H x kb x D | V: H x kb x D]).
 */
struct PagedKv {
  float* cache;
  const int32_t* block_table;
  int64_t num_table_blocks;
  int64_t block_size;
  int64_t block_stride, k_offset, v_offset, head_stride;
};
/** Writes k, v [T, Hkv, hd] (row strides ldk, ldv) for positions pos0..pos0+T-1. Tokens split over threads. */
void kv_cache_write(const PagedKv& kv, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t pos0,
                    int64_t tokens, int64_t kv_heads, int64_t head_dim, int ith, int nth);
/**
 * o[t, j, :] = softmax_s(q[t,j]·k[s,kv(j)] * scale, s <= pos0 + t) · v, kv(j) = j / (Hq/Hkv).
 * q: [T, Hq, hd] (row stride ldq); o: [T, Hq, hd] contiguous. (query, head) pairs split over threads.
 */
void paged_attention(const PagedKv& kv, const float* q, int64_t ldq, float* o, int64_t pos0, int64_t tokens,
                     int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale, int ith, int nth);

// ---- elementwise, embeddings, RoPE ---------------------------------------------------------
/** out[t, :] = table[ids[t] - vocab_begin, :] if vocab_begin <= ids[t] < vocab_end, else 0 (vocab-parallel shard). */
void embedding(const int32_t* ids, int64_t tokens, const float* table, int64_t vocab_begin, int64_t vocab_end,
               int64_t dim, float* out);
/** y[i] += x[i]. */
void add_inplace(float* y, const float* x, int64_t n, int ith, int nth);
/** x[i] = relu(x[i])^2. */
void relu_squared_inplace(float* x, int64_t n, int ith, int nth);
/** out[t, i] = silu(gu[t, i]) * gu[t, inter + i]; gu: [T, 2*inter]. */
void silu_mul(const float* gu, float* out, int64_t tokens, int64_t inter, int ith, int nth);
/**
 * NeoX (rotate-half) RoPE in place on x [T, H, hd] (row stride ldx) at positions pos0 + t:
 * x'[i] = x[i] cos - x[i+hd/2] sin, x'[i+hd/2] = x[i+hd/2] cos + x[i] sin, inv_freq[i] = theta^(-2i/hd).
 */
void rope_neox(float* x, int64_t ldx, int64_t pos0, int64_t tokens, int64_t heads, int64_t head_dim, float theta);

// ---- sampling ------------------------------------------------------------------------------
/** What `sample` cuts before drawing; neutral values: top_k 0, top_p 1, min_p 0. */
struct SampleArgs {
  float temperature;  // <= 0: greedy
  int64_t top_k;      // 0: no cut
  float top_p;        // 1: no cut
  float min_p;        // 0: no cut
};
/**
 * Picks a token from logits [vocab]. temperature <= 0 → greedy (lowest id among ties).
 * Otherwise softmax(logits / T); drop tokens with p < min_p · p_max, keep the top_k (0 = all) most
 * likely, then the smallest prefix with mass >= top_p, renormalise, and invert the CDF at `uniform`
 * in [0, 1). Tokens at -inf are never drawn while another token is left.
 */
int32_t sample(const float* logits, int64_t vocab, const SampleArgs& args, double uniform);
/**
 * log Σ exp(logits) over [vocab] (returned), and the k largest logits as (id, logit − lse),
 * most likely first, ties by lower id: top_ids [k], top_logprobs [k]. k may be 0.
 */
double log_softmax_top(const float* logits, int64_t vocab, int64_t k, int32_t* top_ids, float* top_logprobs);

/** dst[i] = src[i] for i in the thread's slice of [0, n); dst and src do not overlap. */
void copy(float* dst, const float* src, int64_t n, int ith, int nth);

}  // namespace hpd::kernels
