// The UCX implementation of hpd::Agent. Reading order: create() (config choices and why),
// run() (the progress loop), post_* (how work enters), the callbacks, close().
//
// Ownership: the agent owns its regions' UCX memory handles; allocated regions are UCX memory
// (sysv/posix shared segments) unmapped by free_region()/close(); registered regions belong to the
// caller. Op objects live in ops_ until their last UCX request has completed, because UCX
// callbacks point at them.
#include <poll.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "hpd/agent.h"
#include "hpd/busy_memory.h"
#include "metadata.h"
#include "served_read.h"

namespace hpd::transport {
namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kNotifyAmId = 0x4850;  // "HP"
// A GET larger than this is split, so the progress thread releases the UCX lock between pieces
// (a shared-memory GET is one memcpy under that lock; 8 MiB is ~0.5 ms at 20 GB/s).
constexpr uint64_t kMaxGetPieceBytes = 8ull << 20;
// Bytes posted per loop iteration before progressing and releasing the lock.
constexpr uint64_t kPostBudgetBytes = 32ull << 20;
// Emulated (TCP, registered-memory) GETs return requests; keep a window so the request pool stays small.
constexpr size_t kMaxOutstandingPerOp = 64;
// Served reads (served_read.h): piece size (one tagged message each) and the sends a serving owner
// keeps in flight per request. Measured on loopback TCP (2 cores): windows of 2-16 pieces of
// 2-64 MiB all land within noise of each other; 8 x 8 MiB was the steadiest. The window also
// bounds what a reader that gave up can still receive before the owner reaches its deadline.
constexpr uint64_t kServedPieceBytes = 8ull << 20;
constexpr size_t kMaxOutstandingServe = 8;
// After the last UCX event, how long the progress thread keeps its sleeps short (1 ms).
constexpr std::chrono::milliseconds kActiveWindow{50};
// How long closing or freeing waits for a verification kernel over a region (a 512 MiB digest
// takes well under a second).
constexpr std::chrono::milliseconds kKernelDrainTimeout{10000};
// After the last UCX event, how long the progress thread keeps polling the worker without
// sleeping. An emulated GET over TCP moves one segment per event; sleeping on the efd between
// segments cost a context switch per 256 KiB on the reader (~430 per 169 MB read).
constexpr std::chrono::microseconds kSpinWindow{200};

std::string ucs_text(ucs_status_t s) { return ucs_status_string(s); }

struct Region {
  uint32_t id = 0;
  ucp_mem_h memh = nullptr;
  uint8_t* base = nullptr;
  uint64_t size_bytes = 0;
  bool allocated = false;
  std::vector<uint8_t> rkey;
};

struct RemoteRegion {
  RegionMetadata meta;
  ucp_rkey_h rkey = nullptr;
};

class UcxAgent;

// A connected peer (we read from it), or — with `reverse` — a reader whose reads we serve (served_read.h).
struct Peer {
  UcxAgent* agent = nullptr;
  uint32_t id = 0;
  std::string name;
  uint64_t uid = 0;
  ucp_ep_h ep = nullptr;
  std::map<uint32_t, RemoteRegion> regions;
  bool failed = false;
  bool disconnected = false;
  Status failure;
  void* close_request = nullptr;
  bool reverse = false;
  bool served = false;               // our READs from this peer are served reads
};

struct List {
  bool remote = false;
  uint32_t peer = 0;
  std::vector<Descriptor> descs;
};

struct Piece {
  uint8_t* local = nullptr;
  const uint8_t* source = nullptr;  // copy ops
  uint64_t remote_address = 0;      // read ops (served reads, reader side: the offset in remote_region)
  ucp_rkey_h rkey = nullptr;
  uint64_t size_bytes = 0;
  uint64_t tag = 0;                 // served reads: the piece's tag (both sides)
  uint32_t remote_region = 0;       // served reads, reader side: the owner's region
};

struct Op {
  // kServe: an owner executing a reader's served read (internal: never reported to JS).
  enum class Type { kRead, kCopy, kNotify, kServe };
  enum class ServePhase { kSending, kReplying };
  Type type = Type::kRead;
  uint64_t id = 0;
  uint32_t peer = 0;
  std::vector<Piece> pieces;
  size_t next = 0;
  size_t outstanding = 0;
  uint64_t total_bytes = 0;
  uint64_t done_bytes = 0;
  Status status;
  bool has_deadline = false;
  uint32_t timeout_ms = 0;
  Clock::time_point start;
  Clock::time_point deadline;
  std::vector<uint8_t> header;  // notify: must stay valid until the send completes (UCX 1.13)
  UcxAgent* agent = nullptr;
  // Served reads (served_read.h), reader side: pieces are tagged receives into local memory.
  bool served = false;
  bool request_sent = false;
  bool cancelled = false;        // the receives still posted were cancelled (the read failed)
  bool reported = false;         // kOpDone already pushed; the op lingers until UCX is done with it
  std::vector<void*> recvs;      // posted receive requests by piece, nullptr once complete
  std::vector<uint8_t> message;  // SERVE_REQUEST / SERVE_REPLY bytes, alive until the send completes
  // Serving side (`peer` is then the reader's id in readers_).
  uint64_t tag_base = 0;
  ServePhase phase = ServePhase::kSending;
};

struct Request {
  Op* op;
  uint64_t size_bytes;
  size_t recv_slot = SIZE_MAX;  // served reads: index in op->recvs (a tagged receive)
};

const char* op_verb(Op::Type t) {
  switch (t) {
    case Op::Type::kRead: return "read";
    case Op::Type::kCopy: return "copy";
    case Op::Type::kNotify: return "notify";
    case Op::Type::kServe: return "serve";
  }
  return "op";
}

uint64_t random_uid() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd();
  v ^= uint64_t(getpid()) << 16;
  v ^= uint64_t(Clock::now().time_since_epoch().count());
  return v == 0 ? 1 : v;
}

class UcxAgent final : public Agent {
 public:
  UcxAgent(AgentOptions options, std::function<void()> wake) : options_(std::move(options)), wake_(std::move(wake)) {}
  ~UcxAgent() override { close(); }

  Status init();

  Status alloc_region(uint64_t size_bytes, RegionInfo* out) override;
  Status register_memory(void* address, uint64_t size_bytes, RegionInfo* out) override;
  Status free_region(uint32_t region) override;
  Status metadata(std::vector<uint8_t>* out) override;
  Status connect(const uint8_t* blob, size_t size, PeerInfo* out) override;
  Status disconnect(uint32_t peer) override;
  Status prepare_local(const std::vector<Descriptor>& descs, uint32_t* list) override;
  Status prepare_remote(uint32_t peer, const std::vector<Descriptor>& descs, uint32_t* list) override;
  Status release_list(uint32_t list) override;
  Status post_read(uint32_t local_list, const uint32_t* local_idx, uint32_t remote_list, const uint32_t* remote_idx,
                   size_t count, uint32_t timeout_ms, uint64_t* op_id, BatchShape* shape) override;
  Status post_copy(uint32_t dst_list, const uint32_t* dst_idx, uint32_t src_list, const uint32_t* src_idx,
                   size_t count, uint64_t* op_id, BatchShape* shape) override;
  Status post_notify(uint32_t peer, const uint8_t* data, size_t size, uint32_t timeout_ms, uint64_t* op_id) override;
  std::vector<AgentEvent> take_events() override;
  size_t pending_ops() override {
    std::lock_guard<std::mutex> lk(events_mu_);
    return pending_;
  }
  Status close() override;
  bool closed() const override { return closed_; }

  // UCX callbacks (run inside ucp_worker_progress, on the progress thread, lock held).
  static void on_request_done(void* request, ucs_status_t status, void* user_data);
  static void on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data);
  static void on_close_done(void* request, ucs_status_t status, void* user_data) {}
  static void on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  static ucs_status_t on_notify(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                const ucp_am_recv_param_t* param);
  static ucs_status_t on_serve_request(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                       const ucp_am_recv_param_t* param);
  static ucs_status_t on_serve_reply(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                     const ucp_am_recv_param_t* param);

 private:
  void force_close_endpoint(Peer* peer);
  // with_regions = false: identity and worker addresses only (what a serving owner needs).
  AgentMetadata own_metadata(bool with_regions = true) const;
  bool decide_served(const AgentMetadata& peer) const;
  Status set_am_handler(ucp_worker_h worker, unsigned id, ucp_am_recv_callback_t cb);
  Status create_worker(ucp_worker_h* worker, ucp_address_t** address, size_t* address_len, int* efd);
  unsigned progress_workers();
  // Served reads (served_read.h): reader side, then serving side.
  void post_serve_request(Op* op, Peer* peer);
  Status send_message(Op* op, ucp_ep_h ep, unsigned am_id);
  void start_serves();
  Status accept_reader(const ServeRequest& request, Peer** out);
  Status plan_serve(const ServeRequest& request, Op* op);
  void advance_serves();
  void cancel_receives(Op* op);
  Status add_region(ucp_mem_h memh, uint8_t* base, uint64_t size_bytes, bool allocated, RegionInfo* out);

  // Held by every thread that touches UCX state. `js_waiting_` lets the progress thread step
  // aside so a synchronous call from the event loop is not starved by a busy transfer loop.
  class Lock {
   public:
    explicit Lock(UcxAgent* a) : a_(a) {
      a_->js_waiting_.fetch_add(1);
      a_->mu_.lock();
      a_->js_waiting_.fetch_sub(1);
    }
    ~Lock() { a_->mu_.unlock(); }

   private:
    UcxAgent* a_;
  };

  void run();
  void kick() {
    if (worker_ != nullptr) ucp_worker_signal(worker_);
  }
  Status check_open() const {
    if (closed_ || stop_.load()) return Status(StatusCode::kClosed, "agent '" + options_.name + "' is closed");
    return Status::ok();
  }
  Status build_pairs(const List& a, const uint32_t* a_idx, const List& b, const uint32_t* b_idx, size_t count,
                     std::vector<PairedRun>* runs, BatchShape* shape);
  uint8_t* local_address(uint32_t region, uint64_t offset_bytes);
  void add_op(std::unique_ptr<Op> op);
  void fail_peer(Peer* peer, Status why, const std::string& operation);
  Peer* find_reader(uint32_t id) {
    auto it = readers_.find(id);
    return it == readers_.end() ? nullptr : it->second.get();
  }
  void post_pieces();
  void post_notify_op(Op* op);
  void advance_closes();
  void check_deadlines();
  void finish_ops();
  void push_event(AgentEvent event);
  Peer* find_peer(uint32_t id) {
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second.get();
  }

  AgentOptions options_;
  std::function<void()> wake_;
  uint64_t uid_ = random_uid();
  uint64_t tcp_segment_bytes_ = 0;
  std::string host_;           // "<hostname>/<boot id>"
  bool rdma_present_ = false;  // an RDMA device exists here: UCX's GET is one-sided across hosts
  std::chrono::milliseconds active_window_ = kActiveWindow;
  std::chrono::microseconds spin_window_ = kSpinWindow;
  unsigned ucx_major_ = 0, ucx_minor_ = 0, ucx_release_ = 0;

  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  ucp_address_t* worker_address_ = nullptr;
  size_t worker_address_len_ = 0;
  int efd_ = -1;
  // The bulk worker carries served reads' data only: tagged receives on the reader, sends on the
  // owner over endpoints without UCX peer error handling. UCX picks its zero-copy rendezvous
  // (TCP PUT straight into the posted buffer) only for such endpoints (with peer error handling it
  // wants memory invalidation, which TCP lacks, and copies every byte through a bounce segment).
  // Failures still surface: peer death through the main worker's endpoints (keepalive), a
  // stuck owner through deadlines on both sides.
  ucp_worker_h bulk_worker_ = nullptr;
  ucp_address_t* bulk_address_ = nullptr;
  size_t bulk_address_len_ = 0;
  int bulk_efd_ = -1;

  std::mutex mu_;
  std::atomic<int> js_waiting_{0};
  std::atomic<bool> stop_{false};
  bool closed_ = false;
  std::thread thread_;

  uint32_t next_region_ = 1;
  uint32_t next_peer_ = 1;
  uint32_t next_list_ = 1;
  uint64_t next_op_ = 1;
  std::map<uint32_t, Region> regions_;
  std::map<uint32_t, std::unique_ptr<Peer>> peers_;
  std::map<uint32_t, List> lists_;
  std::map<uint64_t, std::unique_ptr<Op>> ops_;
  // Ops whose peer's endpoint was force-closed while UCX still held requests of theirs that it
  // never completes (a rendezvous waiting on a dead peer). They no longer block freeing regions:
  // nothing moves on a closed endpoint. Kept (and leaked at close) in case UCX calls back anyway.
  std::vector<std::unique_ptr<Op>> zombies_;
  std::map<uint32_t, std::unique_ptr<Peer>> readers_;  // readers whose reads we serve (ids share next_peer_)
  std::vector<ServeRequest> serve_queue_;               // received, not yet started (AM callback → loop)

  std::mutex events_mu_;
  std::vector<AgentEvent> events_;
  bool wake_pending_ = false;
  size_t pending_ = 0;
};

Status UcxAgent::init() {
  ucp_get_version(&ucx_major_, &ucx_minor_, &ucx_release_);
  // Tuning knob for measurements (not a user setting): HPD_TRANSPORT_ACTIVE_WINDOW_MS, 0 disables.
  if (const char* w = std::getenv("HPD_TRANSPORT_ACTIVE_WINDOW_MS")) active_window_ = std::chrono::milliseconds(std::strtoul(w, nullptr, 10));
  if (const char* w = std::getenv("HPD_TRANSPORT_SPIN_US")) spin_window_ = std::chrono::microseconds(std::strtoul(w, nullptr, 10));
  ucp_config_t* config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_config_read failed: " + ucs_text(s));
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

unsigned UcxAgent::progress_workers() {
  unsigned progressed = 0;
  for (unsigned n; (n = ucp_worker_progress(worker_) + ucp_worker_progress(bulk_worker_)) != 0;) progressed += n;
  return progressed;
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

// kAuto serves reads where UCX would emulate GET over TCP: a TCP-only agent, or a peer on another
// host when no RDMA device exists here. Same-host shared memory and RDMA keep one-sided GETs.
bool UcxAgent::decide_served(const AgentMetadata& peer) const {
  switch (options_.read_protocol) {
    case ReadProtocol::kGet: return false;
    case ReadProtocol::kServed: return true;
    case ReadProtocol::kAuto: break;
  }
  if (options_.transport == TransportChoice::kTcp) return true;
  if (options_.transport == TransportChoice::kShm) return false;
  return peer.host != host_ && !rdma_present_;
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
      start_serves();
      post_pieces();
      const unsigned progressed = progress_workers();
      const auto now = Clock::now();
      if (progressed > 0) {
        active_until = now + active_window_;
        spin_until = now + spin_window_;
      }
      advance_closes();
      check_deadlines();
      advance_serves();
      finish_ops();
      for (auto& [id, op] : ops_) {
        const size_t window = op->type == Op::Type::kServe ? kMaxOutstandingServe : kMaxOutstandingPerOp;
        if (op->status.is_ok() && op->next < op->pieces.size() && op->outstanding < window) more_work = true;
        if (op->served && !op->request_sent && op->status.is_ok()) more_work = true;
      }
      more_work = more_work || !serve_queue_.empty();
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
    bool busy;
    {
      std::lock_guard<std::mutex> lk(mu_);
      busy = !ops_.empty() || !serve_queue_.empty();
      for (auto& [id, p] : peers_) busy = busy || p->close_request != nullptr;
      for (auto& [id, p] : readers_) busy = busy || p->close_request != nullptr;
    }
    // An owner serving emulated GETs (TCP, registered memory) has no ops of its own, and a reply
    // stalled on a full socket may raise no efd event; while traffic is recent, wake every 1 ms.
    const bool recent = Clock::now() < active_until;
    pollfd pfds[2] = {{efd_, POLLIN, 0}, {bulk_efd_, POLLIN, 0}};
    poll(pfds, 2, busy || recent ? 1 : 100);
  }
}

void UcxAgent::post_pieces() {
  uint64_t budget = kPostBudgetBytes;
  for (auto& [id, opp] : ops_) {
    Op* op = opp.get();
    if (op->type == Op::Type::kNotify) {
      if (op->next == 0 && op->status.is_ok()) post_notify_op(op);
      continue;
    }
    if (op->served) {
      if (!op->request_sent && op->status.is_ok()) post_serve_request(op, find_peer(op->peer));
      continue;
    }
    const bool serve = op->type == Op::Type::kServe;
    Peer* peer = op->type == Op::Type::kRead ? find_peer(op->peer) : serve ? find_reader(op->peer) : nullptr;
    const size_t window = serve ? kMaxOutstandingServe : kMaxOutstandingPerOp;
    while (op->status.is_ok() && op->next < op->pieces.size() && op->outstanding < window && budget > 0) {
      Piece& piece = op->pieces[op->next++];
      if (op->type == Op::Type::kCopy) {
        std::memcpy(piece.local, piece.source, piece.size_bytes);
        op->done_bytes += piece.size_bytes;
      } else {
        if (peer == nullptr || peer->failed || peer->ep == nullptr) {
          const std::string verb = serve ? "serve to " : "read from ";
          op->status = peer != nullptr && !peer->failure.is_ok()
                           ? Status(peer->failure.code(), verb + peer->failure.message())
                           : Status(StatusCode::kPeerUnreachable, verb + "a peer that is gone");
          break;
        }
        ucp_request_param_t param{};
        param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
        param.cb.send = &UcxAgent::on_request_done;
        auto* req = new Request{op, piece.size_bytes};
        param.user_data = req;
        ucs_status_ptr_t p =
            serve ? ucp_tag_send_nbx(peer->ep, piece.local, piece.size_bytes, piece.tag, &param)
                  : ucp_get_nbx(peer->ep, piece.local, piece.size_bytes, piece.remote_address, piece.rkey, &param);
        if (p == nullptr) {
          op->done_bytes += piece.size_bytes;
          delete req;
        } else if (UCS_PTR_IS_ERR(p)) {
          delete req;
          op->status = Status(StatusCode::kPeerUnreachable, std::string(serve ? "serve to" : "read from") + " peer '" +
                                                                peer->name + "' failed to post: " + ucs_text(UCS_PTR_STATUS(p)));
        } else {
          op->outstanding++;
        }
      }
      budget = piece.size_bytes >= budget ? 0 : budget - piece.size_bytes;
    }
  }
}

void UcxAgent::post_notify_op(Op* op) {
  op->next = 1;
  Peer* peer = find_peer(op->peer);
  if (peer == nullptr || peer->failed || peer->ep == nullptr) {
    op->status = peer != nullptr && !peer->failure.is_ok() ? Status(peer->failure.code(), "notify " + peer->failure.message())
                                                           : Status(StatusCode::kPeerUnreachable, "notify: peer is gone");
    return;
  }
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &UcxAgent::on_request_done;
  auto* req = new Request{op, 0};
  param.user_data = req;
  ucs_status_ptr_t p = ucp_am_send_nbx(peer->ep, kNotifyAmId, op->header.data(), op->header.size(), nullptr, 0, &param);
  if (p == nullptr) {
    delete req;
  } else if (UCS_PTR_IS_ERR(p)) {
    delete req;
    op->status = Status(StatusCode::kPeerUnreachable,
                        "notify peer '" + peer->name + "' failed to post: " + ucs_text(UCS_PTR_STATUS(p)));
  } else {
    op->outstanding++;
  }
}

void UcxAgent::on_request_done(void* request, ucs_status_t status, void* user_data) {
  auto* req = static_cast<Request*>(user_data);
  Op* op = req->op;
  op->outstanding--;
  if (status == UCS_OK) {
    op->done_bytes += req->size_bytes;
  } else if (op->status.is_ok()) {
    Peer* peer = op->type == Op::Type::kServe ? op->agent->find_reader(op->peer) : op->agent->find_peer(op->peer);
    const std::string who = peer != nullptr ? "peer '" + peer->name + "'" : "peer";
    op->status = Status(StatusCode::kPeerUnreachable, std::string(op_verb(op->type)) + " from " + who +
                                                          " failed: " + ucs_text(status));
  }
  delete req;
  ucp_request_free(request);
}

void UcxAgent::on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* peer = static_cast<Peer*>(arg);
  peer->agent->fail_peer(
      peer, Status(StatusCode::kPeerUnreachable, "peer '" + peer->name + "' failed: " + ucs_text(status)), "keepalive");
}

void UcxAgent::fail_peer(Peer* peer, Status why, const std::string& operation) {
  if (peer->failed) return;
  peer->failed = true;
  peer->failure = why;
  if (peer->reverse) return;  // a reader we serve: its requests fail in advance_serves(); JS never connected it
  AgentEvent e;
  e.kind = AgentEvent::Kind::kPeerError;
  e.peer = peer->id;
  e.peer_name = peer->name;
  e.operation = operation;
  e.status = why;
  push_event(std::move(e));
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

// The only way to abort in-flight RMA (ucx-notes.md §6): outstanding requests complete with
// UCS_ERR_CANCELED over the following progress calls. Lock held.
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

void UcxAgent::advance_closes() {
  for (auto* map : {&peers_, &readers_})
  for (auto& [id, peer] : *map) {
    if (peer->failed && peer->ep != nullptr && peer->close_request == nullptr) {
      force_close_endpoint(peer.get());
    }
    if (peer->close_request != nullptr && ucp_request_check_status(peer->close_request) != UCS_INPROGRESS) {
      ucp_request_free(peer->close_request);
      peer->close_request = nullptr;
      peer->ep = nullptr;
    }
  }
  // A failed reader's endpoint is gone: nothing can call back into it any more.
  for (auto it = readers_.begin(); it != readers_.end();) {
    const Peer& r = *it->second;
    it = r.failed && r.ep == nullptr && r.close_request == nullptr ? readers_.erase(it) : std::next(it);
  }
}

void UcxAgent::check_deadlines() {
  const auto now = Clock::now();
  for (auto& [id, op] : ops_) {
    if (op->type == Op::Type::kServe) continue;  // the owner's side of a served read: advance_serves()
    if (!op->has_deadline || !op->status.is_ok() || now < op->deadline) continue;
    const bool posted = op->served ? op->request_sent : op->next >= op->pieces.size();
    if (posted && op->outstanding == 0 && op->type != Op::Type::kNotify) continue;
    if (op->type == Op::Type::kNotify && op->outstanding == 0) continue;
    Peer* peer = find_peer(op->peer);
    const std::string who = peer != nullptr ? "peer '" + peer->name + "'" : "peer";
    op->status = Status(StatusCode::kTimeout, std::string(op_verb(op->type)) + " from " + who + " timed out after " +
                                                  std::to_string(op->timeout_ms) + " ms (" + std::to_string(op->done_bytes) +
                                                  " of " + std::to_string(op->total_bytes) + " bytes done)");
    // RMA cannot be cancelled; force-closing the endpoint is the only abort, so the peer is
    // unusable afterwards and reconnecting takes fresh metadata.
    if (peer != nullptr) fail_peer(peer, Status(StatusCode::kTimeout, who + " stopped answering: " + op->status.message()), "timeout");
  }
}

void UcxAgent::finish_ops() {
  for (auto it = ops_.begin(); it != ops_.end();) {
    Op* op = it->second.get();
    if (op->type == Op::Type::kServe) {
      ++it;  // internal: advance_serves() retires it
      continue;
    }
    if (op->served && op->request_sent) {
      // A failed owner sends nothing more: pieces still missing fail the read.
      Peer* peer = find_peer(op->peer);
      if (op->status.is_ok() && op->outstanding > 0 && (peer == nullptr || peer->failed)) {
        op->status = peer != nullptr ? Status(peer->failure.code(), "read from " + peer->failure.message())
                                     : Status(StatusCode::kPeerUnreachable, "read from a peer that is gone");
      }
      if (!op->status.is_ok()) cancel_receives(op);
    }
    if (op->reported) {  // failure already reported; UCX is finishing with it
      Peer* peer = find_peer(op->peer);
      const bool closed = peer == nullptr || (peer->failed && peer->ep == nullptr && peer->close_request == nullptr);
      if (op->outstanding > 0 && closed) {
        zombies_.push_back(std::move(it->second));
        it = ops_.erase(it);
      } else {
        it = op->outstanding == 0 ? ops_.erase(it) : std::next(it);
      }
      continue;
    }
    const bool all_posted = (op->served ? op->request_sent : op->next >= op->pieces.size()) || !op->status.is_ok();
    const bool notify_posted = op->type != Op::Type::kNotify || op->next > 0 || !op->status.is_ok();
    // A failed served read is reported at once: a receive already matched to the owner's send
    // completes only when the owner's endpoint goes (it closes it at its own deadline).
    const bool report_early = op->served && op->request_sent && !op->status.is_ok();
    if (!(all_posted && notify_posted && op->outstanding == 0) && !report_early) {
      ++it;
      continue;
    }
    AgentEvent e;
    e.kind = AgentEvent::Kind::kOpDone;
    e.op_id = op->id;
    e.status = op->status;
    e.peer = op->peer;
    e.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - op->start).count();
    if (op->outstanding > 0) {
      op->reported = true;
      ++it;
    } else {
      it = ops_.erase(it);
    }
    push_event(std::move(e));
  }
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

// ---- regions --------------------------------------------------------------------------------

Status UcxAgent::alloc_region(uint64_t size_bytes, RegionInfo* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  if (size_bytes == 0) return Status(StatusCode::kInvalidArgument, "region size must be positive, got 0 bytes");
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  mp.address = nullptr;
  mp.length = size_bytes;
  mp.flags = UCP_MEM_MAP_ALLOCATE;
  ucp_mem_h memh = nullptr;
  ucs_status_t s = ucp_mem_map(context_, &mp, &memh);
  if (s != UCS_OK) {
    return Status(StatusCode::kNoMemory, "UCX could not allocate a shared region of " + std::to_string(size_bytes) +
                                             " bytes: " + ucs_text(s) +
                                             " (check free space in /dev/shm and `ipcs -l` shared memory limits)");
  }
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  s = ucp_mem_query(memh, &attr);
  if (s != UCS_OK) {
    ucp_mem_unmap(context_, memh);
    return Status(StatusCode::kTransport, "ucp_mem_query failed: " + ucs_text(s));
  }
  return add_region(memh, static_cast<uint8_t*>(attr.address), size_bytes, true, out);
}

Status UcxAgent::register_memory(void* address, uint64_t size_bytes, RegionInfo* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  if (address == nullptr || size_bytes == 0) return Status(StatusCode::kInvalidArgument, "cannot register an empty buffer");
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = address;
  mp.length = size_bytes;
  ucp_mem_h memh = nullptr;
  ucs_status_t s = ucp_mem_map(context_, &mp, &memh);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_mem_map (register) failed: " + ucs_text(s));
  return add_region(memh, static_cast<uint8_t*>(address), size_bytes, false, out);
}

// Packs the rkey of a freshly mapped region and records it; unmaps it again on failure.
// Called with the agent lock held.
Status UcxAgent::add_region(ucp_mem_h memh, uint8_t* base, uint64_t size_bytes, bool allocated, RegionInfo* out) {
  Region r;
  r.id = next_region_++;
  r.memh = memh;
  r.base = base;
  r.size_bytes = size_bytes;
  r.allocated = allocated;
  void* rkey = nullptr;
  size_t rkey_len = 0;
  ucs_status_t s = ucp_rkey_pack(context_, memh, &rkey, &rkey_len);
  if (s != UCS_OK) {
    ucp_mem_unmap(context_, memh);
    return Status(StatusCode::kTransport, "ucp_rkey_pack failed: " + ucs_text(s));
  }
  r.rkey.assign(static_cast<uint8_t*>(rkey), static_cast<uint8_t*>(rkey) + rkey_len);
  ucp_rkey_buffer_release(rkey);
  *out = RegionInfo{r.id, r.base, r.size_bytes, allocated};
  regions_[r.id] = std::move(r);
  kick();
  return Status::ok();
}

Status UcxAgent::free_region(uint32_t region) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  auto it = regions_.find(region);
  if (it == regions_.end()) return Status(StatusCode::kInvalidArgument, "no region " + std::to_string(region));
  if (!ops_.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "region " + std::to_string(region) + " cannot be freed while transfers are in flight on this agent" +
                      " (reads of its own, or reads it serves to a peer)");
  }
  if (!wait_memory_idle(it->second.base, it->second.size_bytes, kKernelDrainTimeout)) {
    return Status(StatusCode::kTimeout, "region " + std::to_string(region) + " is still in use by a verification kernel");
  }
  // Unmapping is not revocation: a same-host reader keeps the orphaned pages (ucx-notes.md §2).
  // Peers must be told by protocol (a notification) before the owner frees.
  ucp_mem_unmap(context_, it->second.memh);
  regions_.erase(it);
  return Status::ok();
}

// ---- metadata and peers ---------------------------------------------------------------------

Status UcxAgent::metadata(std::vector<uint8_t>* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  *out = encode_metadata(own_metadata());
  return Status::ok();
}

// Lock held.
AgentMetadata UcxAgent::own_metadata(bool with_regions) const {
  AgentMetadata m;
  m.ucx_major = ucx_major_;
  m.ucx_minor = ucx_minor_;
  m.ucx_release = ucx_release_;
  m.uid = uid_;
  m.tcp_segment_bytes = tcp_segment_bytes_;
  m.name = options_.name;
  m.host = host_;
  const auto* a = reinterpret_cast<const uint8_t*>(worker_address_);
  m.worker_address.assign(a, a + worker_address_len_);
  const auto* b = reinterpret_cast<const uint8_t*>(bulk_address_);
  m.bulk_worker_address.assign(b, b + bulk_address_len_);
  if (!with_regions) return m;
  for (auto& [id, r] : regions_) {
    m.regions.push_back(RegionMetadata{id, reinterpret_cast<uint64_t>(r.base), r.size_bytes, r.allocated, r.rkey});
  }
  return m;
}

Status UcxAgent::connect(const uint8_t* blob, size_t size, PeerInfo* out) {
  AgentMetadata m;
  Status st = decode_metadata(blob, size, &m);
  if (!st.is_ok()) return st;
  Lock lk(this);
  st = check_open();
  if (!st.is_ok()) return st;
  if (m.ucx_major != ucx_major_ || m.ucx_minor != ucx_minor_ || m.ucx_release != ucx_release_) {
    return Status(StatusCode::kUnsupported, "peer '" + m.name + "' runs UCX " + std::to_string(m.ucx_major) + "." +
                                                std::to_string(m.ucx_minor) + "." + std::to_string(m.ucx_release) +
                                                ", this agent " + std::to_string(ucx_major_) + "." +
                                                std::to_string(ucx_minor_) + "." + std::to_string(ucx_release_) +
                                                " (both ends must run the same UCX)");
  }
  if (m.tcp_segment_bytes != tcp_segment_bytes_) {
    return Status(StatusCode::kInvalidArgument,
                  "peer '" + m.name + "' uses TCP segments of " + std::to_string(m.tcp_segment_bytes) +
                      " bytes, this agent " + std::to_string(tcp_segment_bytes_) +
                      " (0 = UCX default); UCX aborts a reader whose receive segment is smaller, so both ends must agree");
  }
  Peer* peer = nullptr;
  for (auto& [id, p] : peers_) {
    if (p->uid == m.uid && !p->disconnected && !p->failed) peer = p.get();
  }
  if (peer == nullptr) {
    auto p = std::make_unique<Peer>();
    p->agent = this;
    p->id = next_peer_++;
    p->name = m.name;
    p->uid = m.uid;
    p->served = decide_served(m);
    ucp_ep_params_t ep{};
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_NAME;
    ep.address = reinterpret_cast<const ucp_address_t*>(m.worker_address.data());
    ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb = &UcxAgent::on_ep_error;
    ep.err_handler.arg = p.get();
    ep.name = p->name.c_str();
    ucs_status_t s = ucp_ep_create(worker_, &ep, &p->ep);
    if (s != UCS_OK) {
      return Status(s == UCS_ERR_UNREACHABLE ? StatusCode::kPeerUnreachable : StatusCode::kTransport,
                    "cannot reach peer '" + m.name + "': " + ucs_text(s));
    }
    peer = p.get();
    peers_[p->id] = std::move(p);
  }
  for (auto& reg : m.regions) {
    auto found = peer->regions.find(reg.id);
    if (found != peer->regions.end()) continue;
    RemoteRegion rr;
    rr.meta = reg;
    ucs_status_t s = ucp_ep_rkey_unpack(peer->ep, reg.rkey.data(), &rr.rkey);
    if (s != UCS_OK) {
      return Status(StatusCode::kTransport,
                    "cannot unpack the key of region " + std::to_string(reg.id) + " of peer '" + m.name + "': " + ucs_text(s));
    }
    peer->regions[reg.id] = std::move(rr);
  }
  *out = PeerInfo{peer->id, peer->name, static_cast<uint32_t>(peer->regions.size()), peer->served};
  kick();
  return Status::ok();
}

Status UcxAgent::disconnect(uint32_t id) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  Peer* peer = find_peer(id);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "no connected peer " + std::to_string(id));
  for (auto& [oid, op] : ops_) {
    if (op->peer == id && op->type != Op::Type::kCopy) {
      return Status(StatusCode::kInvalidArgument, "peer '" + peer->name + "' has transfers in flight");
    }
  }
  peer->disconnected = true;
  for (auto& [rid, rr] : peer->regions) {
    if (rr.rkey != nullptr) ucp_rkey_destroy(rr.rkey);
    rr.rkey = nullptr;
  }
  peer->regions.clear();
  // Peer stays in the map (UCX callbacks may still name it); marking it failed force-closes the endpoint.
  peer->failed = true;
  peer->failure = Status(StatusCode::kClosed, "peer '" + peer->name + "' was disconnected");
  for (auto it = lists_.begin(); it != lists_.end();) {
    it = it->second.remote && it->second.peer == id ? lists_.erase(it) : std::next(it);
  }
  kick();
  return Status::ok();
}

// ---- descriptor lists and posting -------------------------------------------------------------

Status UcxAgent::prepare_local(const std::vector<Descriptor>& descs, uint32_t* list) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  for (size_t i = 0; i < descs.size(); ++i) {
    const Descriptor& d = descs[i];
    auto it = regions_.find(d.region);
    if (it == regions_.end()) {
      return Status(StatusCode::kInvalidArgument, "descriptor " + std::to_string(i) + " names region " +
                                                      std::to_string(d.region) + ", which this agent does not have");
    }
    if (d.offset_bytes > it->second.size_bytes || d.size_bytes > it->second.size_bytes - d.offset_bytes) {
      return Status(StatusCode::kOutOfRange, "descriptor " + std::to_string(i) + " [" + std::to_string(d.offset_bytes) +
                                                 ", +" + std::to_string(d.size_bytes) + ") is past the end of region " +
                                                 std::to_string(d.region) + " (" + std::to_string(it->second.size_bytes) +
                                                 " bytes)");
    }
  }
  *list = next_list_++;
  lists_[*list] = List{false, 0, descs};
  return Status::ok();
}

Status UcxAgent::prepare_remote(uint32_t peer_id, const std::vector<Descriptor>& descs, uint32_t* list) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  Peer* peer = find_peer(peer_id);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "no connected peer " + std::to_string(peer_id));
  for (size_t i = 0; i < descs.size(); ++i) {
    const Descriptor& d = descs[i];
    auto it = peer->regions.find(d.region);
    if (it == peer->regions.end()) {
      return Status(StatusCode::kInvalidArgument, "descriptor " + std::to_string(i) + " names region " +
                                                      std::to_string(d.region) + ", which peer '" + peer->name +
                                                      "' did not publish (connect again with fresh metadata?)");
    }
    const uint64_t size = it->second.meta.size_bytes;
    if (d.offset_bytes > size || d.size_bytes > size - d.offset_bytes) {
      return Status(StatusCode::kOutOfRange, "descriptor " + std::to_string(i) + " [" + std::to_string(d.offset_bytes) +
                                                 ", +" + std::to_string(d.size_bytes) + ") is past the end of region " +
                                                 std::to_string(d.region) + " of peer '" + peer->name + "' (" +
                                                 std::to_string(size) + " bytes)");
    }
  }
  *list = next_list_++;
  lists_[*list] = List{true, peer_id, descs};
  return Status::ok();
}

Status UcxAgent::release_list(uint32_t list) {
  Lock lk(this);
  if (lists_.erase(list) == 0) return Status(StatusCode::kInvalidArgument, "no descriptor list " + std::to_string(list));
  return Status::ok();
}

uint8_t* UcxAgent::local_address(uint32_t region, uint64_t offset_bytes) {
  auto it = regions_.find(region);
  return it == regions_.end() ? nullptr : it->second.base + offset_bytes;
}

void UcxAgent::add_op(std::unique_ptr<Op> op) {
  {
    std::lock_guard<std::mutex> lk(events_mu_);
    pending_++;
  }
  ops_[op->id] = std::move(op);
  kick();
}

Status UcxAgent::post_read(uint32_t local_list, const uint32_t* local_idx, uint32_t remote_list, const uint32_t* remote_idx,
                           size_t count, uint32_t timeout_ms, uint64_t* op_id, BatchShape* shape) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  auto li = lists_.find(local_list);
  auto ri = lists_.find(remote_list);
  if (li == lists_.end() || li->second.remote) return Status(StatusCode::kInvalidArgument, "no local descriptor list " + std::to_string(local_list));
  if (ri == lists_.end() || !ri->second.remote) return Status(StatusCode::kInvalidArgument, "no remote descriptor list " + std::to_string(remote_list));
  Peer* peer = find_peer(ri->second.peer);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "the remote list's peer is disconnected");
  std::vector<PairedRun> runs;
  st = merge_pairs(li->second.descs, local_idx, ri->second.descs, remote_idx, count, &runs);
  if (!st.is_ok()) return st;
  auto op = std::make_unique<Op>();
  op->type = Op::Type::kRead;
  op->agent = this;
  op->id = next_op_++;
  op->peer = peer->id;
  op->start = Clock::now();
  op->has_deadline = timeout_ms > 0;
  op->timeout_ms = timeout_ms;
  op->deadline = op->start + std::chrono::milliseconds(timeout_ms);
  op->served = peer->served;
  for (const PairedRun& run : runs) {
    uint8_t* local = local_address(run.local_region, run.local_offset_bytes);
    const RemoteRegion& rr = peer->regions.at(run.remote_region);
    if (local == nullptr) return Status(StatusCode::kInvalidArgument, "local region " + std::to_string(run.local_region) + " was freed");
    const uint64_t piece_bytes = op->served ? kServedPieceBytes : kMaxGetPieceBytes;
    for (uint64_t off = 0; off < run.size_bytes; off += piece_bytes) {
      const uint64_t n = std::min(piece_bytes, run.size_bytes - off);
      if (op->served) {  // the owner sends it, we receive it (post_serve_request)
        op->pieces.push_back(Piece{local + off, nullptr, run.remote_offset_bytes + off, nullptr, n,
                                   (op->id << 32) | op->pieces.size(), run.remote_region});
      } else {
        op->pieces.push_back(Piece{local + off, nullptr, rr.meta.base + run.remote_offset_bytes + off, rr.rkey, n});
      }
    }
    op->total_bytes += run.size_bytes;
  }
  *shape = BatchShape{op->total_bytes, static_cast<uint32_t>(count), static_cast<uint32_t>(runs.size())};
  if (peer->failed) {
    op->status = Status(peer->failure.code(), "read from " + peer->failure.message());
  }
  *op_id = op->id;
  add_op(std::move(op));
  return Status::ok();
}

Status UcxAgent::post_copy(uint32_t dst_list, const uint32_t* dst_idx, uint32_t src_list, const uint32_t* src_idx,
                           size_t count, uint64_t* op_id, BatchShape* shape) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  auto di = lists_.find(dst_list);
  auto si = lists_.find(src_list);
  if (di == lists_.end() || di->second.remote) return Status(StatusCode::kInvalidArgument, "no local descriptor list " + std::to_string(dst_list));
  if (si == lists_.end() || si->second.remote) return Status(StatusCode::kInvalidArgument, "no local descriptor list " + std::to_string(src_list));
  std::vector<PairedRun> runs;
  st = merge_pairs(di->second.descs, dst_idx, si->second.descs, src_idx, count, &runs);
  if (!st.is_ok()) return st;
  auto op = std::make_unique<Op>();
  op->type = Op::Type::kCopy;
  op->agent = this;
  op->id = next_op_++;
  op->peer = kUnknownPeer;
  op->start = Clock::now();
  for (const PairedRun& run : runs) {
    uint8_t* dst = local_address(run.local_region, run.local_offset_bytes);
    const uint8_t* src = local_address(run.remote_region, run.remote_offset_bytes);
    if (dst == nullptr || src == nullptr) return Status(StatusCode::kInvalidArgument, "a region of the copy was freed");
    for (uint64_t off = 0; off < run.size_bytes; off += kMaxGetPieceBytes) {
      const uint64_t n = std::min(kMaxGetPieceBytes, run.size_bytes - off);
      op->pieces.push_back(Piece{dst + off, src + off, 0, nullptr, n});
    }
    op->total_bytes += run.size_bytes;
  }
  *shape = BatchShape{op->total_bytes, static_cast<uint32_t>(count), static_cast<uint32_t>(runs.size())};
  *op_id = op->id;
  add_op(std::move(op));
  return Status::ok();
}

Status UcxAgent::post_notify(uint32_t peer_id, const uint8_t* data, size_t size, uint32_t timeout_ms, uint64_t* op_id) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  if (size > kMaxNotificationBytes) {
    return Status(StatusCode::kInvalidArgument, "notification of " + std::to_string(size) + " bytes exceeds the " +
                                                    std::to_string(kMaxNotificationBytes) + "-byte limit");
  }
  Peer* peer = find_peer(peer_id);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "no connected peer " + std::to_string(peer_id));
  auto op = std::make_unique<Op>();
  op->type = Op::Type::kNotify;
  op->agent = this;
  op->id = next_op_++;
  op->peer = peer_id;
  op->start = Clock::now();
  op->has_deadline = timeout_ms > 0;
  op->timeout_ms = timeout_ms;
  op->deadline = op->start + std::chrono::milliseconds(timeout_ms);
  const uint16_t name_len = static_cast<uint16_t>(std::min<size_t>(options_.name.size(), 256));
  op->header.resize(10 + name_len + size);
  std::memcpy(op->header.data(), &uid_, 8);
  std::memcpy(op->header.data() + 8, &name_len, 2);
  std::memcpy(op->header.data() + 10, options_.name.data(), name_len);
  if (size > 0) std::memcpy(op->header.data() + 10 + name_len, data, size);
  op->total_bytes = size;
  if (peer->failed) op->status = Status(peer->failure.code(), "notify " + peer->failure.message());
  *op_id = op->id;
  add_op(std::move(op));
  return Status::ok();
}


// ---- served reads (served_read.h) -------------------------------------------------------------

// Sends op->message as an eager active message; completion is counted in op->outstanding.
Status UcxAgent::send_message(Op* op, ucp_ep_h ep, unsigned am_id) {
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  param.cb.send = &UcxAgent::on_request_done;
  param.flags = UCP_AM_SEND_FLAG_EAGER;  // delivered whole in the receive callback, never rendezvous
  auto* req = new Request{op, 0};
  param.user_data = req;
  ucs_status_ptr_t p = ucp_am_send_nbx(ep, am_id, nullptr, 0, op->message.data(), op->message.size(), &param);
  if (p == nullptr) {
    delete req;
    return Status::ok();
  }
  if (UCS_PTR_IS_ERR(p)) {
    delete req;
    return Status(StatusCode::kPeerUnreachable, ucs_text(UCS_PTR_STATUS(p)));
  }
  op->outstanding++;
  return Status::ok();
}

// Reader side: post a tagged receive per piece straight into its destination, then ask the
// owner to send. Our identity and worker addresses ride along every time (no regions: the owner
// sends by tag and needs no keys of ours), so an owner that lost its endpoint to us (its deadline
// closed it) makes a new one instead of dropping the request.
void UcxAgent::post_serve_request(Op* op, Peer* peer) {
  op->request_sent = true;
  if (peer == nullptr || peer->failed || peer->ep == nullptr) {
    op->status = peer != nullptr && !peer->failure.is_ok() ? Status(peer->failure.code(), "read from " + peer->failure.message())
                                                           : Status(StatusCode::kPeerUnreachable, "read from a peer that is gone");
    return;
  }
  op->recvs.assign(op->pieces.size(), nullptr);
  for (size_t i = 0; i < op->pieces.size(); ++i) {
    const Piece& piece = op->pieces[i];
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.recv = &UcxAgent::on_recv_done;
    auto* req = new Request{op, piece.size_bytes, i};
    param.user_data = req;
    ucs_status_ptr_t p = ucp_tag_recv_nbx(bulk_worker_, piece.local, piece.size_bytes, piece.tag, ~ucp_tag_t(0), &param);
    if (UCS_PTR_IS_ERR(p) || p == nullptr) {
      delete req;
      op->status = Status(StatusCode::kTransport, "cannot post a receive: " + ucs_text(UCS_PTR_STATUS(p)));
      return;
    }
    op->recvs[i] = p;
    op->outstanding++;
  }
  ServeRequest q;
  q.tag_base = op->id << 32;
  q.reader_uid = uid_;
  if (op->has_deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(op->deadline - Clock::now()).count();
    q.budget_ms = static_cast<uint32_t>(std::max<int64_t>(1, left));
  }
  q.reader_metadata = encode_metadata(own_metadata(/*with_regions=*/false));
  q.pieces.reserve(op->pieces.size());
  for (const Piece& p : op->pieces) q.pieces.push_back(ServedPiece{p.remote_region, p.remote_address, p.size_bytes});
  op->message = encode_serve_request(q);
  Status st = send_message(op, peer->ep, kServeRequestAmId);
  if (!st.is_ok()) {
    op->status = Status(st.code(), "read from peer '" + peer->name + "' failed to post: " + st.message());
    return;
  }
}

void UcxAgent::on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data) {
  auto* req = static_cast<Request*>(user_data);
  Op* op = req->op;
  op->outstanding--;
  op->recvs[req->recv_slot] = nullptr;
  if (status == UCS_OK && info->length == req->size_bytes) {
    op->done_bytes += req->size_bytes;
  } else if (op->status.is_ok()) {
    Peer* peer = op->agent->find_peer(op->peer);
    const std::string who = peer != nullptr ? "peer '" + peer->name + "'" : "peer";
    op->status = status != UCS_OK ? Status(StatusCode::kPeerUnreachable, "read from " + who + " failed: " + ucs_text(status))
                                  : Status(StatusCode::kTransport, "read from " + who + ": piece " + std::to_string(req->recv_slot) +
                                                                       " came with " + std::to_string(info->length) + " of " +
                                                                       std::to_string(req->size_bytes) + " bytes");
  }
  delete req;
  ucp_request_free(request);
}

// A failed served read: receives not yet matched complete (UCS_ERR_CANCELED) on the next progress.
void UcxAgent::cancel_receives(Op* op) {
  if (op->cancelled) return;
  op->cancelled = true;
  for (void* r : op->recvs) {
    if (r != nullptr) ucp_request_cancel(bulk_worker_, r);
  }
}

// Owner side, in ucp_worker_progress: only queue (endpoints are created outside callbacks).
ucs_status_t UcxAgent::on_serve_request(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                        const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxAgent*>(arg);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) return UCS_OK;  // hpd sends these eagerly
  ServeRequest q;
  if (!decode_serve_request(static_cast<const uint8_t*>(data), length, &q).is_ok()) return UCS_OK;
  self->serve_queue_.push_back(std::move(q));
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
  Op* op = it->second.get();
  Peer* peer = self->find_peer(op->peer);
  if (!op->served || peer == nullptr || peer->uid != r.owner_uid || r.code == StatusCode::kOk) return UCS_OK;
  if (op->status.is_ok()) op->status = Status(r.code, "read from peer '" + peer->name + "' refused: " + r.message);
  return UCS_OK;
}

// Owner side: turn queued requests into kServe ops. A request we cannot answer (no endpoint to
// its reader) is dropped; the reader's deadline reports it.
void UcxAgent::start_serves() {
  std::vector<ServeRequest> queue;
  queue.swap(serve_queue_);
  for (const ServeRequest& q : queue) {
    Peer* reader = nullptr;
    Status st = accept_reader(q, &reader);
    if (reader == nullptr) continue;
    auto op = std::make_unique<Op>();
    op->type = Op::Type::kServe;
    op->agent = this;
    op->id = next_op_++;
    op->peer = reader->id;
    op->tag_base = q.tag_base;
    op->start = Clock::now();
    op->has_deadline = q.budget_ms > 0;
    op->timeout_ms = q.budget_ms;
    op->deadline = op->start + std::chrono::milliseconds(q.budget_ms);
    if (st.is_ok()) st = plan_serve(q, op.get());
    op->status = st;
    ops_[op->id] = std::move(op);
  }
}

// Finds (or, from the metadata in the request, creates) the endpoint to the reader.
Status UcxAgent::accept_reader(const ServeRequest& q, Peer** out) {
  Peer* reader = nullptr;
  for (auto& [id, p] : readers_) {
    if (p->uid == q.reader_uid && !p->failed) reader = p.get();
  }
  *out = reader;
  if (reader != nullptr) return Status::ok();
  AgentMetadata m;
  Status st = decode_metadata(q.reader_metadata.data(), q.reader_metadata.size(), &m);
  if (!st.is_ok()) return st;
  if (m.uid != q.reader_uid) return Status(StatusCode::kInvalidArgument, "served read whose metadata names another agent");
  auto p = std::make_unique<Peer>();
  p->agent = this;
  p->id = next_peer_++;
  p->name = m.name;
  p->uid = m.uid;
  p->reverse = true;
  // No peer error handling on the bulk worker (see bulk_worker_): a dead reader fails our sends,
  // a stuck one is closed at the budget's end (advance_serves).
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_NAME;
  ep.address = reinterpret_cast<const ucp_address_t*>(m.bulk_worker_address.data());
  ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  ep.name = p->name.c_str();
  if (m.bulk_worker_address.empty() || ucp_ep_create(bulk_worker_, &ep, &p->ep) != UCS_OK) {
    return Status(StatusCode::kPeerUnreachable, "cannot reach reader '" + m.name + "'");
  }
  *out = p.get();
  readers_[p->id] = std::move(p);
  return Status::ok();  // segment sizes were compared by the reader's connect()
}

// Validates every piece against our regions (nothing is sent unless all are valid).
Status UcxAgent::plan_serve(const ServeRequest& q, Op* op) {
  for (size_t i = 0; i < q.pieces.size(); ++i) {
    const ServedPiece& piece = q.pieces[i];
    auto own = regions_.find(piece.owner_region);
    const std::string which = "piece " + std::to_string(i) + " ";
    if (own == regions_.end()) {
      return Status(StatusCode::kInvalidArgument, which + "names region " + std::to_string(piece.owner_region) + ", which the owner does not have");
    }
    const uint64_t size = own->second.size_bytes;
    if (piece.owner_offset_bytes > size || piece.size_bytes > size - piece.owner_offset_bytes) {
      return Status(StatusCode::kOutOfRange, which + "is past the end of region " + std::to_string(piece.owner_region));
    }
    op->pieces.push_back(Piece{own->second.base + piece.owner_offset_bytes, nullptr, 0, nullptr, piece.size_bytes, q.tag_base | i});
    op->total_bytes += piece.size_bytes;
  }
  return Status::ok();
}

// Owner side: sends done → retire; refused or failed → reply so the reader stops waiting.
void UcxAgent::advance_serves() {
  const auto now = Clock::now();
  for (auto it = ops_.begin(); it != ops_.end();) {
    Op* op = it->second.get();
    if (op->type != Op::Type::kServe) {
      ++it;
      continue;
    }
    Peer* reader = find_reader(op->peer);
    const bool alive = reader != nullptr && !reader->failed && reader->ep != nullptr;
    if (op->status.is_ok() && !alive) op->status = Status(StatusCode::kPeerUnreachable, "the reader is gone");
    if (op->phase == Op::ServePhase::kSending && op->status.is_ok() && op->has_deadline && now >= op->deadline &&
        (op->next < op->pieces.size() || op->outstanding > 0)) {
      op->status = Status(StatusCode::kTimeout, "the owner stopped at the reader's deadline (" + std::to_string(op->timeout_ms) +
                                                    " ms) with " + std::to_string(op->done_bytes) + " of " +
                                                    std::to_string(op->total_bytes) + " bytes sent");
      // Sends cannot be cancelled: closing the endpoint is what stops them. The reader's next
      // request carries its metadata, so the owner makes a fresh endpoint then.
      if (op->outstanding > 0 && reader != nullptr) fail_peer(reader, op->status, "timeout");
    }
    if (op->phase == Op::ServePhase::kSending && (op->next >= op->pieces.size() || !op->status.is_ok()) && op->outstanding == 0) {
      op->phase = Op::ServePhase::kReplying;
      if (!op->status.is_ok() && reader != nullptr && !reader->failed && reader->ep != nullptr) {
        op->message = encode_serve_reply(ServeReply{op->tag_base, uid_, op->status.code(), op->status.message()});
        send_message(op, reader->ep, kServeReplyAmId);  // a failed send means the reader is gone
      }
    }
    if (op->phase == Op::ServePhase::kReplying && op->outstanding == 0) {
      it = ops_.erase(it);
      continue;
    }
    if (!alive && op->outstanding > 0 && (reader == nullptr || (reader->ep == nullptr && reader->close_request == nullptr))) {
      zombies_.push_back(std::move(it->second));
      it = ops_.erase(it);
      continue;
    }
    ++it;
  }
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
      if (op->served) cancel_receives(op.get());
    }
    for (auto* map : {&peers_, &readers_})
    for (auto& [id, peer] : *map) {
      if (peer->ep != nullptr && peer->close_request == nullptr) {
        force_close_endpoint(peer.get());
      }
    }
    // Bounded: in-flight requests complete with UCS_ERR_CANCELED over the next progress calls.
    const auto until = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < until) {
      progress_workers();
      bool waiting = false;
      for (auto* map : {&peers_, &readers_})
      for (auto& [id, peer] : *map) {
        if (peer->close_request != nullptr) {
          if (ucp_request_check_status(peer->close_request) != UCS_INPROGRESS) {
            ucp_request_free(peer->close_request);
            peer->close_request = nullptr;
            peer->ep = nullptr;
          } else {
            waiting = true;
          }
        }
      }
      bool outstanding = false;
      for (auto& [oid, op] : ops_) outstanding = outstanding || op->outstanding > 0;
      if (!waiting && !outstanding) break;
    }
    for (auto* map : {&peers_, &readers_})
    for (auto& [id, peer] : *map) {
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
  // Ops whose requests never completed within the bound are leaked on purpose: UCX may still
  // call back into them until the worker is destroyed below.
  for (auto& [oid, op] : ops_) {
    if (op->outstanding > 0) op.release();
  }
  ops_.clear();
  for (auto& op : zombies_) {
    if (op->outstanding > 0) op.release();
  }
  zombies_.clear();
  if (context_ != nullptr) {
    for (auto& [id, r] : regions_) {
      // A kernel still running over the region would fault on unmapped memory: wait for it, and
      // leave the region mapped (leaked until exit) rather than crash if it does not finish.
      if (wait_memory_idle(r.base, r.size_bytes, kKernelDrainTimeout)) ucp_mem_unmap(context_, r.memh);
    }
  }
  regions_.clear();
  lists_.clear();
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
  if (context_ != nullptr) {
    ucp_cleanup(context_);
    context_ = nullptr;
  }
  return Status::ok();
}

}  // namespace

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
