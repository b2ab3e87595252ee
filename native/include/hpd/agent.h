// The transfer agent: one UCP context + worker, regions, peers, prepared descriptor lists,
// batched one-sided READs, small notifications. N-API free; every call returns hpd::Status.
//
// Threading: the agent owns one progress thread. It is the only thread that posts transfers and
// calls ucp_worker_progress, so a large shared-memory GET (a synchronous memcpy inside
// ucp_get_nbx) never runs on the caller's (the Node event loop's) thread. The synchronous calls
// below (regions, metadata, connect, prepare) take the agent's UCX lock briefly; the worker runs
// in UCS_THREAD_MODE_SERIALIZED, and that lock is the exclusion UCX asks for.
// Results of posted operations come back as AgentEvents: the progress thread queues them and calls
// the `wake` callback given at creation (from the progress thread); the owner then drains them
// with take_events() on its own thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hpd/status.h"

namespace hpd {

enum class TransportChoice { kAuto, kShm, kTcp };

// How a READ moves bytes. kGet: ucp_get_nbx (a memcpy from the mapped owner pages over shared
// memory, one-sided over RDMA). kServed: the owner sends the runs as tagged messages into
// receives the reader posted on its memory (native/src/transport/served_read.h); over TCP UCX moves
// those with zero-copy rendezvous, where its emulated GET copies every byte twice more. kAuto: served when this agent runs over TCP
// only, or when the peer is on another host and this host has no RDMA device; GET otherwise.
enum class ReadProtocol { kAuto, kGet, kServed };

struct AgentOptions {
  std::string name;  // shown to peers in errors ("prefill-r0")
  TransportChoice transport = TransportChoice::kAuto;
  // UCX TCP TX/RX segment size. 0 leaves UCX's defaults (8K/64K), which are ~4x slower on
  // loopback (platform-notes.md). Ignored when the user set UCX_TCP_TX_SEG_SIZE/RX_SEG_SIZE.
  uint64_t tcp_segment_bytes = 256 * 1024;
  // UCX keepalive period. Same-host peers are only found dead by keepalive (ucx-notes.md §6:
  // 17.6 s at UCX's 20 s default, ~1 s at 1 s); 500 ms keeps detection well inside 2 s.
  uint32_t keepalive_interval_ms = 500;
  ReadProtocol read_protocol = ReadProtocol::kAuto;
  // Served reads this agent serves as the owner: true refuses every request that carries no grant
  // (see grant()); false serves ungranted requests, but a request that carries a grant is still
  // held to it. GET reads (shared memory, RDMA) are one-sided and never checked.
  bool served_reads_require_grant = true;
  // Network devices UCX may use (UCX_NET_DEVICES: tcp interface names such as "lo", RDMA ports
  // such as "mlx5_0:1"); UCX's tcp transport listens on each named interface's address only.
  // Empty leaves UCX's choice (UCX_NET_DEVICES from the environment, or every device).
  std::vector<std::string> net_devices;
};

/** A served-read grant: 128 random bits (getrandom), unguessable, so holding one is the capability. */
struct GrantId {
  std::array<uint8_t, 16> bytes{};
};

/** One contiguous memory range of this agent, registered with UCX. */
struct RegionInfo {
  uint32_t id = 0;
  uint8_t* base = nullptr;
  uint64_t size_bytes = 0;
  bool allocated = false;  // true: ucp_mem_map ALLOCATE (shared-memory mappable); false: registered
};

/** A (region, offset, size) range. Region ids are local for local lists, the peer's for remote ones. */
struct Descriptor {
  uint32_t region = 0;
  uint64_t offset_bytes = 0;
  uint64_t size_bytes = 0;
};

/** What a batch will do once posted: merged adjacent descriptors become one run. */
struct BatchShape {
  uint64_t bytes = 0;
  uint32_t descriptors = 0;
  uint32_t runs = 0;
};

struct PeerInfo {
  uint32_t id = 0;
  std::string name;
  uint32_t regions = 0;
  bool served = false;  // READs from this peer are served reads (see ReadProtocol)
};

struct AgentEvent {
  enum class Kind { kOpDone, kNotification, kPeerError };
  Kind kind = Kind::kOpDone;
  uint64_t op_id = 0;          // kOpDone
  Status status;               // kOpDone (result), kPeerError (why)
  uint32_t peer = 0;           // kNotification (UINT32_MAX when the sender is not connected), kPeerError
  std::string peer_name;       // sender / failed peer
  std::string operation;       // kPeerError: what noticed it ("keepalive", "read", "notify", "timeout")
  std::vector<uint8_t> payload;  // kNotification
  double elapsed_ms = 0;       // kOpDone: post to completion, measured on the progress thread
};

constexpr uint32_t kUnknownPeer = 0xffffffffu;
constexpr size_t kMaxNotificationBytes = 4096;

class Agent {
 public:
  /** `wake` is called from the progress thread whenever events are waiting in take_events(). */
  static Status create(const AgentOptions& options, std::function<void()> wake, std::unique_ptr<Agent>* out);
  virtual ~Agent() = default;

  // Regions. alloc: UCX allocates (sysv/posix shared memory for same-host peers); the memory is
  // owned by the agent and released by free_region() or close(). register_memory: the caller keeps
  // owning the memory and must keep it alive until free_region() or close().
  virtual Status alloc_region(uint64_t size_bytes, RegionInfo* out) = 0;
  virtual Status register_memory(void* address, uint64_t size_bytes, RegionInfo* out) = 0;
  virtual Status free_region(uint32_t region) = 0;

  /** Opaque, position-independent blob: worker address, region bases/sizes, packed rkeys. */
  virtual Status metadata(std::vector<uint8_t>* out) = 0;
  /** Creates a PEER-error-mode endpoint and unpacks every region's rkey. */
  virtual Status connect(const uint8_t* blob, size_t size, PeerInfo* out) = 0;
  virtual Status disconnect(uint32_t peer) = 0;

  // Prepared descriptor lists (NIXL's prep_xfer_dlist): validated once, selected by index later.
  virtual Status prepare_local(const std::vector<Descriptor>& descs, uint32_t* list) = 0;
  virtual Status prepare_remote(uint32_t peer, const std::vector<Descriptor>& descs, uint32_t* list) = 0;
  virtual Status release_list(uint32_t list) = 0;

  // Served-read grants (owner side). A grant names ranges of this agent's regions; a served read
  // that carries it is served only if every piece lies wholly inside the union of those ranges,
  // and refused whole, before anything is sent, otherwise. A grant dies on revoke_grant(), when
  // any region it names is freed, and on close(). Revoking while pieces are being sent lets the
  // sends already posted finish and refuses the rest.
  virtual Status grant(const std::vector<Descriptor>& ranges, GrantId* out) = 0;
  /** *was_live: false when the grant was already gone (revoked, its region freed, or never issued). */
  virtual Status revoke_grant(const GrantId& grant, bool* was_live) = 0;

  /**
   * Posts READ of remote[remote_idx[i]] into local[local_idx[i]] for every i; sizes must match
   * pairwise. Pairs adjacent on both sides are merged into one GET. Completion (or the first
   * error, or TIMEOUT after timeout_ms) arrives as one kOpDone event with *op_id. `grant` (may be
   * null) travels with a served read to the owner; GET reads ignore it (nothing checks a one-sided read).
   */
  virtual Status post_read(uint32_t local_list, const uint32_t* local_idx, uint32_t remote_list,
                           const uint32_t* remote_idx, size_t count, uint32_t timeout_ms, const GrantId* grant,
                           uint64_t* op_id, BatchShape* shape) = 0;
  /** Same pairing and merging, as a plain local memcpy on the progress thread (the reference). */
  virtual Status post_copy(uint32_t dst_list, const uint32_t* dst_idx, uint32_t src_list, const uint32_t* src_idx,
                           size_t count, uint64_t* op_id, BatchShape* shape) = 0;
  /** Sends a small message (<= kMaxNotificationBytes) that the peer receives as kNotification. */
  virtual Status post_notify(uint32_t peer, const uint8_t* data, size_t size, uint32_t timeout_ms,
                             uint64_t* op_id) = 0;

  virtual std::vector<AgentEvent> take_events() = 0;
  /** Number of posted operations not yet reported as kOpDone. */
  virtual size_t pending_ops() = 0;
  /** Stops progress, cancels what is in flight, closes endpoints, unmaps regions. Idempotent. */
  virtual Status close() = 0;
  virtual bool closed() const = 0;
};

/** Pure helper (exposed for tests): pairs (local, remote) descriptors and merges adjacent pairs. */
struct PairedRun {
  uint32_t local_region;
  uint64_t local_offset_bytes;
  uint32_t remote_region;
  uint64_t remote_offset_bytes;
  uint64_t size_bytes;
};
Status merge_pairs(const std::vector<Descriptor>& local, const uint32_t* local_idx, const std::vector<Descriptor>& remote,
                   const uint32_t* remote_idx, size_t count, std::vector<PairedRun>* runs);

}  // namespace hpd
