// N-API face of the verification kernels (hpd/digest.h): patternFill, patternVerify, digest.
// Each takes one ArrayBuffer and a batch of parts, runs off the JS thread (AsyncWorker) and
// returns a promise. The worker holds a strong reference to the buffer and marks its memory busy
// while it runs (hpd/busy_memory.h), so closing the agent or freeing the region waits for it.
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "hpd/busy_memory.h"
#include "hpd/digest.h"
#include "module.h"

namespace hpd::napi {
namespace {

struct Part {
  uint64_t offset_bytes;
  uint64_t size_bytes;
  uint64_t seed;
  uint64_t part_offset_bytes;
};

class KernelWorker : public Napi::AsyncWorker {
 public:
  KernelWorker(Napi::Env env, Napi::ArrayBuffer buffer, std::function<void()> work,
               std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "hpd-verify"),
        deferred_(Napi::Promise::Deferred::New(env)),
        buffer_(Napi::Persistent(buffer)),
        busy_token_(acquire_busy_memory(buffer.Data(), buffer.ByteLength())),
        work_(std::move(work)),
        result_(std::move(result)) {}
  ~KernelWorker() override { release_busy_memory(busy_token_); }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    work_();
    // Released on the worker thread as soon as the memory is no longer touched.
    release_busy_memory(busy_token_);
    busy_token_ = 0;
  }
  void OnOK() override { deferred_.Resolve(result_(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  uint64_t busy_token_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
};

// (buffer, offsets: Float64Array, sizes: Float64Array, keys: Uint32Array [part, 6], partOffsets: Float64Array)
bool read_parts(const Napi::CallbackInfo& info, bool with_keys, uint8_t** base, std::vector<Part>* parts) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer() || !info[1].IsTypedArray() || !info[2].IsTypedArray()) {
    Napi::TypeError::New(env, "expected (ArrayBuffer, Float64Array offsets, Float64Array sizes, ...)").ThrowAsJavaScriptException();
    return false;
  }
  auto ab = info[0].As<Napi::ArrayBuffer>();
  auto offsets = info[1].As<Napi::Float64Array>();
  auto sizes = info[2].As<Napi::Float64Array>();
  const size_t n = offsets.ElementLength();
  if (sizes.ElementLength() != n) {
    Napi::RangeError::New(env, "offsets and sizes differ in length").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Uint32Array keys;
  Napi::Float64Array part_offsets;
  if (with_keys) {
    if (!info[3].IsTypedArray() || !info[4].IsTypedArray()) {
      Napi::TypeError::New(env, "expected Uint32Array keys and Float64Array partOffsets").ThrowAsJavaScriptException();
      return false;
    }
    keys = info[3].As<Napi::Uint32Array>();
    part_offsets = info[4].As<Napi::Float64Array>();
    if (keys.ElementLength() != n * kPatternKeyWords || part_offsets.ElementLength() != n) {
      Napi::RangeError::New(env, "keys must hold 6 words per part and partOffsets one per part").ThrowAsJavaScriptException();
      return false;
    }
  }
  const uint64_t limit = ab.ByteLength();
  parts->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t off = static_cast<uint64_t>(offsets[i]);
    const uint64_t size = static_cast<uint64_t>(sizes[i]);
    if (off > limit || size > limit - off) {
      Napi::RangeError::New(env, "part " + std::to_string(i) + " [" + std::to_string(off) + ", +" + std::to_string(size) +
                                     ") is outside the buffer (" + std::to_string(limit) + " bytes)")
          .ThrowAsJavaScriptException();
      return false;
    }
    Part& p = (*parts)[i];
    p.offset_bytes = off;
    p.size_bytes = size;
    p.seed = with_keys ? pattern_seed(keys.Data() + i * kPatternKeyWords) : 0;
    p.part_offset_bytes = with_keys ? static_cast<uint64_t>(part_offsets[i]) : 0;
  }
  *base = static_cast<uint8_t*>(ab.Data());
  return true;
}

Napi::Value PatternFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* base = nullptr;
  auto parts = std::make_shared<std::vector<Part>>();
  if (!read_parts(info, true, &base, parts.get())) return env.Undefined();
  auto* w = new KernelWorker(
      env, info[0].As<Napi::ArrayBuffer>(),
      [base, parts] {
        for (const Part& p : *parts) pattern_fill(base + p.offset_bytes, p.size_bytes, p.seed, p.part_offset_bytes);
      },
      [](Napi::Env e) { return e.Undefined(); });
  Napi::Promise promise = w->promise();
  w->Queue();
  return promise;
}

// Resolves to null when every part matches, else {part, byteOffset, expected, actual}.
Napi::Value PatternVerify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* base = nullptr;
  auto parts = std::make_shared<std::vector<Part>>();
  if (!read_parts(info, true, &base, parts.get())) return env.Undefined();
  struct Found {
    int64_t part = -1;
    int64_t byte = -1;
    uint8_t expected = 0, actual = 0;
  };
  auto found = std::make_shared<Found>();
  auto* w = new KernelWorker(
      env, info[0].As<Napi::ArrayBuffer>(),
      [base, parts, found] {
        for (size_t i = 0; i < parts->size(); ++i) {
          const Part& p = (*parts)[i];
          const int64_t bad = pattern_verify(base + p.offset_bytes, p.size_bytes, p.seed, p.part_offset_bytes);
          if (bad >= 0) {
            found->part = static_cast<int64_t>(i);
            found->byte = bad;
            found->expected = pattern_byte(p.seed, p.part_offset_bytes + static_cast<uint64_t>(bad));
            found->actual = base[p.offset_bytes + static_cast<uint64_t>(bad)];
            return;
          }
        }
      },
      [found](Napi::Env e) -> Napi::Value {
        if (found->part < 0) return e.Null();
        Napi::Object o = Napi::Object::New(e);
        o.Set("part", Napi::Number::New(e, static_cast<double>(found->part)));
        o.Set("byteOffset", Napi::Number::New(e, static_cast<double>(found->byte)));
        o.Set("expected", Napi::Number::New(e, found->expected));
        o.Set("actual", Napi::Number::New(e, found->actual));
        return o;
      });
  Napi::Promise promise = w->promise();
  w->Queue();
  return promise;
}

// Resolves to a BigUint64Array with one digest per part.
Napi::Value Digest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* base = nullptr;
  auto parts = std::make_shared<std::vector<Part>>();
  if (!read_parts(info, false, &base, parts.get())) return env.Undefined();
  auto digests = std::make_shared<std::vector<uint64_t>>(parts->size());
  auto* w = new KernelWorker(
      env, info[0].As<Napi::ArrayBuffer>(),
      [base, parts, digests] {
        for (size_t i = 0; i < parts->size(); ++i) {
          const Part& p = (*parts)[i];
          (*digests)[i] = digest64(base + p.offset_bytes, p.size_bytes, 0);
        }
      },
      [digests](Napi::Env e) -> Napi::Value {
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(e, digests->size() * 8);
        std::memcpy(ab.Data(), digests->data(), digests->size() * 8);
        napi_value arr;
        napi_create_typedarray(e, napi_biguint64_array, digests->size(), ab, 0, &arr);
        return Napi::Value(e, arr);
      });
  Napi::Promise promise = w->promise();
  w->Queue();
  return promise;
}

void init_verify(Napi::Env env, Napi::Object exports) {
  exports.Set("patternFill", Napi::Function::New(env, PatternFill, "patternFill"));
  exports.Set("patternVerify", Napi::Function::New(env, PatternVerify, "patternVerify"));
  exports.Set("digest", Napi::Function::New(env, Digest, "digest"));
}

}  // namespace
}  // namespace hpd::napi

HPD_REGISTER_SURFACE(transport_verify, hpd::napi::init_verify);
