// JS surface "kernels": wrappers over native/include/hpd/kernels.h. A call either runs now, on the
// JS main thread fanned out over the kernel pool (parallel_for), or, between record() and
// submit(), is recorded into a Program that one AsyncWorker later runs in order on a libuv thread
// (the engine's forward pass: the JS thread stays free for control traffic while it computes).
// No N-API call ever happens off the main thread: a recorded call keeps raw pointers plus a
// reference to every typed array it was given, so the memory stays alive until the program ends.
// Arguments are validated in src/native/kernels-binding.ts; here only what guards memory safety
// is re-checked (every view is large enough for what the kernel will touch), at call time.
#include <cblas.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <cmath>
#include <string>
#include <vector>

#include "hpd/kernels.h"
#include "hpd/thread_pool.h"
#include "kernel_args.h"
#include "module.h"

namespace hpd::napi {
namespace {

namespace k = ::hpd::kernels;

// One kernel call with its arguments bound: fn(ith, nth) over `work` units (small work runs on
// the calling thread alone; `serial` kernels never fan out).
struct Command {
  int64_t work;
  bool serial;
  std::function<void(int, int)> fn;
};

void execute(const Command& c) {
  if (c.serial || c.work < kSerialWork || k::pool_threads() == 1) {
    c.fn(0, 1);
  } else {
    k::parallel_for(c.fn);
  }
}

// Calls recorded between record() and submit(), and a reference to every typed array they read
// or write (owned by the program: released on the main thread when its worker is destroyed).
struct Program {
  std::vector<Command> commands;
  std::vector<Napi::Reference<Napi::Value>> views;
};

// The recording in progress (main thread only), and whether a submitted program still runs:
// the engine's scratch buffers are shared by all its steps, so programs never overlap.
std::unique_ptr<Program> g_recording;
std::atomic<bool> g_program_running{false};

void dispatch_impl(const Napi::CallbackInfo& info, int64_t work, std::function<void(int, int)> fn, bool serial) {
  if (!g_recording) {
    execute(Command{work, serial, fn});
    return;
  }
  for (size_t i = 0; i < info.Length(); ++i) {
    if (info[i].IsTypedArray()) g_recording->views.push_back(Napi::Persistent(info[i]));
  }
  g_recording->commands.push_back(Command{work, serial, std::move(fn)});
}

// Typed arrays inside an object or array argument (one level: {q, k, up: [..]}), kept alive by the recording.
void retain_impl(const Napi::Value& value, int depth) {
  if (!g_recording || value.IsEmpty() || value.IsUndefined() || value.IsNull()) return;
  if (value.IsTypedArray()) {
    g_recording->views.push_back(Napi::Persistent(value));
    return;
  }
  if (depth > 1 || !value.IsObject()) return;
  if (value.IsArray()) {
    Napi::Array list = value.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) retain_impl(list.Get(i), depth + 1);
    return;
  }
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) retain_impl(obj.Get(keys.Get(i)), depth + 1);
}

class ProgramWorker : public Napi::AsyncWorker {
 public:
  ProgramWorker(Napi::Env env, std::unique_ptr<Program> program)
      : Napi::AsyncWorker(env, "hpd:kernels.program"), program_(std::move(program)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  // Off the main thread: only the bound pointers and plain values are touched.
  void Execute() override {
    for (const Command& c : program_->commands) execute(c);
  }
  void OnOK() override {
    g_program_running = false;
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& error) override {
    g_program_running = false;
    deferred_.Reject(error.Value());
  }

 private:
  std::unique_ptr<Program> program_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value busy(const Napi::CallbackInfo& info, const char* what) {
  status_to_error(info.Env(), Status(StatusCode::kInvalidArgument, what)).ThrowAsJavaScriptException();
  return info.Env().Undefined();
}

// record(): later kernel calls are recorded, not run, until submit() or discard().
Napi::Value record(const Napi::CallbackInfo& info) {
  if (g_recording) return busy(info, "record(): a recording is already open");
  if (g_program_running) return busy(info, "record(): a submitted program is still running");
  g_recording = std::make_unique<Program>();
  return info.Env().Undefined();
}

// submit() -> Promise<void>: runs the recorded calls in order off the main thread.
Napi::Value submit(const Napi::CallbackInfo& info) {
  if (!g_recording) return busy(info, "submit(): nothing is being recorded");
  g_program_running = true;
  auto* worker = new ProgramWorker(info.Env(), std::move(g_recording));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// discard(): drops the recording (a forward pass that threw while recording).
Napi::Value discard(const Napi::CallbackInfo& info) {
  g_recording.reset();
  return info.Env().Undefined();
}

}  // namespace

void dispatch(const Napi::CallbackInfo& info, int64_t work, std::function<void(int, int)> fn, bool serial) {
  dispatch_impl(info, work, std::move(fn), serial);
}

void retain(const Napi::Value& value) { retain_impl(value, 0); }

bool recording() { return g_recording != nullptr; }

namespace {


// linear(x, ldx, w, y, ldy, m, k, n, accumulate, alpha?) — w fp32 (Float32Array) or bf16 (Uint16Array)
Napi::Value linear(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldx = a.int_(1, "ldx", 1), ldy = a.int_(4, "ldy", 1), m = a.int_(5, "m"), kk = a.int_(6, "k", 1),
                n = a.int_(7, "n", 1);
  a.check(ldx >= kk && ldy >= n, "ldx must be >= k and ldy >= n");
  const float* x = a.f32(0, "x", strided(m, ldx, kk));
  const k::WeightView w = a.weight(2, "w", n * kk);
  float* y = a.f32(3, "y", strided(m, ldy, n));
  const bool acc = a.flag(8);
  const float alpha = static_cast<float>(a.num_or(9, "alpha", 1.0));
  if (!a.ok()) return a.done();
  // Split output features over the pool; keep slices a multiple of 16 wide for the packing.
  dispatch(info, m * n * kk, [=](int ith, int nth) {
    const int64_t units = (n + 15) / 16;
    int64_t b, e;
    k::thread_slice(units, ith, nth, &b, &e);
    k::linear_rows(x, ldx, w, y, ldy, m, kk, std::min(n, b * 16), std::min(n, e * 16), acc, alpha);
  });
  return a.done();
}

// rmsNorm(x, w, y, rows, dim, eps)
Napi::Value rms_norm(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t rows = a.int_(3, "rows"), dim = a.int_(4, "dim", 1);
  const float eps = static_cast<float>(a.num(5, "eps"));
  const float* x = a.f32(0, "x", rows * dim);
  const float* w = a.f32(1, "w", dim);
  float* y = a.f32(2, "y", rows * dim);
  if (!a.ok()) return a.done();
  dispatch(info, rows * dim, [=](int ith, int nth) { k::rms_norm(x, w, y, rows, dim, eps, ith, nth); });
  return a.done();
}

// gatedNormSumsq(y, z, ldz, out, sumsq, rows, dim, groupSize, normFirst?) — normFirst: out = y, Σy² (z unused)
Napi::Value gated_norm_sumsq(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldz = a.int_(2, "ldz", 1), rows = a.int_(5, "rows"), dim = a.int_(6, "dim", 1),
                gs = a.int_(7, "groupSize", 1);
  a.check(dim % gs == 0 && ldz >= dim, "dim must be a multiple of groupSize and ldz >= dim");
  const float* y = a.f32(0, "y", rows * dim);
  const float* z = a.f32(1, "z", strided(rows, ldz, dim));
  float* out = a.f32(3, "out", rows * dim);
  float* sumsq = a.f32(4, "sumsq", rows * (dim / (gs ? gs : 1)));
  if (!a.ok()) return a.done();
  const bool norm_first = a.flag(8);
  dispatch(info, rows * dim, [=](int ith, int nth) {
    if (norm_first) {
      k::norm_first_sumsq(y, out, sumsq, rows, dim, gs, ith, nth);
    } else {
      k::gated_norm_sumsq(y, z, ldz, out, sumsq, rows, dim, gs, ith, nth);
    }
  });
  return a.done();
}

// gatedNormApply(out, sumsq, w, rows, dim, groupSize, normCount, eps, z?, ldz?) — z: times silu(z) after the norm
Napi::Value gated_norm_apply(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t rows = a.int_(3, "rows"), dim = a.int_(4, "dim", 1), gs = a.int_(5, "groupSize", 1),
                count = a.int_(6, "normCount", 1);
  const float eps = static_cast<float>(a.num(7, "eps"));
  a.check(dim % gs == 0, "dim must be a multiple of groupSize");
  float* out = a.f32(0, "out", rows * dim);
  const float* sumsq = a.f32(1, "sumsq", rows * (dim / (gs ? gs : 1)));
  const float* w = a.f32(2, "w", dim);
  const int64_t ldz = a.int_or(9, "ldz", dim, 1);
  a.check(ldz >= dim, "ldz must be >= dim");
  const float* z = a.f32_or_null(8, "z", strided(rows, ldz, dim));
  if (!a.ok()) return a.done();
  dispatch(info, rows * dim, [=](int ith, int nth) { k::gated_norm_apply(out, sumsq, w, rows, dim, gs, count, eps, z, ldz, ith, nth); });
  return a.done();
}

// conv1d(xbc, ldx, w, bias|null, state, out, tokens, cd, kernel)
Napi::Value conv1d(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldx = a.int_(1, "ldx", 1), tokens = a.int_(6, "tokens"), cd = a.int_(7, "channels", 1),
                kernel = a.int_(8, "kernel", 1);
  a.check(ldx >= cd, "ldx must be >= channels");
  const float* xbc = a.f32(0, "xbc", strided(tokens, ldx, cd));
  const float* w = a.f32(2, "w", cd * kernel);
  const float* bias = a.f32_or_null(3, "bias", cd);
  float* state = a.f32(4, "state", cd * (kernel - 1));
  float* out = a.f32(5, "out", tokens * cd);
  if (!a.ok()) return a.done();
  dispatch(info, tokens * cd * kernel, [=](int ith, int nth) { k::conv1d_prefill(xbc, ldx, w, bias, state, out, tokens, cd, kernel, ith, nth); });
  return a.done();
}

// ssmScan(x, ldx, b, c, ldbc, dtRaw, lddt, dtBias, a, d, state, y, tokens, heads, headDim, groups, stateSize, chunk)
Napi::Value ssm_scan(const Napi::CallbackInfo& info) {
  Args a(info);
  k::SsmArgs s{};
  s.ldx = a.int_(1, "ldx", 1);
  s.ldbc = a.int_(4, "ldbc", 1);
  s.lddt = a.int_(6, "lddt", 1);
  s.tokens = a.int_(12, "tokens");
  s.heads = a.int_(13, "heads", 1);
  s.head_dim = a.int_(14, "headDim", 1);
  s.groups = a.int_(15, "groups", 1);
  s.state_size = a.int_(16, "stateSize", 1);
  const int64_t chunk = a.int_(17, "chunk");
  const int64_t H = s.heads, P = s.head_dim, G = s.groups, N = s.state_size, T = s.tokens;
  a.check(H % G == 0, "heads must be a multiple of groups");
  a.check(s.ldx >= H * P && s.ldbc >= G * N && s.lddt >= H, "row strides must cover a row");
  s.x = a.f32(0, "x", strided(T, s.ldx, H * P));
  s.b = a.f32(2, "b", strided(T, s.ldbc, G * N));
  s.c = a.f32(3, "c", strided(T, s.ldbc, G * N));
  s.dt_raw = a.f32(5, "dtRaw", strided(T, s.lddt, H));
  s.dt_bias = a.f32(7, "dtBias", H);
  s.a = a.f32(8, "a", H);
  s.d = a.f32(9, "d", H);
  s.state = a.f32(10, "state", H * P * N);
  s.y = a.f32(11, "y", T * H * P);
  if (!a.ok()) return a.done();
  dispatch(info, T * H * P * N, [=](int ith, int nth) {
    if (chunk > 0) {
      k::ssm_scan_chunked(s, chunk, ith, nth);
    } else {
      k::ssm_scan_sequential(s, ith, nth);
    }
  });
  return a.done();
}

// Reads (cache, blockTable, blockSize, blockStride, kOffset, vOffset, headStride) at index i0 and
// checks that every block of the table, at every head and slot, lies inside the cache view.
bool paged_kv(Args& a, const Napi::CallbackInfo& info, size_t i0, int64_t kv_heads, int64_t head_dim,
              int64_t positions, k::PagedKv* kv) {
  int64_t table_len = 0;
  kv->block_table = a.i32(i0 + 1, "blockTable", &table_len);
  kv->num_table_blocks = table_len;
  kv->block_size = a.int_(i0 + 2, "blockSize", 1);
  kv->block_stride = a.int_(i0 + 3, "blockStride", 1);
  kv->k_offset = a.int_(i0 + 4, "kOffset");
  kv->v_offset = a.int_(i0 + 5, "vOffset");
  kv->head_stride = a.int_(i0 + 6, "headStride", 1);
  kv->cache = a.f32(i0, "cache", 1);
  if (!a.ok()) return false;
  a.check(table_len * kv->block_size >= positions,
          "blockTable covers " + std::to_string(table_len * kv->block_size) + " positions, needs " + std::to_string(positions));
  const int64_t cache_len = static_cast<int64_t>(info[i0].As<Napi::Float32Array>().ElementLength());
  const int64_t span = std::max(kv->k_offset, kv->v_offset) + (kv_heads - 1) * kv->head_stride + kv->block_size * head_dim;
  const int64_t used_blocks = kv->block_size ? (positions + kv->block_size - 1) / kv->block_size : 0;
  for (int64_t j = 0; j < used_blocks && a.ok(); ++j) {
    const int64_t b = kv->block_table[j];
    a.check(b >= 0 && b * kv->block_stride + span <= cache_len,
            "blockTable[" + std::to_string(j) + "] = " + std::to_string(b) + " is outside the cache view");
  }
  return a.ok();
}

// kvCacheWrite(cache, blockTable, blockSize, blockStride, kOffset, vOffset, headStride, k, ldk, v, ldv, pos0, tokens, kvHeads, headDim)
Napi::Value kv_cache_write(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldk = a.int_(8, "ldk", 1), ldv = a.int_(10, "ldv", 1), pos0 = a.int_(11, "pos0"),
                tokens = a.int_(12, "tokens"), kv_heads = a.int_(13, "kvHeads", 1), hd = a.int_(14, "headDim", 1);
  const float* kp = a.f32(7, "k", strided(tokens, ldk, kv_heads * hd));
  const float* vp = a.f32(9, "v", strided(tokens, ldv, kv_heads * hd));
  k::PagedKv kv{};
  if (!a.ok() || !paged_kv(a, info, 0, kv_heads, hd, pos0 + tokens, &kv)) return a.done();
  dispatch(info, tokens * kv_heads * hd, [=](int ith, int nth) { k::kv_cache_write(kv, kp, ldk, vp, ldv, pos0, tokens, kv_heads, hd, ith, nth); });
  return a.done();
}

// pagedAttention(cache, blockTable, blockSize, blockStride, kOffset, vOffset, headStride, q, ldq, o, pos0, tokens, qHeads, kvHeads, headDim, scale)
Napi::Value paged_attention(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldq = a.int_(8, "ldq", 1), pos0 = a.int_(10, "pos0"), tokens = a.int_(11, "tokens"),
                qh = a.int_(12, "qHeads", 1), kvh = a.int_(13, "kvHeads", 1), hd = a.int_(14, "headDim", 1);
  const float scale = static_cast<float>(a.num(15, "scale"));
  a.check(qh % kvh == 0, "qHeads must be a multiple of kvHeads");
  const float* q = a.f32(7, "q", strided(tokens, ldq, qh * hd));
  float* o = a.f32(9, "o", tokens * qh * hd);
  k::PagedKv kv{};
  if (!a.ok() || !paged_kv(a, info, 0, kvh, hd, pos0 + tokens, &kv)) return a.done();
  dispatch(info, tokens * qh * hd * (pos0 + tokens), [=](int ith, int nth) { k::paged_attention(kv, q, ldq, o, pos0, tokens, qh, kvh, hd, scale, ith, nth); });
  return a.done();
}

// embedding(ids, table, vocabBegin, vocabEnd, dim, out)
Napi::Value embedding(const Napi::CallbackInfo& info) {
  Args a(info);
  int64_t tokens = 0;
  const int32_t* ids = a.i32(0, "ids", &tokens);
  const int64_t vb = a.int_(2, "vocabBegin"), ve = a.int_(3, "vocabEnd"), dim = a.int_(4, "dim", 1);
  a.check(ve >= vb, "vocabEnd must be >= vocabBegin");
  const k::WeightView table = a.weight(1, "table", (ve - vb) * dim);
  float* out = a.f32(5, "out", tokens * dim);
  if (!a.ok()) return a.done();
  dispatch(info, tokens * dim, [=](int, int) { k::embedding(ids, tokens, table, vb, ve, dim, out); }, true);
  return a.done();
}

Napi::Value add_inplace(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.int_(2, "n");
  float* y = a.f32(0, "y", n);
  const float* x = a.f32(1, "x", n);
  if (!a.ok()) return a.done();
  dispatch(info, n, [=](int ith, int nth) { k::add_inplace(y, x, n, ith, nth); });
  return a.done();
}

Napi::Value relu_squared(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.int_(1, "n");
  float* x = a.f32(0, "x", n);
  if (!a.ok()) return a.done();
  dispatch(info, n, [=](int ith, int nth) { k::relu_squared_inplace(x, n, ith, nth); });
  return a.done();
}

// siluMul(gu, out, tokens, inter)
Napi::Value silu_mul(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t tokens = a.int_(2, "tokens"), inter = a.int_(3, "inter", 1);
  const float* gu = a.f32(0, "gu", tokens * 2 * inter);
  float* out = a.f32(1, "out", tokens * inter);
  if (!a.ok()) return a.done();
  dispatch(info, tokens * inter, [=](int ith, int nth) { k::silu_mul(gu, out, tokens, inter, ith, nth); });
  return a.done();
}

// ropeNeox(x, ldx, pos0, tokens, heads, headDim, theta, rotaryDim?)
Napi::Value rope_neox(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t ldx = a.int_(1, "ldx", 1), pos0 = a.int_(2, "pos0"), tokens = a.int_(3, "tokens"),
                heads = a.int_(4, "heads", 1), hd = a.int_(5, "headDim", 2);
  const float theta = static_cast<float>(a.num(6, "theta"));
  const int64_t rotary = a.int_or(7, "rotaryDim", hd, 2);
  a.check(hd % 2 == 0 && ldx >= heads * hd, "headDim must be even and ldx >= heads * headDim");
  a.check(rotary % 2 == 0 && rotary <= hd, "rotaryDim must be even and <= headDim");
  float* x = a.f32(0, "x", strided(tokens, ldx, heads * hd));
  if (!a.ok()) return a.done();
  dispatch(info, tokens * heads * hd, [=](int, int) { k::rope_neox(x, ldx, pos0, tokens, heads, hd, theta, rotary); }, true);
  return a.done();
}

// sample(logits, temperature, topK, topP, minP, uniform) -> token id (runs now: it reads logits a
// finished step produced, so it cannot be part of a recording).
Napi::Value sample(const Napi::CallbackInfo& info) {
  if (g_recording) return busy(info, "sample() cannot be recorded");
  Args a(info);
  const float* logits = a.f32(0, "logits", 1);
  k::SampleArgs s{};
  s.temperature = a.num(1, "temperature");
  s.top_k = a.int_(2, "topK");
  s.top_p = a.num(3, "topP");
  s.min_p = a.num(4, "minP");
  const double uniform = a.num(5, "uniform");
  a.check(uniform >= 0.0 && uniform < 1.0, "uniform must be in [0, 1)");
  a.check(s.min_p >= 0.0 && s.min_p <= 1.0, "minP must be in [0, 1]");
  a.check(s.top_p > 0.0 && s.top_p <= 1.0, "topP must be in (0, 1]");
  a.check(std::isfinite(s.temperature) && s.temperature >= 0.0, "temperature must be finite and >= 0");
  if (!a.ok()) return a.done();
  const int64_t vocab = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength());
  return Napi::Number::New(info.Env(), k::sample(logits, vocab, s, uniform));
}

// logSoftmaxTop(logits, k, topIds, topLogprobs) -> logsumexp; fills the k most likely (id, logprob).
Napi::Value log_softmax_top(const Napi::CallbackInfo& info) {
  if (g_recording) return busy(info, "logSoftmaxTop() cannot be recorded");
  Args a(info);
  const float* logits = a.f32(0, "logits", 1);
  const int64_t kk = a.int_(1, "k");
  int64_t ids_len = 0;
  int32_t* ids = a.i32(2, "topIds", &ids_len);
  float* values = a.f32(3, "topLogprobs", kk);
  if (!a.ok()) return a.done();
  const int64_t vocab = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength());
  a.check(kk <= vocab && ids_len >= kk, "k must be <= the vocabulary and topIds must hold k ids");
  if (!a.ok()) return a.done();
  return Napi::Number::New(info.Env(), k::log_softmax_top(logits, vocab, kk, ids, values));
}

// copy(dst, src, n)
Napi::Value copy(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.int_(2, "n");
  float* dst = a.f32(0, "dst", n);
  const float* src = a.f32(1, "src", n);
  if (!a.ok()) return a.done();
  dispatch(info, n, [=](int ith, int nth) { k::copy(dst, src, n, ith, nth); });
  return a.done();
}

// sgemmReference(m, n, k, iterations, threads) -> seconds for `iterations` calls of OpenBLAS
// sgemm with its own threading (the reference the engine's prefill FLOP/s is compared with).
Napi::Value sgemm_reference(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t m = a.int_(0, "m", 1), n = a.int_(1, "n", 1), kk = a.int_(2, "k", 1), iters = a.int_(3, "iterations", 1),
                threads = a.int_(4, "threads", 1);
  if (!a.ok()) return a.done();
  std::vector<float> x(m * kk, 0.5f), w(n * kk, 0.25f), y(m * n);
  openblas_set_num_threads(static_cast<int>(threads));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0f, x.data(), kk, w.data(), kk, 0.0f, y.data(), n);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0f, x.data(), kk, w.data(), kk, 0.0f, y.data(), n);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  openblas_set_num_threads(1);
  return Napi::Number::New(info.Env(), seconds);
}

void init_kernels(Napi::Env env, Napi::Object exports) {
  // The engine splits GEMMs over its own pool (one OpenBLAS call per thread), so OpenBLAS's own
  // threads would only oversubscribe the cores and spin after each call.
  openblas_set_num_threads(1);
  Napi::Object s = Napi::Object::New(env);
  s.Set("linear", Napi::Function::New(env, linear));
  s.Set("rmsNorm", Napi::Function::New(env, rms_norm));
  s.Set("gatedNormSumsq", Napi::Function::New(env, gated_norm_sumsq));
  s.Set("gatedNormApply", Napi::Function::New(env, gated_norm_apply));
  s.Set("conv1d", Napi::Function::New(env, conv1d));
  s.Set("ssmScan", Napi::Function::New(env, ssm_scan));
  s.Set("kvCacheWrite", Napi::Function::New(env, kv_cache_write));
  s.Set("pagedAttention", Napi::Function::New(env, paged_attention));
  s.Set("embedding", Napi::Function::New(env, embedding));
  s.Set("addInplace", Napi::Function::New(env, add_inplace));
  s.Set("reluSquared", Napi::Function::New(env, relu_squared));
  s.Set("siluMul", Napi::Function::New(env, silu_mul));
  s.Set("ropeNeox", Napi::Function::New(env, rope_neox));
  s.Set("sample", Napi::Function::New(env, sample));
  s.Set("logSoftmaxTop", Napi::Function::New(env, log_softmax_top));
  s.Set("copy", Napi::Function::New(env, copy));
  s.Set("record", Napi::Function::New(env, record));
  s.Set("submit", Napi::Function::New(env, submit));
  s.Set("discard", Napi::Function::New(env, discard));
  s.Set("sgemmReference", Napi::Function::New(env, sgemm_reference));
  s.Set("poolThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::Number::New(info.Env(), k::pool_threads());
        }));
  init_family_kernels(env, s);
  exports.Set("kernels", s);
}

}  // namespace
}  // namespace hpd::napi

HPD_REGISTER_SURFACE(kernels, ::hpd::napi::init_kernels);
