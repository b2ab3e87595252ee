// One status enum for the whole native core (NIXL style). The core never throws across its API;
// native/src/napi maps each status to a JS Error whose code is "HPD_NATIVE_<NAME>".
#pragma once

#include <string>
#include <utility>

namespace hpd {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // HPD_NATIVE_INVALID_ARGUMENT
  kOutOfRange,        // HPD_NATIVE_OUT_OF_RANGE
  kNoMemory,          // HPD_NATIVE_NO_MEMORY
  kTransport,         // HPD_NATIVE_TRANSPORT (UCX reported an error)
  kPeerUnreachable,   // HPD_NATIVE_PEER_UNREACHABLE (peer dead / vanished / endpoint error)
  kTimeout,           // HPD_NATIVE_TIMEOUT
  kClosed,            // HPD_NATIVE_CLOSED (agent or region already closed)
  kUnsupported,       // HPD_NATIVE_UNSUPPORTED
  kInternal,          // HPD_NATIVE_INTERNAL
  kPermissionDenied,  // HPD_NATIVE_PERMISSION_DENIED (a served read outside what the owner granted)
};

// The last code; wire formats that carry a code (served_read.h replies) refuse anything above it.
constexpr StatusCode kLastStatusCode = StatusCode::kPermissionDenied;

inline const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kNoMemory: return "NO_MEMORY";
    case StatusCode::kTransport: return "TRANSPORT";
    case StatusCode::kPeerUnreachable: return "PEER_UNREACHABLE";
    case StatusCode::kTimeout: return "TIMEOUT";
    case StatusCode::kClosed: return "CLOSED";
    case StatusCode::kUnsupported: return "UNSUPPORTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
  }
  return "INTERNAL";
}

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace hpd
