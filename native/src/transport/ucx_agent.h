// The UCX implementation of hpd::Agent (internal: only Agent::create() makes one).
//
// ucx_agent.cc        init() (UCX config choices and why), run() (the progress thread over the
//                     main and bulk workers), the phases it drives each turn, callbacks, close()
// ucx_agent_calls.cc  the synchronous API the event loop calls: regions, grants, metadata,
//                     peers, descriptor lists, and how posted work becomes an operation
// ops.h               the operations callers post, one type per kind (GET read, served read,
//                     copy, notify), each its own state machine
// served_read_owner.h the owner side of served reads
//
// Ownership: the agent owns its regions' UCX memory handles; allocated regions are UCX memory
// (sysv/posix shared segments) unmapped by free_region()/close(); registered regions belong to
// the caller. Operations live in ops_ until their last UCX request has completed, because UCX
// callbacks point into them (op_core.h).
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agent_state.h"
#include "grants.h"
#include "hpd/agent.h"
#include "ops.h"
#include "served_read_owner.h"

namespace hpd::transport {

constexpr unsigned kNotifyAmId = 0x4850;  // "HP"
// How long closing or freeing waits for a verification kernel over a region (a 512 MiB digest
// takes well under a second).
constexpr std::chrono::milliseconds kKernelDrainTimeout{10000};

class UcxAgent final : public Agent {
 public:
  UcxAgent(AgentOptions options, std::function<void()> wake);
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
  Status grant(const std::vector<Descriptor>& ranges, GrantId* out) override;
  Status revoke_grant(const GrantId& grant, bool* was_live) override;
  Status post_read(uint32_t local_list, const uint32_t* local_idx, uint32_t remote_list, const uint32_t* remote_idx,
                   size_t count, uint32_t timeout_ms, const GrantId* grant, uint64_t* op_id, BatchShape* shape) override;
  Status post_copy(uint32_t dst_list, const uint32_t* dst_idx, uint32_t src_list, const uint32_t* src_idx, size_t count,
                   uint64_t* op_id, BatchShape* shape) override;
  Status post_notify(uint32_t peer, const uint8_t* data, size_t size, uint32_t timeout_ms, uint64_t* op_id) override;
  std::vector<AgentEvent> take_events() override;
  size_t pending_ops() override {
    std::lock_guard<std::mutex> lk(events_mu_);
    return pending_;
  }
  Status close() override;
  bool closed() const override { return closed_; }

 private:
  // UCX callbacks (run inside ucp_worker_progress, on the progress thread, lock held).
  static void on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  static ucs_status_t on_notify(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                const ucp_am_recv_param_t* param);
  static ucs_status_t on_serve_request(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                       const ucp_am_recv_param_t* param);
  static ucs_status_t on_serve_reply(void* arg, const void* header, size_t header_length, void* data, size_t length,
                                     const ucp_am_recv_param_t* param);

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

  // init()
  Status configure_ucx(ucp_config_t* config);
  Status create_worker(ucp_worker_h* worker, ucp_address_t** address, size_t* address_len, int* efd);
  Status set_am_handler(ucp_worker_h worker, unsigned id, ucp_am_recv_callback_t cb);

  // The progress thread and the phases of each turn (ucx_agent.cc).
  void run();
  unsigned progress_workers();
  void post_ops();
  void advance_closes();
  void check_deadlines();
  void finish_ops();
  bool has_work_to_post();
  bool busy();
  void force_close_endpoint(Peer* peer);
  void fail_peer(Peer* peer, Status why, const std::string& operation);
  void push_event(AgentEvent event);

  // Helpers of the synchronous calls (ucx_agent_calls.cc); lock held.
  Status add_region(ucp_mem_h memh, uint8_t* base, uint64_t size_bytes, bool allocated, RegionInfo* out);
  // with_regions = false: identity and worker addresses only (what a serving owner needs).
  AgentMetadata own_metadata(bool with_regions = true) const;
  bool decide_served(const AgentMetadata& peer) const;
  uint8_t* local_address(uint32_t region, uint64_t offset_bytes);
  void add_op(std::unique_ptr<Op> op);

  void kick() {
    if (worker_ != nullptr) ucp_worker_signal(worker_);
  }
  Status check_open() const {
    if (closed_ || stop_.load()) return Status(StatusCode::kClosed, "agent '" + options_.name + "' is closed");
    return Status::ok();
  }
  Peer* find_peer(uint32_t id) {
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second.get();
  }

  AgentOptions options_;
  std::function<void()> wake_;
  uint64_t uid_;
  uint64_t tcp_segment_bytes_ = 0;
  std::string host_;           // "<hostname>/<boot id>"
  bool rdma_present_ = false;  // an RDMA device exists here: UCX's GET is one-sided across hosts
  std::chrono::milliseconds active_window_;
  std::chrono::microseconds spin_window_;
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
  struct List {
    bool remote = false;
    uint32_t peer = 0;
    std::vector<Descriptor> descs;
  };
  std::map<uint32_t, Region> regions_;
  std::map<uint32_t, std::unique_ptr<Peer>> peers_;
  std::map<uint32_t, List> lists_;
  std::map<uint64_t, std::unique_ptr<Op>> ops_;
  // Served reads already reported failed whose owner's endpoint is gone while receives of theirs
  // were matched to sends that may never finish. They no longer block freeing regions; they are
  // freed when their receives end, or after the bulk worker is destroyed at close().
  std::vector<std::unique_ptr<Op>> parked_;
  GrantTable grants_;
  ServedReadOwner owner_{regions_, grants_};

  std::mutex events_mu_;
  std::vector<AgentEvent> events_;
  bool wake_pending_ = false;
  size_t pending_ = 0;
};

}  // namespace hpd::transport
