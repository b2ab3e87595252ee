// The addon's single module init calls every registered surface initializer. Each surface
// (transport, kernels, ...) registers itself from its own napi file with a static
// `HPD_REGISTER_SURFACE(name, fn)`, so surfaces are added without touching a central list.
#pragma once

#include <napi.h>

#include "hpd/status.h"

namespace hpd::napi {

using SurfaceInit = void (*)(Napi::Env env, Napi::Object exports);

bool register_surface(const char* name, SurfaceInit init);

/** A JS Error with code "HPD_NATIVE_<NAME>" and the status message. */
Napi::Error status_to_error(Napi::Env env, const Status& status);

}  // namespace hpd::napi

#define HPD_REGISTER_SURFACE(name, fn) \
  static const bool hpd_surface_registered_##name = ::hpd::napi::register_surface(#name, fn)
