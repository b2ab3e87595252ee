// The kernels the hybrid families add to the "kernels" surface (Granite-4.0-H, Falcon-H1,
// Qwen3-Next / Qwen3.5, Nemotron-H MoE): per-column multipliers, gated attention, per-head
// norms, the Gated DeltaNet scan and the MoE router and experts. Same rules as napi/kernels.cc:
// synchronous on the JS main thread, fanned out over the kernel pool, every view checked to be
// large enough first. Kernels with many arguments take one object of named fields.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "hpd/kernels.h"
#include "hpd/thread_pool.h"
#include "kernel_args.h"
#include "module.h"

namespace hpd::napi {
namespace {

namespace k = ::hpd::kernels;

// mulColumns(x, ld, rows, cols, scale)
Napi::Value mul_columns(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ld = a.int_(1, "ld", 1), rows = a.int_(2, "rows"), cols = a.int_(3, "cols", 1);
  a.check(ld >= cols, "ld must be >= cols");
  float* x = a.f32(0, "x", strided(rows, ld, cols));
  const float* scale = a.f32(4, "scale", cols);
  if (!a.ok()) return a.done();
  dispatch(info, rows * cols, [=](int ith, int nth) { k::mul_columns(x, ld, rows, cols, scale, ith, nth); });
  return a.done();
}

// copyColumns(src, lds, dst, ldd, rows, runs) — runs: Int32Array of (srcStart, dstStart, length) triples
Napi::Value copy_columns(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t lds = a.int_(1, "lds", 1), ldd = a.int_(3, "ldd", 1), rows = a.int_(4, "rows");
  int64_t n = 0;
  const int32_t* runs = a.i32(5, "runs", &n);
  a.check(n % 3 == 0, "runs must hold (srcStart, dstStart, length) triples");
  int64_t src_cols = 0, dst_cols = 0;
  for (int64_t r = 0; a.ok() && r < n / 3; ++r) {
    a.check(runs[3 * r] >= 0 && runs[3 * r + 1] >= 0 && runs[3 * r + 2] >= 0, "runs must be non-negative");
    src_cols = std::max<int64_t>(src_cols, int64_t{runs[3 * r]} + runs[3 * r + 2]);
    dst_cols = std::max<int64_t>(dst_cols, int64_t{runs[3 * r + 1]} + runs[3 * r + 2]);
  }
  a.check(src_cols <= lds && dst_cols <= ldd, "runs must stay inside a row of src and dst");
  const float* src = a.f32(0, "src", strided(rows, lds, src_cols));
  float* dst = a.f32(2, "dst", strided(rows, ldd, dst_cols));
  if (!a.ok()) return a.done();
  dispatch(info, rows * dst_cols, [=](int ith, int nth) { k::copy_columns(src, lds, dst, ldd, rows, runs, n / 3, ith, nth); });
  return a.done();
}

// scaleRows(x, ld, rows, cols, scale, sigmoid?)
Napi::Value scale_rows(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ld = a.int_(1, "ld", 1), rows = a.int_(2, "rows"), cols = a.int_(3, "cols", 1);
  a.check(ld >= cols, "ld must be >= cols");
  float* x = a.f32(0, "x", strided(rows, ld, cols));
  const float* scale = a.f32(4, "scale", rows);
  const bool sigmoid = a.flag(5);
  if (!a.ok()) return a.done();
  dispatch(info, rows * cols, [=](int ith, int nth) { k::scale_rows(x, ld, rows, cols, scale, sigmoid, ith, nth); });
  return a.done();
}

// scaleInplace(x, n, alpha)
Napi::Value scale_inplace(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.int_(1, "n");
  const float alpha = static_cast<float>(a.num(2, "alpha"));
  float* x = a.f32(0, "x", n);
  if (!a.ok()) return a.done();
  dispatch(info, n, [=](int ith, int nth) { k::scale_inplace(x, n, alpha, ith, nth); });
  return a.done();
}

// sigmoidMul(x, gate, ldg, rows, cols)
Napi::Value sigmoid_mul(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldg = a.int_(2, "ldg", 1), rows = a.int_(3, "rows"), cols = a.int_(4, "cols", 1);
  a.check(ldg >= cols, "ldg must be >= cols");
  float* x = a.f32(0, "x", rows * cols);
  const float* gate = a.f32(1, "gate", strided(rows, ldg, cols));
  if (!a.ok()) return a.done();
  dispatch(info, rows * cols, [=](int ith, int nth) { k::sigmoid_mul(x, gate, ldg, rows, cols, ith, nth); });
  return a.done();
}

// headRmsNorm(x, ldx, tokens, heads, headDim, w, eps)
Napi::Value head_rms_norm(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldx = a.int_(1, "ldx", 1), tokens = a.int_(2, "tokens"), heads = a.int_(3, "heads", 1),
                hd = a.int_(4, "headDim", 1);
  const float eps = static_cast<float>(a.num(6, "eps"));
  a.check(ldx >= heads * hd, "ldx must be >= heads * headDim");
  float* x = a.f32(0, "x", strided(tokens, ldx, heads * hd));
  const float* w = a.f32(5, "w", hd);
  if (!a.ok()) return a.done();
  dispatch(info, tokens * heads * hd, [=](int, int) { k::head_rms_norm(x, ldx, tokens, heads, hd, w, eps); }, true);
  return a.done();
}

// gdnScan({q, k, v, ldQkv, b, a, ldBa, aNeg, dtBias, state, out, tokens, keyHeads, valueHeads, keyDim, valueDim, chunk})
Napi::Value gdn_scan(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) {
    Args bad(info);
    bad.check(false, "gdnScan takes one arguments object");
    return bad.done();
  }
  Args a(info.Env(), info[0].As<Napi::Object>());
  k::GdnArgs s{};
  s.tokens = a.int_(0, "tokens");
  s.key_heads = a.int_(0, "keyHeads", 1);
  s.value_heads = a.int_(0, "valueHeads", 1);
  s.key_dim = a.int_(0, "keyDim", 1);
  s.value_dim = a.int_(0, "valueDim", 1);
  s.ld_qkv = a.int_(0, "ldQkv", 1);
  s.ld_ba = a.int_(0, "ldBa", 1);
  const int64_t chunk = a.int_(0, "chunk");
  const int64_t T = s.tokens, Hk = s.key_heads, Hv = s.value_heads, dk = s.key_dim, dv = s.value_dim;
  a.check(Hv % Hk == 0, "valueHeads must be a multiple of keyHeads");
  a.check(s.ld_qkv >= std::max(Hk * dk, Hv * dv) && s.ld_ba >= Hv, "row strides must cover a row");
  s.q = a.f32(0, "q", strided(T, s.ld_qkv, Hk * dk));
  s.k = a.f32(0, "k", strided(T, s.ld_qkv, Hk * dk));
  s.v = a.f32(0, "v", strided(T, s.ld_qkv, Hv * dv));
  s.b = a.f32(0, "b", strided(T, s.ld_ba, Hv));
  s.a = a.f32(0, "a", strided(T, s.ld_ba, Hv));
  s.a_neg = a.f32(0, "aNeg", Hv);
  s.dt_bias = a.f32(0, "dtBias", Hv);
  s.state = a.f32(0, "state", Hv * dv * dk);
  s.out = a.f32(0, "out", T * Hv * dv);
  if (!a.ok()) return a.done();
  retain(info[0]);
  dispatch(info, T * Hv * dv * dk, [=](int ith, int nth) {
    if (chunk > 0) {
      k::gdn_chunked(s, chunk, ith, nth);
    } else {
      k::gdn_sequential(s, ith, nth);
    }
  });
  return a.done();
}

// moeRoute({logits, tokens, experts, topK, kind, normTopk, bias?, nGroup?, topkGroup?, scale?, ids, weights})
Napi::Value moe_route(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) {
    Args bad(info);
    bad.check(false, "moeRoute takes one arguments object");
    return bad.done();
  }
  Args a(info.Env(), info[0].As<Napi::Object>());
  k::RouteArgs r{};
  r.tokens = a.int_(0, "tokens");
  r.experts = a.int_(0, "experts", 1);
  r.top_k = a.int_(0, "topK", 1);
  const int64_t kind = a.int_(0, "kind");
  r.norm_topk = a.flag(0, "normTopk");
  r.n_group = a.int_or(0, "nGroup", 1, 1);
  r.topk_group = a.int_or(0, "topkGroup", 1, 1);
  r.scale = static_cast<float>(a.num_or(0, "scale", 1.0));
  a.check(kind >= 0 && kind <= 2, "kind must be 0 (softmax-topk), 1 (topk-softmax) or 2 (sigmoid-bias)");
  a.check(r.top_k <= r.experts, "topK must be <= experts");
  a.check(r.experts % r.n_group == 0 && r.topk_group <= r.n_group, "nGroup must divide experts and topkGroup <= nGroup");
  a.check(r.n_group == 1 || r.topk_group * (r.experts / r.n_group) >= r.top_k,
          "the kept groups must hold at least topK experts");
  r.kind = static_cast<k::RouterKind>(kind);
  r.logits = a.f32(0, "logits", r.tokens * r.experts);
  r.bias = a.f32_or_null(0, "bias", r.experts);
  r.ids = a.i32_min(0, "ids", r.tokens * r.top_k);
  r.weights = a.f32(0, "weights", r.tokens * r.top_k);
  if (!a.ok()) return a.done();
  retain(info[0]);
  dispatch(info, r.tokens * r.experts * 8, [=](int ith, int nth) { k::moe_route(r, ith, nth); });
  return a.done();
}

// Tokens per pass of the expert kernels: bounds the grouped scratch (tokens·topK rows of
// hidden + 2·inter + inter + hidden floats) whatever the prefill slice.
constexpr int64_t kMoeTokensPerPass = 256;

// What one moeExperts call's recorded phases share: the bound arguments, the per-expert weight
// views and the grouped scratch. Owned jointly by the phases' commands, freed after the last.
struct MoeCall {
  k::MoeArgs args{};
  std::vector<k::WeightView> gate, up, down;
  std::vector<int64_t> offsets;
  std::vector<int32_t> order, position;
  std::vector<float> xg, h, act, out;
  k::MoePlan plan{};
};

// moeExperts({x, ldx, ids, weights, tokens, topK, hidden, inter, experts, gated, gate?, up, down, y, ldy, accumulate?})
Napi::Value moe_experts(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) {
    Args bad(info);
    bad.check(false, "moeExperts takes one arguments object");
    return bad.done();
  }
  Args a(info.Env(), info[0].As<Napi::Object>());
  auto call = std::make_shared<MoeCall>();
  k::MoeArgs& m = call->args;
  m.tokens = a.int_(0, "tokens");
  m.top_k = a.int_(0, "topK", 1);
  m.hidden = a.int_(0, "hidden", 1);
  m.inter = a.int_(0, "inter", 1);
  m.experts = a.int_(0, "experts", 1);
  m.gated = a.flag(0, "gated");
  m.ldx = a.int_(0, "ldx", 1);
  m.ldy = a.int_(0, "ldy", 1);
  const bool accumulate = !a.present(0, "accumulate") || a.flag(0, "accumulate");
  const int64_t T = m.tokens, K = m.top_k, D = m.hidden, I = m.inter, E = m.experts, U = m.gated ? 2 * I : I;
  a.check(m.ldx >= D && m.ldy >= D, "ldx and ldy must be >= hidden");
  a.check(K <= E, "topK must be <= experts");
  m.x = a.f32(0, "x", strided(T, m.ldx, D));
  m.ids = a.i32_min(0, "ids", T * K);
  m.weights = a.f32(0, "weights", T * K);
  // Per-expert weights: arrays of E typed arrays (each expert's tensor as loaded, a view, or its TP slice).
  const auto experts = [&](const char* name, std::vector<k::WeightView>& out, int64_t elems) {
    if (!a.ok()) return;
    const Napi::Value v = info[0].As<Napi::Object>().Get(name);
    if (!v.IsArray() || v.As<Napi::Array>().Length() != static_cast<uint32_t>(E)) {
      a.check(false, std::string(name) + " must be an array of one weight per expert (" + std::to_string(E) + ")");
      return;
    }
    out.resize(E);
    Napi::Array list = v.As<Napi::Array>();
    for (int64_t e = 0; e < E && a.ok(); ++e) {
      out[e] = a.weight_of(list.Get(static_cast<uint32_t>(e)), std::string(name) + "[" + std::to_string(e) + "]", elems);
    }
  };
  if (m.gated) experts("gate", call->gate, I * D);
  experts("up", call->up, I * D);
  experts("down", call->down, D * I);
  m.gate = m.gated ? call->gate.data() : nullptr;
  m.up = call->up.data();
  m.down = call->down.data();
  m.y = a.f32(0, "y", strided(T, m.ldy, D));
  if (!a.ok()) return a.done();
  // Ids are checked now when they are already known; a recorded call computes them later (the
  // router's own output), and moe_plan skips any id outside the experts.
  if (!recording()) {
    for (int64_t i = 0; a.ok() && i < T * K; ++i) {
      a.check(m.ids[i] >= 0 && m.ids[i] < E, "ids[" + std::to_string(i) + "] = " + std::to_string(m.ids[i]) + " is not an expert");
    }
    if (!a.ok()) return a.done();
  }
  retain(info[0]);
  const int64_t pass = std::max<int64_t>(1, std::min(T, kMoeTokensPerPass)), rows = pass * K;
  call->offsets.resize(E + 1);
  call->order.resize(rows);
  call->position.resize(rows);
  call->xg.resize(rows * D);
  call->h.resize(rows * U);
  call->act.resize(rows * I);
  call->out.resize(rows * D);
  call->plan = k::MoePlan{call->offsets.data(), call->order.data(), call->position.data(), call->xg.data(), call->h.data(),
                          call->act.data(), call->out.data()};
  for (int64_t t0 = 0; t0 < T; t0 += pass) {
    k::MoeArgs part = m;
    part.tokens = std::min(pass, T - t0);
    part.x = m.x + t0 * m.ldx;
    part.ids = m.ids + t0 * K;
    part.weights = m.weights + t0 * K;
    part.y = m.y + t0 * m.ldy;
    const int64_t pairs = part.tokens * K;
    dispatch(info, pairs * D, [call, part](int, int) { k::moe_plan(part, call->plan); }, true);
    dispatch(info, pairs * U * D, [call, part](int ith, int nth) { k::moe_up(part, call->plan, ith, nth); });
    dispatch(info, pairs * U, [call, part](int ith, int nth) { k::moe_activate(part, call->plan, ith, nth); });
    dispatch(info, pairs * D * I, [call, part](int ith, int nth) { k::moe_down(part, call->plan, ith, nth); });
    dispatch(info, pairs * D, [call, part, accumulate](int ith, int nth) { k::moe_combine(part, call->plan, accumulate, ith, nth); });
  }
  return a.done();
}

}  // namespace

void init_family_kernels(Napi::Env env, Napi::Object s) {
  s.Set("mulColumns", Napi::Function::New(env, mul_columns));
  s.Set("copyColumns", Napi::Function::New(env, copy_columns));
  s.Set("scaleRows", Napi::Function::New(env, scale_rows));
  s.Set("scaleInplace", Napi::Function::New(env, scale_inplace));
  s.Set("sigmoidMul", Napi::Function::New(env, sigmoid_mul));
  s.Set("headRmsNorm", Napi::Function::New(env, head_rms_norm));
  s.Set("gdnScan", Napi::Function::New(env, gdn_scan));
  s.Set("moeRoute", Napi::Function::New(env, moe_route));
  s.Set("moeExperts", Napi::Function::New(env, moe_experts));
}

}  // namespace hpd::napi
