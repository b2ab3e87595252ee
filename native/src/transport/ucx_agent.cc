// The UCX agent's life: init() (UCX config choices and why), run() (the progress thread) and the
// phases it drives each turn over the operations (ops.h) and the owner's serves
// (served_read_owner.h), the UCX callbacks, close(). The synchronous API: ucx_agent_calls.cc.
#include "ucx_agent.h"

#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "hpd/busy_memory.h"

namespace hpd::transport {
namespace {

// Bytes posted per loop iteration before progressing and releasing the lock.
constexpr uint64_t kPostBudgetBytes = 32ull << 20;
// After the last UCX event, how long the progress thread keeps its sleeps short (1 ms).
constexpr std::chrono::milliseconds kActiveWindow{50};
// After the last UCX event, how long the progress thread keeps polling the worker without
// sleeping. An emulated GET over TCP moves one segment per event; sleeping on the efd between
// segments cost a context switch per 256 KiB on the reader (~430 per 169 MB read).
constexpr std::chrono::microseconds kSpinWindow{200};

uint64_t random_uid() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd();
  v ^= uint64_t(getpid()) << 16;
  v ^= uint64_t(Clock::now().time_since_epoch().count());
  return v == 0 ? 1 : v;
}

// Overloaded lambdas for std::visit: one visitor per phase, one branch per kind of operation.
template <class... F>
struct Visitor : F... {
  using F::operator()...;
};
template <class... F>
Visitor(F...) -> Visitor<F...>;

}  // namespace

UcxAgent::UcxAgent(AgentOptions options, std::function<void()> wake)
    : options_(std::move(options)), wake_(std::move(wake)), uid_(random_uid()), active_window_(kActiveWindow), spin_window_(kSpinWindow) {}

Status UcxAgent::init() {
  ucp_get_version(&ucx_major_, &ucx_minor_, &ucx_release_);
  // Tuning knob for measurements (not a user setting): HPD_TRANSPORT_ACTIVE_WINDOW_MS, 0 disables.
  if (const char* w = std::getenv("HPD_TRANSPORT_ACTIVE_WINDOW_MS")) active_window_ = std::chrono::milliseconds(std::strtoul(w, nullptr, 10));
  if (const char* w = std::getenv("HPD_TRANSPORT_SPIN_US")) spin_window_ = std::chrono::microseconds(std::strtoul(w, nullptr, 10));
  ucp_config_t* config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_config_read failed: " + ucs_text(s));
  Status st = configure_ucx(config);
  if (!st.is_ok()) {
    ucp_config_release(config);
    return st;
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM | UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 0;
  params.name = options_.name.c_str();
  s = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  if (s != UCS_OK) {
    context_ = nullptr;
    return Status(StatusCode::kTransport, "ucp_init failed: " + ucs_text(s));
  }
  if (!(st = create_worker(&worker_, &worker_address_, &worker_address_len_, &efd_)).is_ok()) return st;
  if (!(st = create_worker(&bulk_worker_, &bulk_address_, &bulk_address_len_, &bulk_efd_)).is_ok()) return st;
  if (!(st = set_am_handler(worker_, kNotifyAmId, &UcxAgent::on_notify)).is_ok()) return st;
  if (!(st = set_am_handler(worker_, kServeRequestAmId, &UcxAgent::on_serve_request)).is_ok()) return st;
  if (!(st = set_am_handler(bulk_worker_, kServeReplyAmId, &UcxAgent::on_serve_reply)).is_ok()) return st;
  owner_.configure(bulk_worker_, uid_, options_.served_reads_require_grant);
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  std::string boot_id;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot_id;
  host_ = std::string(hostname) + "/" + boot_id;
  std::error_code ec;
  rdma_present_ = std::filesystem::is_directory("/sys/class/infiniband", ec) &&
                  !std::filesystem::is_empty("/sys/class/infiniband", ec);
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

// The UCX settings hpd chooses; a user's UCX_* environment wins where noted (ucx-notes.md §1).
Status UcxAgent::configure_ucx(ucp_config_t* config) {
  auto set = [&](const char* name, const std::string& value) -> Status {
    ucs_status_t m = ucp_config_modify(config, name, value.c_str());
    if (m != UCS_OK) return Status(StatusCode::kTransport, std::string("UCX rejected ") + name + "=" + value + ": " + ucs_text(m));
    return Status::ok();
  };
  auto user_set = [](const char* env) { return std::getenv(env) != nullptr; };
  Status st;
  // PEER error mode drops the shm transports unless mm error handling is on (ucx-notes.md §0).
  if (options_.transport != TransportChoice::kTcp && !user_set("UCX_MM_ERROR_HANDLING") &&
      !user_set("UCX_POSIX_ERROR_HANDLING") && !user_set("UCX_SYSV_ERROR_HANDLING")) {
    if (!(st = set("MM_ERROR_HANDLING", "y")).is_ok()) return st;
  }
  if (!user_set("UCX_KEEPALIVE_INTERVAL")) {
    if (!(st = set("KEEPALIVE_INTERVAL", std::to_string(options_.keepalive_interval_ms) + "ms")).is_ok()) return st;
  }
  // Where UCX's tcp transport listens (one socket per named interface and worker, on that
  // interface's address) and what it connects through. Unlike the other knobs, the caller's
  // choice beats UCX_NET_DEVICES: it is a boundary (issue 9), not a tuning.
  if (!options_.net_devices.empty()) {
    std::string devices;
    for (const std::string& d : options_.net_devices) devices += (devices.empty() ? "" : ",") + d;
    if (!(st = set("NET_DEVICES", devices)).is_ok()) return st;
  }
  bool shm_possible = true;
  if (options_.transport == TransportChoice::kShm) {
    if (!(st = set("TLS", "sm,self")).is_ok()) return st;
  } else if (options_.transport == TransportChoice::kTcp) {
    if (!(st = set("TLS", "tcp,self")).is_ok()) return st;
    shm_possible = false;
  } else if (user_set("UCX_TLS")) {
    shm_possible = false;  // the user chose; do not force an allocation method their TLS may lack
  }
  // A failed sysv/posix allocation otherwise falls back silently to private memory, whose reads
  // are emulated (ucx-notes.md §2): fail loudly instead.
  if (shm_possible && !user_set("UCX_ALLOC_PRIO")) {
    if (!(st = set("ALLOC_PRIO", "md:sysv,md:posix")).is_ok()) return st;
  }
  // Peers must agree on segment sizes or the reader aborts (ucx-notes.md §7), so the value travels
  // in the metadata and connect() compares it. Names are relative to the transport prefix.
  const char* user_tx = std::getenv("UCX_TCP_TX_SEG_SIZE");
  if (user_tx != nullptr || user_set("UCX_TCP_RX_SEG_SIZE")) {
    tcp_segment_bytes_ = user_tx != nullptr ? std::strtoull(user_tx, nullptr, 10) : 0;
    if (user_tx != nullptr) {
      const char* end = user_tx;
      while (*end >= '0' && *end <= '9') ++end;
      if (*end == 'k' || *end == 'K') tcp_segment_bytes_ <<= 10;
      if (*end == 'm' || *end == 'M') tcp_segment_bytes_ <<= 20;
    }
  } else if (options_.tcp_segment_bytes > 0 && options_.transport == TransportChoice::kShm) {
    tcp_segment_bytes_ = options_.tcp_segment_bytes;  // no tcp here; advertise it so peers still agree
  } else if (options_.tcp_segment_bytes > 0) {
    const std::string v = std::to_string(options_.tcp_segment_bytes);
    if (!(st = set("TX_SEG_SIZE", v)).is_ok()) return st;
    if (!(st = set("RX_SEG_SIZE", v)).is_ok()) return st;
    tcp_segment_bytes_ = options_.tcp_segment_bytes;
  }
  return Status::ok();
}

Status UcxAgent::create_worker(ucp_worker_h* worker, ucp_address_t** address, size_t* address_len, int* efd) {
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  ucs_status_t s = ucp_worker_create(context_, &wp, worker);
  if (s != UCS_OK) {
    *worker = nullptr;
    return Status(StatusCode::kTransport, "ucp_worker_create failed: " + ucs_text(s));
  }
  s = ucp_worker_get_address(*worker, address, address_len);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_worker_get_address failed: " + ucs_text(s));
  s = ucp_worker_get_efd(*worker, efd);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_worker_get_efd failed: " + ucs_text(s));
  return Status::ok();
}

Status UcxAgent::set_am_handler(ucp_worker_h worker, unsigned id, ucp_am_recv_callback_t cb) {
  ucp_am_handler_param_t hp{};
  hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  hp.id = id;
  hp.cb = cb;
  hp.arg = this;
  ucs_status_t s = ucp_worker_set_am_recv_handler(worker, &hp);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_worker_set_am_recv_handler failed: " + ucs_text(s));
  return Status::ok();
}

// ---- progress thread ----------------------------------------------------------------------

void UcxAgent::run() {
  Clock::time_point active_until{};
  Clock::time_point spin_until{};
  while (true) {
    bool more_work = false;
    bool spin = false;
    ucs_status_t armed = UCS_OK;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_.load()) break;
      owner_.start();
      post_ops();
      const unsigned progressed = progress_workers();
      const auto now = Clock::now();
      if (progressed > 0) {
        active_until = now + active_window_;
        spin_until = now + spin_window_;
      }
      advance_closes();
      check_deadlines();
      owner_.advance(now);
      finish_ops();
      more_work = has_work_to_post();
      // Traffic in the last spin window: poll again instead of arming and sleeping.
      spin = !more_work && now < spin_until;
      if (!more_work && !spin) {
        armed = ucp_worker_arm(worker_);
        if (armed == UCS_OK) armed = ucp_worker_arm(bulk_worker_);
      }
    }
    {
      std::lock_guard<std::mutex> lk(events_mu_);
      if (!events_.empty() && !wake_pending_) {
        wake_pending_ = true;
        wake_();
      }
    }
    while (js_waiting_.load() > 0) std::this_thread::yield();
    if (spin) std::this_thread::yield();  // a 2-core host: let anything runnable go first
    if (more_work || spin || armed == UCS_ERR_BUSY) continue;
    // Sleep until UCX has something (the efd also carries the keepalive timer and
    // ucp_worker_signal from posting threads). The short timeout is a backstop while requests
    // are outstanding, since merely queued work raises no fd event (ucx-notes.md §5).
    bool in_flight;
    {
      std::lock_guard<std::mutex> lk(mu_);
      in_flight = busy();
    }
    // An owner serving emulated GETs (TCP, registered memory) has no ops of its own, and a reply
    // stalled on a full socket may raise no efd event; while traffic is recent, wake every 1 ms.
    const bool recent = Clock::now() < active_until;
    pollfd pfds[2] = {{efd_, POLLIN, 0}, {bulk_efd_, POLLIN, 0}};
    poll(pfds, 2, in_flight || recent ? 1 : 100);
  }
}

unsigned UcxAgent::progress_workers() {
  unsigned progressed = 0;
  for (unsigned n; (n = ucp_worker_progress(worker_) + ucp_worker_progress(bulk_worker_)) != 0;) progressed += n;
  return progressed;
}

// Phase 1: every operation posts what it can (GETs and copies within the loop's byte budget).
void UcxAgent::post_ops() {
  uint64_t budget = kPostBudgetBytes;
  for (auto& [id, op] : ops_) {
    std::visit(Visitor{
                   [&](GetRead& r) { r.post(find_peer(r.peer), &budget); },
                   [&](ServedRead& r) {
                     if (r.can_post()) r.post(find_peer(r.peer), bulk_worker_, uid_, encode_metadata(own_metadata(/*with_regions=*/false)));
                   },
                   [&](CopyOp& c) { c.post(&budget); },
                   [&](NotifyOp& n) {
                     if (n.can_post()) n.post(find_peer(n.peer), kNotifyAmId);
                   },
               },
               *op);
  }
  owner_.post(&budget);
}

bool UcxAgent::has_work_to_post() {
  for (auto& [id, op] : ops_) {
    if (std::visit([](auto& o) { return o.can_post(); }, *op)) return true;
  }
  return owner_.has_work();
}

bool UcxAgent::busy() {
  bool any = !ops_.empty() || owner_.busy();
  for (auto& [id, p] : peers_) any = any || p->close_request != nullptr;
  return any;
}

// Phase 2: force-close the endpoints of failed peers; free them once UCX is done.
void UcxAgent::advance_closes() {
  for (auto& [id, peer] : peers_) {
    if (peer->failed && peer->ep != nullptr && peer->close_request == nullptr) force_close_endpoint(peer.get());
    if (peer->close_request != nullptr && ucp_request_check_status(peer->close_request) != UCS_INPROGRESS) {
      ucp_request_free(peer->close_request);
      peer->close_request = nullptr;
      peer->ep = nullptr;
    }
  }
}

// The only way to abort in-flight RMA (ucx-notes.md §6): outstanding requests complete with
// UCS_ERR_CANCELED over the following progress calls. Our peers' endpoints are PEER mode, the
// only mode in which UCX accepts FORCE. Lock held.
void UcxAgent::force_close_endpoint(Peer* peer) {
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucs_status_ptr_t p = ucp_ep_close_nbx(peer->ep, &param);
  if (p == nullptr || UCS_PTR_IS_ERR(p)) {
    peer->ep = nullptr;
  } else {
    peer->close_request = p;
  }
}

// Phase 3: an operation still owed something by its peer past its deadline times out, and the
// peer is failed: RMA cannot be cancelled, so force-closing the endpoint is the only abort, the
// peer is unusable afterwards and reconnecting takes fresh metadata.
void UcxAgent::check_deadlines() {
  const auto now = Clock::now();
  for (auto& [id, op] : ops_) {
    OpCore& c = core(*op);
    if (!c.past_deadline(now) || !c.status.is_ok()) continue;
    if (!std::visit([](auto& o) { return o.waiting_on_peer(); }, *op)) continue;
    c.status = Status(StatusCode::kTimeout, std::string(c.verb) + " from " + c.who() + " timed out after " + std::to_string(c.timeout_ms) +
                                                " ms (" + std::to_string(c.done_bytes) + " of " + std::to_string(c.total_bytes) + " bytes done)");
    if (Peer* peer = find_peer(c.peer)) fail_peer(peer, Status(StatusCode::kTimeout, c.who() + " stopped answering: " + c.status.message()), "timeout");
  }
}

// Phase 4: report finished operations (kOpDone) and retire them once UCX is done with them.
void UcxAgent::finish_ops() {
  for (auto it = ops_.begin(); it != ops_.end();) {
    Op& op = *it->second;
    OpCore& c = core(op);
    if (auto* served = std::get_if<ServedRead>(&op)) served->check_owner(find_peer(c.peer), bulk_worker_);
    if (c.reported) {  // a failed served read, reported; UCX is finishing its receives
      const Peer* peer = find_peer(c.peer);
      const bool owner_closed = peer == nullptr || (peer->failed && peer->ep == nullptr && peer->close_request == nullptr);
      if (c.outstanding == 0) {
        it = ops_.erase(it);
      } else if (owner_closed) {
        parked_.push_back(std::move(it->second));
        it = ops_.erase(it);
      } else {
        ++it;
      }
      continue;
    }
    if (!std::visit([](auto& o) { return o.finished(); }, op)) {
      ++it;
      continue;
    }
    AgentEvent e;
    e.kind = AgentEvent::Kind::kOpDone;
    e.op_id = c.id;
    e.status = c.status;
    e.peer = c.peer;
    e.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - c.start).count();
    if (c.outstanding > 0) {
      c.reported = true;
      ++it;
    } else {
      it = ops_.erase(it);
    }
    push_event(std::move(e));
  }
  parked_.erase(std::remove_if(parked_.begin(), parked_.end(), [](const std::unique_ptr<Op>& op) { return core(*op).outstanding == 0; }),
                parked_.end());
}

void UcxAgent::fail_peer(Peer* peer, Status why, const std::string& operation) {
  if (peer->failed) return;
  peer->failed = true;
  peer->failure = why;
  AgentEvent e;
  e.kind = AgentEvent::Kind::kPeerError;
  e.peer = peer->id;
  e.peer_name = peer->name;
  e.operation = operation;
  e.status = why;
  push_event(std::move(e));
}

void UcxAgent::push_event(AgentEvent event) {
  std::lock_guard<std::mutex> lk(events_mu_);
  if (event.kind == AgentEvent::Kind::kOpDone && pending_ > 0) pending_--;
  events_.push_back(std::move(event));
}

std::vector<AgentEvent> UcxAgent::take_events() {
  std::lock_guard<std::mutex> lk(events_mu_);
  wake_pending_ = false;
  std::vector<AgentEvent> out;
  out.swap(events_);
  return out;
}

// ---- UCX callbacks ------------------------------------------------------------------------

void UcxAgent::on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* self = static_cast<UcxAgent*>(arg);
  for (auto& [id, peer] : self->peers_) {
    if (peer->ep == ep) {
      self->fail_peer(peer.get(), Status(StatusCode::kPeerUnreachable, "peer '" + peer->name + "' failed: " + ucs_text(status)), "keepalive");
      return;
    }
  }
}

ucs_status_t UcxAgent::on_notify(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                 const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxAgent*>(arg);
  const auto* h = static_cast<const uint8_t*>(header);
  if (header_length < 10) return UCS_OK;  // not ours; drop
  uint64_t uid;
  uint16_t name_len;
  std::memcpy(&uid, h, 8);
  std::memcpy(&name_len, h + 8, 2);
  if (header_length < size_t(10) + name_len) return UCS_OK;
  AgentEvent e;
  e.kind = AgentEvent::Kind::kNotification;
  e.peer = kUnknownPeer;
  e.peer_name.assign(reinterpret_cast<const char*>(h + 10), name_len);
  for (auto& [id, p] : self->peers_) {
    if (p->uid == uid && !p->disconnected) e.peer = id;
  }
  e.payload.assign(h + 10 + name_len, h + header_length);
  self->push_event(std::move(e));
  return UCS_OK;
}

// Owner side (served_read_owner.h): only queue; endpoints are created outside callbacks.
ucs_status_t UcxAgent::on_serve_request(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                        const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxAgent*>(arg);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) return UCS_OK;  // hpd sends these eagerly
  ServeRequest q;
  if (!decode_serve_request(static_cast<const uint8_t*>(data), length, &q).is_ok()) return UCS_OK;
  self->owner_.queue(std::move(q));
  return UCS_OK;
}

// Reader side: the owner refused or gave up.
ucs_status_t UcxAgent::on_serve_reply(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                      const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxAgent*>(arg);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) return UCS_OK;
  ServeReply r;
  if (!decode_serve_reply(static_cast<const uint8_t*>(data), length, &r).is_ok()) return UCS_OK;
  auto it = self->ops_.find(r.tag_base >> 32);
  if (it == self->ops_.end()) return UCS_OK;
  auto* read = std::get_if<ServedRead>(it->second.get());
  if (read == nullptr) return UCS_OK;
  Peer* owner = self->find_peer(read->peer);
  if (owner == nullptr || owner->uid != r.owner_uid || r.code == StatusCode::kOk) return UCS_OK;
  read->refused(*owner, r);
  return UCS_OK;
}

// ---- teardown -------------------------------------------------------------------------------

Status UcxAgent::close() {
  if (closed_) return Status::ok();
  stop_.store(true);
  kick();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lk(mu_);
  closed_ = true;
  if (worker_ != nullptr) {
    for (auto& [oid, op] : ops_) {
      if (auto* served = std::get_if<ServedRead>(op.get())) served->cancel_receives(bulk_worker_);
    }
    owner_.close();
    for (auto& [id, peer] : peers_) {
      if (peer->ep != nullptr && peer->close_request == nullptr) force_close_endpoint(peer.get());
    }
    // Bounded: in-flight requests complete with UCS_ERR_CANCELED over the next progress calls.
    const auto until = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < until) {
      progress_workers();
      bool waiting = false;
      for (auto& [id, peer] : peers_) {
        if (peer->close_request == nullptr) continue;
        if (ucp_request_check_status(peer->close_request) != UCS_INPROGRESS) {
          ucp_request_free(peer->close_request);
          peer->close_request = nullptr;
          peer->ep = nullptr;
        } else {
          waiting = true;
        }
      }
      bool outstanding = owner_.has_outstanding();
      for (auto& [oid, op] : ops_) outstanding = outstanding || core(*op).outstanding > 0;
      if (!waiting && !outstanding) break;
    }
    for (auto& [id, peer] : peers_) {
      for (auto& [rid, rr] : peer->regions) {
        if (rr.rkey != nullptr) ucp_rkey_destroy(rr.rkey);
        rr.rkey = nullptr;
      }
    }
  }
  {
    std::lock_guard<std::mutex> ek(events_mu_);
    pending_ = 0;
  }
  grants_.clear();
  if (context_ != nullptr) {
    for (auto& [id, r] : regions_) {
      // A kernel still running over the region would fault on unmapped memory: wait for it, and
      // leave the region mapped (leaked until exit) rather than crash if it does not finish.
      if (wait_memory_idle(r.base, r.size_bytes, kKernelDrainTimeout)) ucp_mem_unmap(context_, r.memh);
    }
  }
  regions_.clear();
  lists_.clear();
  // Requests UCX never completed within the bound (sends to a reader that stopped taking them;
  // receives matched to a send that never came) still point into their operations, so those
  // live until the workers are gone: ucp_worker_destroy purges what is queued (its callbacks run
  // inside it, into live operations) and releases the request pools (a "not returned to mpool"
  // warning names each such request). After that UCX can never call back, and they are freed.
  if (bulk_worker_ != nullptr) {
    if (bulk_address_ != nullptr) ucp_worker_release_address(bulk_worker_, bulk_address_);
    ucp_worker_destroy(bulk_worker_);
    bulk_worker_ = nullptr;
  }
  if (worker_ != nullptr) {
    if (worker_address_ != nullptr) ucp_worker_release_address(worker_, worker_address_);
    ucp_worker_destroy(worker_);
    worker_ = nullptr;
  }
  ops_.clear();
  parked_.clear();
  owner_.release_after_worker_destroyed();
  if (context_ != nullptr) {
    ucp_cleanup(context_);
    context_ = nullptr;
  }
  return Status::ok();
}

}  // namespace hpd::transport

namespace hpd {

Status Agent::create(const AgentOptions& options, std::function<void()> wake, std::unique_ptr<Agent>* out) {
  auto agent = std::make_unique<transport::UcxAgent>(options, std::move(wake));
  Status st = agent->init();
  if (!st.is_ok()) {
    agent->close();
    return st;
  }
  *out = std::move(agent);
  return Status::ok();
}

}  // namespace hpd
