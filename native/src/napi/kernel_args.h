// Argument reading for the kernel surfaces (napi/kernels.cc, napi/kernels_families.cc): every
// view is checked to be large enough for what its kernel will touch before any memory is read.
// Arguments come positionally (older kernels) or as one object of named fields (kernels with many
// arguments); the first failure is thrown as HPD_NATIVE_INVALID_ARGUMENT naming the argument and
// every later read returns a harmless default, so a wrapper checks `ok()` once before running.
#pragma once

#include <napi.h>

#include <cmath>
#include <functional>
#include <string>

#include "hpd/kernels.h"
#include "hpd/thread_pool.h"
#include "module.h"

namespace hpd::napi {

class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : env_(info.Env()), info_(&info) {}
  /** Named fields of `obj` (the index arguments of the readers are then ignored). */
  Args(Napi::Env env, Napi::Object obj) : env_(env), obj_(obj) {}
  bool ok() const { return ok_; }

  Napi::Value at(size_t i, const char* name) const { return info_ ? (*info_)[i] : obj_.Get(name); }
  bool present(size_t i, const char* name) const {
    const Napi::Value v = at(i, name);
    return !v.IsUndefined() && !v.IsNull();
  }

  float* f32(size_t i, const char* name, int64_t min_elems) {
    if (!ok_) return nullptr;
    const Napi::Value v = at(i, name);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      return fail(std::string(name) + " must be a Float32Array"), nullptr;
    }
    auto view = v.As<Napi::Float32Array>();
    if (!enough(name, static_cast<int64_t>(view.ElementLength()), min_elems)) return nullptr;
    return view.Data();
  }
  float* f32_or_null(size_t i, const char* name, int64_t min_elems) {
    if (ok_ && !present(i, name)) return nullptr;
    return f32(i, name, min_elems);
  }
  /** A weight: Float32Array (fp32) or Uint16Array (bf16 bit patterns). */
  kernels::WeightView weight(size_t i, const char* name, int64_t min_elems) {
    if (!ok_) return {};
    return weight_of(at(i, name), name, min_elems);
  }
  /** The same for a value taken from elsewhere (an element of an array argument), named `name`. */
  kernels::WeightView weight_of(const Napi::Value& v, const std::string& label, int64_t min_elems) {
    if (!ok_) return {};
    const char* name = label.c_str();
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
      auto view = v.As<Napi::Uint16Array>();
      if (!enough(name, static_cast<int64_t>(view.ElementLength()), min_elems)) return {};
      return kernels::WeightView{nullptr, view.Data()};
    }
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      return fail(std::string(name) + " must be a Float32Array (fp32) or a Uint16Array (bf16)"), kernels::WeightView{};
    }
    auto view = v.As<Napi::Float32Array>();
    if (!enough(name, static_cast<int64_t>(view.ElementLength()), min_elems)) return {};
    return kernels::WeightView{view.Data(), nullptr};
  }
  int32_t* i32(size_t i, const char* name, int64_t* length) {
    if (!ok_) return nullptr;
    const Napi::Value v = at(i, name);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      return fail(std::string(name) + " must be an Int32Array"), nullptr;
    }
    auto view = v.As<Napi::Int32Array>();
    *length = static_cast<int64_t>(view.ElementLength());
    return view.Data();
  }
  int32_t* i32_min(size_t i, const char* name, int64_t min_elems) {
    int64_t length = 0;
    int32_t* p = i32(i, name, &length);
    if (!ok_ || !enough(name, length, min_elems)) return nullptr;
    return p;
  }
  int64_t int_(size_t i, const char* name, int64_t min = 0) {
    if (!ok_) return 0;
    const Napi::Value v = at(i, name);
    if (!v.IsNumber()) return fail(std::string(name) + " must be a number"), 0;
    const double d = v.As<Napi::Number>().DoubleValue();
    if (d != std::floor(d) || d < static_cast<double>(min) || d > 9007199254740991.0) {
      return fail(std::string(name) + " must be an integer >= " + std::to_string(min) + ", got " + std::to_string(d)), 0;
    }
    return static_cast<int64_t>(d);
  }
  int64_t int_or(size_t i, const char* name, int64_t fallback, int64_t min = 0) {
    if (ok_ && !present(i, name)) return fallback;
    return int_(i, name, min);
  }
  double num(size_t i, const char* name) {
    if (!ok_) return 0;
    const Napi::Value v = at(i, name);
    if (!v.IsNumber()) return fail(std::string(name) + " must be a number"), 0;
    return v.As<Napi::Number>().DoubleValue();
  }
  double num_or(size_t i, const char* name, double fallback) {
    if (ok_ && !present(i, name)) return fallback;
    return num(i, name);
  }
  bool flag(size_t i, const char* name = "") { return ok_ && at(i, name).ToBoolean().Value(); }
  void check(bool condition, const std::string& message) {
    if (ok_ && !condition) fail(message);
  }
  Napi::Value done() {
    if (!ok_) status_to_error(env_, Status(StatusCode::kInvalidArgument, message_)).ThrowAsJavaScriptException();
    return env_.Undefined();
  }

 private:
  bool enough(const char* name, int64_t have, int64_t need) {
    if (have >= need) return true;
    fail(std::string(name) + " has " + std::to_string(have) + " elements, needs " + std::to_string(need));
    return false;
  }
  void fail(const std::string& message) {
    ok_ = false;
    message_ = message;
  }
  Napi::Env env_;
  const Napi::CallbackInfo* info_ = nullptr;
  Napi::Object obj_;
  bool ok_ = true;
  std::string message_;
};

// Below this much work (multiply-adds or elements) a kernel runs on the calling thread alone:
// waking the pool costs more than it saves (decode steps of small models are hundreds of tiny calls).
constexpr int64_t kSerialWork = 1 << 16;

/**
 * Runs fn(ith, nth) now (on the pool when the work is large, alone when `serial`), or, while a
 * recording is open (napi/kernels.cc record()), records it with a reference to every typed-array
 * argument of `info`. So fn must capture by value: it may run later, on a libuv thread.
 */
void dispatch(const Napi::CallbackInfo& info, int64_t work, std::function<void(int, int)> fn, bool serial = false);

/** Whether a recording is open (kernel calls are being recorded, not run). */
bool recording();

/** Keeps the typed arrays inside an object or array argument alive until the recorded program ends (no-op when not recording). */
void retain(const Napi::Value& value);

// Elements a [rows, cols] view with row stride ld needs.
inline int64_t strided(int64_t rows, int64_t ld, int64_t cols) { return rows == 0 ? 0 : (rows - 1) * ld + cols; }

/** Adds the Gated DeltaNet, MoE and small per-family kernels to the `kernels` surface object. */
void init_family_kernels(Napi::Env env, Napi::Object surface);

}  // namespace hpd::napi
