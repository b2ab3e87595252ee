// N-API face of hpd::Agent: class `TransferAgent` on the addon exports. Typed for TS in
// src/native/transport-binding.ts; the TS wrapper (src/transport/) validates every argument
// before calling in, so checks here are only the ones that keep the process safe.
//
// Threading: all methods run on the JS thread. Completions come from the agent's progress thread
// through one ThreadSafeFunction (wake) and are drained here on the JS thread: promises are
// settled and events delivered to the `onEvent` callback given to the constructor.
// Memory: allocRegion's ArrayBuffer is an external view of UCX memory owned by the agent;
// freeRegion() and close() detach it before unmapping, so JS sees a zero-length buffer, never
// freed memory. registerMemory keeps a strong reference to the caller's buffer until freed.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hpd/agent.h"
#include "module.h"

namespace hpd::napi {
namespace {

struct PendingOp {
  Napi::Promise::Deferred deferred;
  BatchShape shape;
  const char* verb;
};

struct RegionRefs {
  Napi::Reference<Napi::ArrayBuffer> buffer;  // weak for allocated regions, strong for registered ones
  uint64_t size_bytes = 0;
  bool allocated = false;
};

Napi::Value throw_status(Napi::Env env, const Status& st) {
  status_to_error(env, st).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool read_descs(const Napi::CallbackInfo& info, size_t first, std::vector<Descriptor>* out) {
  Napi::Env env = info.Env();
  if (!info[first].IsTypedArray() || !info[first + 1].IsTypedArray() || !info[first + 2].IsTypedArray()) {
    Napi::TypeError::New(env, "expected (Uint32Array regions, Float64Array offsets, Float64Array sizes)").ThrowAsJavaScriptException();
    return false;
  }
  auto regions = info[first].As<Napi::Uint32Array>();
  auto offsets = info[first + 1].As<Napi::Float64Array>();
  auto sizes = info[first + 2].As<Napi::Float64Array>();
  if (regions.ElementLength() != offsets.ElementLength() || regions.ElementLength() != sizes.ElementLength()) {
    Napi::RangeError::New(env, "descriptor arrays differ in length").ThrowAsJavaScriptException();
    return false;
  }
  const size_t n = regions.ElementLength();
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    (*out)[i] = Descriptor{regions[i], static_cast<uint64_t>(offsets[i]), static_cast<uint64_t>(sizes[i])};
  }
  return true;
}

// Grant ids cross as 32 lowercase hex characters (128 bits); the TS wrapper checks the format first.
std::string grant_to_hex(const GrantId& id) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : id.bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool grant_from_hex(const std::string& hex, GrantId* out) {
  if (hex.size() != 2 * out->bytes.size()) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < out->bytes.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

class AgentWrap : public Napi::ObjectWrap<AgentWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TransferAgent",
                       {
                           InstanceMethod<&AgentWrap::AllocRegion>("allocRegion"),
                           InstanceMethod<&AgentWrap::RegisterMemory>("registerMemory"),
                           InstanceMethod<&AgentWrap::FreeRegion>("freeRegion"),
                           InstanceMethod<&AgentWrap::Metadata>("metadata"),
                           InstanceMethod<&AgentWrap::Connect>("connect"),
                           InstanceMethod<&AgentWrap::Disconnect>("disconnect"),
                           InstanceMethod<&AgentWrap::PrepareLocal>("prepareLocal"),
                           InstanceMethod<&AgentWrap::PrepareRemote>("prepareRemote"),
                           InstanceMethod<&AgentWrap::ReleaseList>("releaseList"),
                           InstanceMethod<&AgentWrap::Grant>("grant"),
                           InstanceMethod<&AgentWrap::RevokeGrant>("revokeGrant"),
                           InstanceMethod<&AgentWrap::Read>("read"),
                           InstanceMethod<&AgentWrap::Copy>("copy"),
                           InstanceMethod<&AgentWrap::Notify>("notify"),
                           InstanceMethod<&AgentWrap::Close>("close"),
                       });
  }

  // new TransferAgent({name, transport, tcpSegmentBytes, keepaliveIntervalMs, readProtocol,
  //                    servedReadsRequireGrant, netDevices}, onEvent)
  explicit AgentWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AgentWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "expected (options, onEvent)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    AgentOptions options;
    options.name = o.Get("name").ToString().Utf8Value();
    const std::string transport = o.Get("transport").ToString().Utf8Value();
    options.transport = transport == "shm" ? TransportChoice::kShm : transport == "tcp" ? TransportChoice::kTcp : TransportChoice::kAuto;
    options.tcp_segment_bytes = static_cast<uint64_t>(o.Get("tcpSegmentBytes").ToNumber().Int64Value());
    options.keepalive_interval_ms = o.Get("keepaliveIntervalMs").ToNumber().Uint32Value();
    const std::string read_protocol = o.Get("readProtocol").ToString().Utf8Value();
    options.read_protocol = read_protocol == "get" ? ReadProtocol::kGet : read_protocol == "served" ? ReadProtocol::kServed : ReadProtocol::kAuto;
    // Anything but an explicit false keeps the safe default.
    options.served_reads_require_grant = !o.Get("servedReadsRequireGrant").StrictEquals(Napi::Boolean::New(env, false));
    Napi::Value devices = o.Get("netDevices");
    if (devices.IsArray()) {
      Napi::Array list = devices.As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) options.net_devices.push_back(list.Get(i).ToString().Utf8Value());
    }
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "hpd-transfer-agent", 0, 1);
    tsfn_.Unref(env);
    tsfn_live_ = true;
    Status st = Agent::create(options, [this] { wake(); }, &agent_);
    if (!st.is_ok()) {
      tsfn_.Release();
      tsfn_live_ = false;
      throw_status(env, st);
      return;
    }
    cleanup_ = env.AddCleanupHook(std::function<void()>([this] {
      has_cleanup_ = false;  // node-addon-api frees the hook's data after this call
      shutdown(nullptr);
    }));
    has_cleanup_ = true;
  }

  ~AgentWrap() override {
    if (has_cleanup_) cleanup_.Remove(Env());
    has_cleanup_ = false;
    shutdown(nullptr);
  }

 private:
  void wake() {
    // Progress thread. NonBlockingCall only queues; the drain runs on the JS thread.
    tsfn_.NonBlockingCall(this, [](Napi::Env env, Napi::Function, AgentWrap* self) { self->drain(env); });
  }

  bool check(Napi::Env env) {
    if (!agent_ || agent_->closed()) {
      throw_status(env, Status(StatusCode::kClosed, "the transfer agent is closed"));
      return false;
    }
    return true;
  }

  void track(Napi::Env env, uint64_t op_id, PendingOp op) {
    if (pending_.empty() && tsfn_live_) tsfn_.Ref(env);
    pending_.emplace(op_id, std::move(op));
  }

  void drain(Napi::Env env) {
    if (!agent_) return;
    Napi::HandleScope scope(env);
    for (AgentEvent& e : agent_->take_events()) deliver(env, e);
  }

  void deliver(Napi::Env env, AgentEvent& e) {
    if (e.kind == AgentEvent::Kind::kOpDone) {
      auto it = pending_.find(e.op_id);
      if (it == pending_.end()) return;
      PendingOp op = std::move(it->second);
      pending_.erase(it);
      if (pending_.empty() && tsfn_live_) tsfn_.Unref(env);
      if (e.status.is_ok()) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("bytes", Napi::Number::New(env, static_cast<double>(op.shape.bytes)));
        r.Set("descriptors", Napi::Number::New(env, op.shape.descriptors));
        r.Set("runs", Napi::Number::New(env, op.shape.runs));
        r.Set("elapsedMs", Napi::Number::New(env, e.elapsed_ms));
        op.deferred.Resolve(r);
      } else {
        Napi::Error err = status_to_error(env, e.status);
        err.Set("operation", Napi::String::New(env, op.verb));
        if (e.peer != kUnknownPeer) err.Set("peer", Napi::Number::New(env, e.peer));
        op.deferred.Reject(err.Value());
      }
      return;
    }
    Napi::Object ev = Napi::Object::New(env);
    if (e.kind == AgentEvent::Kind::kNotification) {
      ev.Set("type", "notification");
      if (e.peer != kUnknownPeer) ev.Set("peer", Napi::Number::New(env, e.peer));
      ev.Set("peerName", Napi::String::New(env, e.peer_name));
      ev.Set("payload", Napi::Buffer<uint8_t>::Copy(env, e.payload.data(), e.payload.size()));
    } else {
      ev.Set("type", "peer-error");
      ev.Set("peer", Napi::Number::New(env, e.peer));
      ev.Set("peerName", Napi::String::New(env, e.peer_name));
      ev.Set("operation", Napi::String::New(env, e.operation));
      ev.Set("code", Napi::String::New(env, std::string("HPD_NATIVE_") + status_code_name(e.status.code())));
      ev.Set("message", Napi::String::New(env, e.status.message()));
    }
    if (!on_event_.IsEmpty()) on_event_.Call({ev});
  }

  void detach_regions(Napi::Env env, uint32_t only) {
    for (auto it = regions_.begin(); it != regions_.end();) {
      if (only != 0 && it->first != only) {
        ++it;
        continue;
      }
      RegionRefs& r = it->second;
      if (r.allocated) {
        if (!r.buffer.IsEmpty()) {
          Napi::ArrayBuffer ab = r.buffer.Value();
          if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
        }
        Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(r.size_bytes));
      }
      it = regions_.erase(it);
    }
  }

  // Closes the agent (joins its progress thread), settles what was pending, releases the tsfn.
  void shutdown(Napi::Env* env_or_null) {
    if (agent_) {
      agent_->close();
      if (env_or_null != nullptr) {
        Napi::Env env = *env_or_null;
        Napi::HandleScope scope(env);
        for (AgentEvent& e : agent_->take_events()) deliver(env, e);
        for (auto& [id, op] : pending_) {
          Napi::Error err = status_to_error(env, Status(StatusCode::kClosed, std::string("the agent was closed while a ") +
                                                                                 op.verb + " was in flight"));
          err.Set("operation", Napi::String::New(env, op.verb));
          op.deferred.Reject(err.Value());
        }
        detach_regions(env, 0);
        on_event_.Reset();  // drops the JS callback (and the cycle through the TS wrapper) once closed
      }
      pending_.clear();
      regions_.clear();
    }
    if (tsfn_live_) {
      tsfn_live_ = false;
      tsfn_.Release();
    }
  }

  Napi::Value AllocRegion(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    const double size = info[0].ToNumber().DoubleValue();
    RegionInfo r;
    Status st = agent_->alloc_region(static_cast<uint64_t>(size), &r);
    if (!st.is_ok()) return throw_status(env, st);
    // External view of UCX memory; the agent owns it (no finalizer frees anything).
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, r.base, r.size_bytes);
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(r.size_bytes));
    RegionRefs refs;
    refs.buffer = Napi::Reference<Napi::ArrayBuffer>::New(ab, 0);
    refs.size_bytes = r.size_bytes;
    refs.allocated = true;
    regions_[r.id] = std::move(refs);
    Napi::Object out = Napi::Object::New(env);
    out.Set("id", Napi::Number::New(env, r.id));
    out.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(r.size_bytes)));
    out.Set("allocated", Napi::Boolean::New(env, true));
    out.Set("buffer", ab);
    return out;
  }

  Napi::Value RegisterMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    if (!info[0].IsArrayBuffer()) {
      Napi::TypeError::New(env, "expected an ArrayBuffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
    RegionInfo r;
    Status st = agent_->register_memory(ab.Data(), ab.ByteLength(), &r);
    if (!st.is_ok()) return throw_status(env, st);
    RegionRefs refs;
    refs.buffer = Napi::Reference<Napi::ArrayBuffer>::New(ab, 1);  // keeps the caller's memory alive
    refs.size_bytes = r.size_bytes;
    refs.allocated = false;
    regions_[r.id] = std::move(refs);
    Napi::Object out = Napi::Object::New(env);
    out.Set("id", Napi::Number::New(env, r.id));
    out.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(r.size_bytes)));
    out.Set("allocated", Napi::Boolean::New(env, false));
    out.Set("buffer", ab);
    return out;
  }

  Napi::Value FreeRegion(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    const uint32_t id = info[0].ToNumber().Uint32Value();
    if (regions_.find(id) == regions_.end()) {
      return throw_status(env, Status(StatusCode::kInvalidArgument, "no region " + std::to_string(id)));
    }
    if (!pending_.empty()) {
      return throw_status(env, Status(StatusCode::kInvalidArgument,
                                      "region " + std::to_string(id) + " cannot be freed while transfers are in flight"));
    }
    // Free first: a refusal (the owner is still serving a peer's read from it, a kernel runs over
    // it) must leave the region and its buffer as they were. JS cannot touch the buffer between
    // the unmap and the detach: both happen in this synchronous call.
    Status st = agent_->free_region(id);
    if (!st.is_ok()) return throw_status(env, st);
    detach_regions(env, id);
    return env.Undefined();
  }

  Napi::Value Metadata(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    std::vector<uint8_t> blob;
    Status st = agent_->metadata(&blob);
    if (!st.is_ok()) return throw_status(env, st);
    return Napi::Buffer<uint8_t>::Copy(env, blob.data(), blob.size());
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    if (!info[0].IsTypedArray()) {
      Napi::TypeError::New(env, "expected peer metadata as a Uint8Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto blob = info[0].As<Napi::Uint8Array>();
    PeerInfo p;
    Status st = agent_->connect(blob.Data(), blob.ByteLength(), &p);
    if (!st.is_ok()) return throw_status(env, st);
    Napi::Object out = Napi::Object::New(env);
    out.Set("id", Napi::Number::New(env, p.id));
    out.Set("name", Napi::String::New(env, p.name));
    out.Set("regions", Napi::Number::New(env, p.regions));
    out.Set("readProtocol", Napi::String::New(env, p.served ? "served" : "get"));
    return out;
  }

  Napi::Value Disconnect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    Status st = agent_->disconnect(info[0].ToNumber().Uint32Value());
    if (!st.is_ok()) return throw_status(env, st);
    return env.Undefined();
  }

  Napi::Value PrepareLocal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    std::vector<Descriptor> descs;
    if (!read_descs(info, 0, &descs)) return env.Undefined();
    uint32_t list = 0;
    Status st = agent_->prepare_local(descs, &list);
    if (!st.is_ok()) return throw_status(env, st);
    return Napi::Number::New(env, list);
  }

  Napi::Value PrepareRemote(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    std::vector<Descriptor> descs;
    if (!read_descs(info, 1, &descs)) return env.Undefined();
    uint32_t list = 0;
    Status st = agent_->prepare_remote(info[0].ToNumber().Uint32Value(), descs, &list);
    if (!st.is_ok()) return throw_status(env, st);
    return Napi::Number::New(env, list);
  }

  Napi::Value ReleaseList(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    Status st = agent_->release_list(info[0].ToNumber().Uint32Value());
    if (!st.is_ok()) return throw_status(env, st);
    return env.Undefined();
  }

  // grant(regions: Uint32Array, offsets: Float64Array, sizes: Float64Array) -> string (hex id)
  Napi::Value Grant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    std::vector<Descriptor> ranges;
    if (!read_descs(info, 0, &ranges)) return env.Undefined();
    GrantId id;
    Status st = agent_->grant(ranges, &id);
    if (!st.is_ok()) return throw_status(env, st);
    return Napi::String::New(env, grant_to_hex(id));
  }

  // revokeGrant(id: string) -> boolean (false: already gone)
  Napi::Value RevokeGrant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    GrantId id;
    if (!info[0].IsString() || !grant_from_hex(info[0].As<Napi::String>().Utf8Value(), &id)) {
      Napi::TypeError::New(env, "expected a grant id (32 lowercase hex characters)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    bool was_live = false;
    Status st = agent_->revoke_grant(id, &was_live);
    if (!st.is_ok()) return throw_status(env, st);
    return Napi::Boolean::New(env, was_live);
  }

  bool index_pair(const Napi::CallbackInfo& info, size_t a, size_t b, Napi::Uint32Array* ia, Napi::Uint32Array* ib) {
    if (!info[a].IsTypedArray() || !info[b].IsTypedArray()) {
      Napi::TypeError::New(info.Env(), "expected Uint32Array index lists").ThrowAsJavaScriptException();
      return false;
    }
    *ia = info[a].As<Napi::Uint32Array>();
    *ib = info[b].As<Napi::Uint32Array>();
    if (ia->ElementLength() != ib->ElementLength()) {
      Napi::RangeError::New(info.Env(), "index lists differ in length").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  // read(localList, localIdx, remoteList, remoteIdx, timeoutMs, grant?: string) -> Promise<{bytes, descriptors, runs, elapsedMs}>
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    Napi::Uint32Array li, ri;
    if (!index_pair(info, 1, 3, &li, &ri)) return env.Undefined();
    GrantId grant;
    const bool has_grant = info.Length() > 5 && !info[5].IsUndefined();
    if (has_grant && (!info[5].IsString() || !grant_from_hex(info[5].As<Napi::String>().Utf8Value(), &grant))) {
      Napi::TypeError::New(env, "expected the grant as a grant id (32 lowercase hex characters)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t op_id = 0;
    BatchShape shape;
    Status st = agent_->post_read(info[0].ToNumber().Uint32Value(), li.Data(), info[2].ToNumber().Uint32Value(), ri.Data(),
                                  li.ElementLength(), info[4].ToNumber().Uint32Value(), has_grant ? &grant : nullptr, &op_id, &shape);
    if (!st.is_ok()) return throw_status(env, st);
    PendingOp op{Napi::Promise::Deferred::New(env), shape, "read"};
    Napi::Promise p = op.deferred.Promise();
    track(env, op_id, std::move(op));
    return p;
  }

  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    Napi::Uint32Array di, si;
    if (!index_pair(info, 1, 3, &di, &si)) return env.Undefined();
    uint64_t op_id = 0;
    BatchShape shape;
    Status st = agent_->post_copy(info[0].ToNumber().Uint32Value(), di.Data(), info[2].ToNumber().Uint32Value(), si.Data(),
                                  di.ElementLength(), &op_id, &shape);
    if (!st.is_ok()) return throw_status(env, st);
    PendingOp op{Napi::Promise::Deferred::New(env), shape, "copy"};
    Napi::Promise p = op.deferred.Promise();
    track(env, op_id, std::move(op));
    return p;
  }

  // notify(peer, payload: Uint8Array, timeoutMs) -> Promise
  Napi::Value Notify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check(env)) return env.Undefined();
    if (!info[1].IsTypedArray()) {
      Napi::TypeError::New(env, "expected the payload as a Uint8Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto data = info[1].As<Napi::Uint8Array>();
    uint64_t op_id = 0;
    Status st = agent_->post_notify(info[0].ToNumber().Uint32Value(), data.Data(), data.ByteLength(),
                                    info[2].ToNumber().Uint32Value(), &op_id);
    if (!st.is_ok()) return throw_status(env, st);
    PendingOp op{Napi::Promise::Deferred::New(env), BatchShape{data.ByteLength(), 0, 0}, "notify"};
    Napi::Promise p = op.deferred.Promise();
    track(env, op_id, std::move(op));
    return p;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    shutdown(&env);
    return env.Undefined();
  }

  std::unique_ptr<Agent> agent_;
  Napi::FunctionReference on_event_;
  Napi::ThreadSafeFunction tsfn_;
  bool tsfn_live_ = false;
  Napi::Env::CleanupHook<std::function<void()>> cleanup_;
  bool has_cleanup_ = false;
  std::map<uint64_t, PendingOp> pending_;
  std::map<uint32_t, RegionRefs> regions_;
};

void init_transport(Napi::Env env, Napi::Object exports) {
  exports.Set("TransferAgent", AgentWrap::Define(env));
}

}  // namespace
}  // namespace hpd::napi

HPD_REGISTER_SURFACE(transport, hpd::napi::init_transport);
