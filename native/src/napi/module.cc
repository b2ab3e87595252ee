#include "module.h"

#include <string>
#include <utility>
#include <vector>

namespace hpd::napi {
namespace {

std::vector<std::pair<const char*, SurfaceInit>>& surfaces() {
  static std::vector<std::pair<const char*, SurfaceInit>> list;
  return list;
}

}  // namespace

bool register_surface(const char* name, SurfaceInit init) {
  surfaces().emplace_back(name, init);
  return true;
}

Napi::Error status_to_error(Napi::Env env, const Status& status) {
  Napi::Error error = Napi::Error::New(env, status.message());
  error.Set("code", Napi::String::New(env, std::string("HPD_NATIVE_") + status_code_name(status.code())));
  return error;
}

Napi::Object init_module(Napi::Env env, Napi::Object exports) {
  Napi::Array names = Napi::Array::New(env);
  uint32_t i = 0;
  for (auto& [name, init] : surfaces()) {
    init(env, exports);
    names.Set(i++, Napi::String::New(env, name));
  }
  exports.Set("surfaces", names);
  return exports;
}

}  // namespace hpd::napi

static Napi::Object init_hpd_native(Napi::Env env, Napi::Object exports) {
  return hpd::napi::init_module(env, exports);
}

NODE_API_MODULE(hpd_native, init_hpd_native)
