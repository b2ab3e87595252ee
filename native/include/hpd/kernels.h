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
                  int64_t n_begin, int64_t n_end, bool accumulate, float alpha = 1.0f);

/**
 * The same product with bf16 weights (the raw 16-bit patterns of a bf16 checkpoint, kept as is in
 * memory): y[m, n_begin:n_end] = alpha · x · w^T (+ y). Compute is fp32 (a bf16 value widens to
 * fp32 exactly by a 16-bit shift), so the result equals linear_slice on the widened weights up
 * to summation order. Up to kBf16DotRows rows: weight-stationary AVX2 dots (each weight row is
 * read once for all rows: decode is memory bound, and bf16 halves the bytes); more rows: tiles
 * of the slice are widened into a per-thread buffer (L2 sized) and multiplied with sgemm.
 */
void linear_slice_bf16(const float* x, int64_t ldx, const uint16_t* w, float* y, int64_t ldy, int64_t m, int64_t k,
                       int64_t n_begin, int64_t n_end, bool accumulate, float alpha = 1.0f);

/** A weight matrix in either storage dtype (exactly one pointer is set). */
struct WeightView {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
};
/** linear_slice or linear_slice_bf16, by the weight's dtype. */
void linear_rows(const float* x, int64_t ldx, WeightView w, float* y, int64_t ldy, int64_t m, int64_t k,
                 int64_t n_begin, int64_t n_end, bool accumulate, float alpha = 1.0f);

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
 * Step 1 of the norm-before-gate variant (Qwen3-Next's gated norm, Falcon-H1 with
 * mamba_norm_before_gate): out = y (copied), sumsq[t, j] = Σ_{c in group j} y[t, c]^2.
 */
void norm_first_sumsq(const float* y, float* out, float* sumsq, int64_t rows, int64_t dim, int64_t group_size,
                      int ith, int nth);
/**
 * Step 2: out[t, c] = w[c] * g[t, c] * rsqrt(sumsq[t, j(c)] / norm_count + eps), then, when z is
 * not null, times silu(z[t, c]) (norm-before-gate). norm_count is the number of channels the
 * statistic covers (group_size, or the full I when one group is split across TP ranks and sumsq
 * was all-reduced).
 */
void gated_norm_apply(float* out, const float* sumsq, const float* w, int64_t rows, int64_t dim, int64_t group_size,
                      int64_t norm_count, float eps, const float* z, int64_t ldz, int ith, int nth);
/**
 * RMSNorm of every head of x [T, heads, head_dim] in place (row stride ldx between tokens):
 * x[t, h, :] = w * x[t, h, :] * rsqrt(mean(x[t, h, :]^2) + eps). Qwen3-Next's q_norm / k_norm.
 */
void head_rms_norm(float* x, int64_t ldx, int64_t tokens, int64_t heads, int64_t head_dim, const float* w, float eps);

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
void embedding(const int32_t* ids, int64_t tokens, WeightView table, int64_t vocab_begin, int64_t vocab_end,
               int64_t dim, float* out);
/**
 * Column runs copied between two row-major matrices: for each run r, dst[t, runs[3r+1] + j] =
 * src[t, runs[3r] + j] for j < runs[3r+2] (a projection computed in the checkpoint's interleaved
 * row order, rearranged into the order the kernels read). Rows split over threads.
 */
void copy_columns(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, const int32_t* runs,
                  int64_t num_runs, int ith, int nth);
/** x[t, c] *= scale[c] for c < cols (row stride ld): per-column multipliers (µP) of a fused projection. */
void mul_columns(float* x, int64_t ld, int64_t rows, int64_t cols, const float* scale, int ith, int nth);
/** x[t, c] *= f(scale[t]) for c < cols (row stride ld): one factor per row (a per-token gate), f = sigmoid or identity. */
void scale_rows(float* x, int64_t ld, int64_t rows, int64_t cols, const float* scale, bool sigmoid, int ith, int nth);
/** x[i] *= alpha. */
void scale_inplace(float* x, int64_t n, float alpha, int ith, int nth);
/** x[t, c] *= sigmoid(gate[t, c]) (gate row stride ldg; x contiguous [rows, cols]): gated attention output. */
void sigmoid_mul(float* x, const float* gate, int64_t ldg, int64_t rows, int64_t cols, int ith, int nth);
/** y[i] += x[i]. */
void add_inplace(float* y, const float* x, int64_t n, int ith, int nth);
/** x[i] = relu(x[i])^2. */
void relu_squared_inplace(float* x, int64_t n, int ith, int nth);
/** out[t, i] = silu(gu[t, i]) * gu[t, inter + i]; gu: [T, 2*inter]. */
void silu_mul(const float* gu, float* out, int64_t tokens, int64_t inter, int ith, int nth);
/**
 * NeoX (rotate-half) RoPE in place on x [T, H, hd] (row stride ldx) at positions pos0 + t, on the
 * first rotary_dim dims of each head (partial rotary; the rest pass through), with r = rotary_dim:
 * x'[i] = x[i] cos - x[i+r/2] sin, x'[i+r/2] = x[i+r/2] cos + x[i] sin, inv_freq[i] = theta^(-2i/r).
 */
void rope_neox(float* x, int64_t ldx, int64_t pos0, int64_t tokens, int64_t heads, int64_t head_dim, float theta,
               int64_t rotary_dim);

// ---- Gated DeltaNet (Qwen3-Next / Qwen3.5 linear attention) --------------------------------
/**
 * One sequence of gated delta rule, per value head h (key head h / (Hv/Hk)):
 *   q̂ = l2norm(q) / sqrt(dk), k̂ = l2norm(k) (eps 1e-6), beta = sigmoid(b), g = a_neg[h] · softplus(a + dt_bias[h])
 *   S = exp(g) S;  S += (beta (v − S k̂)) ⊗ k̂;  o = S q̂
 * with the state S [dv, dk] per head (vLLM's temporal state layout (Hv, dv, dk)).
 */
struct GdnArgs {
  const float* q;        // [T, Hk, dk] (row stride ld_qkv): conv output, before the l2 norm
  const float* k;        // [T, Hk, dk] (row stride ld_qkv)
  const float* v;        // [T, Hv, dv] (row stride ld_qkv)
  int64_t ld_qkv;
  const float* b;        // [T, Hv] raw beta logits (row stride ld_ba)
  const float* a;        // [T, Hv] raw decay input (row stride ld_ba)
  int64_t ld_ba;
  const float* a_neg;    // [Hv]: -exp(A_log)
  const float* dt_bias;  // [Hv]
  float* state;          // [Hv, dv, dk]: initial state in, final state out
  float* out;            // [T, Hv, dv] contiguous
  int64_t tokens, key_heads, value_heads, key_dim, value_dim;
};
/** Token-by-token recurrence (decode, reference). Value heads split over threads. */
void gdn_sequential(const GdnArgs& args, int ith, int nth);
/**
 * Chunked prefill (WY form), chunks of `chunk` tokens: per chunk with G = cumsum(g),
 *   (I + L) U = beta·v, (I + L) W = beta·e^G·k̂, L[i, j] = beta_i (k̂_i·k̂_j) e^(G_i−G_j) (j < i)
 *   V' = U − W Sᵀ;  o = (e^G q̂) Sᵀ + ((q̂ k̂ᵀ) ∘ e^(G_i−G_j), j <= i) V'
 *   S ← e^(G_last) S + V'ᵀ (e^(G_last−G) k̂)
 * equal to gdn_sequential within fp32 rounding. Value heads split over threads.
 */
void gdn_chunked(const GdnArgs& args, int64_t chunk, int ith, int nth);

// ---- mixture of experts --------------------------------------------------------------------
/** How a router turns logits into top-k experts and weights (each family's own definition). */
enum class RouterKind : int32_t {
  kSoftmaxTopk = 0,  // Qwen: p = softmax(logits) over all experts; top-k of p; weights p (renormalised if norm_topk)
  kTopkSoftmax = 1,  // Granite: top-k of logits; weights softmax over the k selected logits
  kSigmoidBias = 2,  // Nemotron-H: s = sigmoid(logits); choose by s + bias (group-limited); weights s
                     //   (renormalised if norm_topk), times scale
};
struct RouteArgs {
  const float* logits;  // [T, E] (fp32 router GEMM)
  int64_t tokens, experts, top_k;
  RouterKind kind;
  bool norm_topk;
  const float* bias;    // [E] selection-only bias (kSigmoidBias) or null
  int64_t n_group, topk_group;  // group-limited choice (kSigmoidBias): keep the topk_group best groups
  float scale;          // routed_scaling_factor (1 elsewhere)
  int32_t* ids;         // [T, top_k] out, by descending selection score (ties: lower id first)
  float* weights;       // [T, top_k] out
};
void moe_route(const RouteArgs& args, int ith, int nth);

/**
 * Routed experts over the tokens routed to each (grouped GEMMs, never a dense loop over all
 * experts): y[t] += Σ_s weights[t, s] · expert_{ids[t, s]}(x[t]). An expert is
 * down(silu(gate·x) · (up·x)) when gated, down(relu(up·x)²) otherwise.
 * The phases below share a plan (tokens grouped by expert) and scratch owned by the caller.
 */
struct MoeArgs {
  const float* x;        // [T, D] (row stride ldx)
  int64_t ldx;
  const int32_t* ids;    // [T, top_k]
  const float* weights;  // [T, top_k]
  int64_t tokens, top_k, hidden, inter, experts;
  bool gated;
  const WeightView* gate;  // [E] of [inter, D] when gated (else null): each expert's own tensor, no stacked copy
  const WeightView* up;    // [E] of [inter, D]
  const WeightView* down;  // [E] of [D, inter]
  float* y;              // [T, D] (row stride ldy), accumulated into
  int64_t ldy;
};
struct MoePlan {
  int64_t* offsets;   // [E + 1]: rows of expert e are [offsets[e], offsets[e+1]) of the grouped buffers
  int32_t* order;     // [T·top_k]: grouped row r holds (token, slot) order[r] = t·top_k + s
  int32_t* position;  // [T·top_k]: inverse of order
  float* xg;          // [T·top_k, D]   gathered inputs
  float* h;           // [T·top_k, U]   [gate | up] outputs (U = 2·inter gated, inter otherwise)
  float* act;         // [T·top_k, inter]
  float* out;         // [T·top_k, D]   expert outputs
};
/** Groups (token, slot) pairs by expert and gathers the inputs (serial; cheap next to the GEMMs). Ids outside [0, experts) contribute nothing. */
void moe_plan(const MoeArgs& args, MoePlan& plan);
/** Up GEMMs: units (expert, 64-row tile of U) split over threads by cost. */
void moe_up(const MoeArgs& args, const MoePlan& plan, int ith, int nth);
/** Activation of every grouped row (rows split over threads). */
void moe_activate(const MoeArgs& args, const MoePlan& plan, int ith, int nth);
/** Down GEMMs: units (expert, 64-column tile of D). */
void moe_down(const MoeArgs& args, const MoePlan& plan, int ith, int nth);
/** y[t] (+)= Σ_s weights[t, s] · out[position[t·k + s]] (tokens split over threads; accumulate false overwrites y). */
void moe_combine(const MoeArgs& args, const MoePlan& plan, bool accumulate, int ith, int nth);

// ---- sampling ------------------------------------------------------------------------------
/**
 * What `sample` cuts before drawing; neutral values: top_k 0, top_p 1, min_p 0. Doubles, as the
 * API's JSON numbers are: a tiny positive top_p (1e-300) must stay positive (a float would
 * underflow it to 0, which reads as "no cut" — the opposite of what was asked).
 */
struct SampleArgs {
  double temperature;  // <= 0: greedy
  int64_t top_k;       // 0: no cut
  double top_p;        // 1 (or <= 0): no cut
  double min_p;        // 0: no cut
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
