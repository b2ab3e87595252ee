// The operations a caller of the agent posts, one type per kind, each its own small state
// machine. The agent (ucx_agent.cc) holds them as `Op` (a std::variant) and drives every phase
// with one visitor: post → (UCX progress, callbacks) → deadline → finish, on its progress thread
// with the UCX lock held. Each type answers the same questions:
//
//   can_post()         work it could post now (the progress loop spins instead of sleeping)
//   waiting_on_peer()  whether its deadline still matters (something is owed by the peer)
//   finished()         ready to be reported as kOpDone
//
// GetRead    ucp_get_nbx per piece (shared memory: a memcpy inside the call; RDMA: one-sided;
//            TCP: UCX emulates it), a window of requests in flight.
// ServedRead the reader side of a served read (served_read.h): tagged receives into local memory,
//            then one SERVE_REQUEST to the owner; the owner's sends complete the receives.
// CopyOp     a memcpy per piece on the progress thread (the bandwidth reference).
// NotifyOp   one active message carrying a small payload.
//
// The owner side of served reads is not here: served_read_owner.h.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <variant>
#include <vector>

#include "op_core.h"
#include "served_read.h"

namespace hpd::transport {

// A GET larger than this is split, so the progress thread releases the UCX lock between pieces
// (a shared-memory GET is one memcpy under that lock; 8 MiB is ~0.5 ms at 20 GB/s).
constexpr uint64_t kMaxGetPieceBytes = 8ull << 20;
// Emulated (TCP, registered-memory) GETs return requests; keep a window so the request pool stays small.
constexpr size_t kMaxOutstandingPerOp = 64;
// Served reads (served_read.h): piece size, one tagged message each. Measured on loopback TCP
// (2 cores): pieces of 2-64 MiB all land within noise of each other; 8 MiB was the steadiest.
constexpr uint64_t kServedPieceBytes = 8ull << 20;

struct GetRead : OpCore {
  struct Piece {
    uint8_t* local = nullptr;
    uint64_t remote_address = 0;
    ucp_rkey_h rkey = nullptr;
    Completion done;  // done.size_bytes: the piece's size
  };
  std::vector<Piece> pieces;
  size_t next = 0;

  /** Posts GETs while the window and the loop's byte budget allow. `owner` null: forgotten. */
  void post(Peer* owner, uint64_t* budget_bytes);
  bool can_post() const { return status.is_ok() && next < pieces.size() && outstanding < kMaxOutstandingPerOp; }
  bool waiting_on_peer() const { return next < pieces.size() || outstanding > 0; }
  bool finished() const { return (next >= pieces.size() || !status.is_ok()) && outstanding == 0; }
};

struct ServedRead : OpCore {
  struct Piece {
    uint8_t* local = nullptr;
    uint32_t owner_region = 0;
    uint64_t owner_offset_bytes = 0;
    uint64_t size_bytes = 0;
    uint64_t tag = 0;          // id << 32 | index: the owner sends the piece with it
    void* recv = nullptr;      // the posted receive until it completes
    ServedRead* read = nullptr;
    size_t index = 0;
  };
  std::vector<Piece> pieces;
  bool has_grant = false;
  GrantId grant;
  bool request_sent = false;
  bool cancelled = false;        // the receives still posted were cancelled (the read failed)
  std::vector<uint8_t> message;  // SERVE_REQUEST bytes: UCX 1.13 reads them until the send completes
  Completion message_done;

  /**
   * Posts a receive per piece straight into its destination, then asks the owner to send.
   * `reader_identity`: our metadata without regions (the owner sends by tag and needs no keys
   * of ours), sent every time so an owner that dropped its endpoint to us makes a new one.
   */
  void post(Peer* owner, ucp_worker_h bulk_worker, uint64_t reader_uid, const std::vector<uint8_t>& reader_identity);
  /** After progress: a failed owner sends nothing more; a failed read cancels its receives. */
  void check_owner(const Peer* owner, ucp_worker_h bulk_worker);
  /** The owner's SERVE_REPLY: it refused or gave up. */
  void refused(const Peer& owner, const ServeReply& reply);
  // Once the request is out there is nothing left to post: the progress thread may sleep until the
  // receives complete. (The flag-driven Op this replaced counted a served read's pieces as work
  // still to post, so a reader's progress thread spun for the whole read: on 2 loaded cores that
  // took CPU from the sending owner, and TCP reads ran at ~1.9 GB/s instead of ~4.2.)
  bool can_post() const { return status.is_ok() && !request_sent; }
  bool waiting_on_peer() const { return !request_sent || outstanding > 0; }
  // A failed served read is reported at once: a receive already matched to the owner's send
  // completes only when that send does (or never, if the owner gave up on it).
  bool finished() const {
    return ((request_sent || !status.is_ok()) && outstanding == 0) || (request_sent && !status.is_ok());
  }
  /** Receives not yet matched complete (UCS_ERR_CANCELED) on the next progress. */
  void cancel_receives(ucp_worker_h bulk_worker);

  static void on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data);
};

struct CopyOp : OpCore {
  struct Piece {
    uint8_t* dst = nullptr;
    const uint8_t* src = nullptr;
    uint64_t size_bytes = 0;
  };
  std::vector<Piece> pieces;
  size_t next = 0;

  void post(uint64_t* budget_bytes);
  bool can_post() const { return next < pieces.size(); }
  bool waiting_on_peer() const { return false; }
  bool finished() const { return next >= pieces.size(); }
};

struct NotifyOp : OpCore {
  std::vector<uint8_t> header;  // uid, name, payload: UCX 1.13 reads it until the send completes
  bool sent = false;
  Completion done;

  void post(Peer* peer, unsigned am_id);
  bool can_post() const { return status.is_ok() && !sent; }
  bool waiting_on_peer() const { return outstanding > 0; }
  bool finished() const { return (sent || !status.is_ok()) && outstanding == 0; }
};

using Op = std::variant<GetRead, ServedRead, CopyOp, NotifyOp>;

inline OpCore& core(Op& op) {
  return std::visit([](auto& o) -> OpCore& { return o; }, op);
}

}  // namespace hpd::transport
