// The owner side of served reads (protocol: served_read.h). A reader's SERVE_REQUEST arrives as
// an active message on the main worker; the agent hands it to queue(). On the progress thread,
// each request becomes one `Serve`:
//
//   start()    find or make the bulk endpoint to the reader (from the metadata in the request),
//              check every piece against our regions and the grant (grants.h): one bad piece
//              refuses the whole read before anything is sent
//   post()     tagged sends of the pieces, at most kMaxOutstandingServe in flight; a grant
//              revoked meanwhile stops the pieces not yet posted
//   advance()  past the reader's budget: give up; sends done (or failed): reply if refused or
//              failed, then retire
//
// Endpoints to readers live on the bulk worker without peer error handling (the only mode in
// which UCX 1.13 moves a rendezvous with TCP's zero-copy PUT). That mode has no abort: FORCE close
// is refused (ucp_ep_close_nbx returns INVALID_PARAM unless the endpoint is in PEER mode) and a
// flushing close would wait for the very sends we gave up on. So a reader we give up on is
// *dropped*: we never post to its endpoint again and the next request from it makes a new one,
// while UCX keeps the old endpoint (and any send still on it) until the worker is destroyed.
// A dead reader fails its sends (the TCP connection resets); a stuck one may hold them forever.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent_state.h"
#include "grants.h"
#include "op_core.h"
#include "served_read.h"

namespace hpd::transport {

// The sends an owner keeps in flight per served read. Measured on loopback TCP (2 cores):
// windows of 2-16 pieces all land within noise of each other; 8 was the steadiest. The window
// also bounds what a reader that gave up can still receive before the owner reaches its deadline.
constexpr size_t kMaxOutstandingServe = 8;

class ServedReadOwner {
 public:
  ServedReadOwner(const std::map<uint32_t, Region>& regions, const GrantTable& grants) : regions_(regions), grants_(grants) {}

  /** Once the bulk worker exists. `require_grant`: refuse requests that carry no grant. */
  void configure(ucp_worker_h bulk_worker, uint64_t owner_uid, bool require_grant) {
    bulk_worker_ = bulk_worker;
    owner_uid_ = owner_uid;
    require_grant_ = require_grant;
  }

  /** From the SERVE_REQUEST handler, inside progress: only queue (endpoints are made outside callbacks). */
  void queue(ServeRequest request) { queue_.push_back(std::move(request)); }
  void start();
  void post(uint64_t* budget_bytes);
  void advance(Clock::time_point now);

  /** Sends it could post now, or requests to start: the progress loop polls again instead of sleeping. */
  bool has_work() const;
  /** Anything in flight (the progress loop sleeps 1 ms at most). */
  bool busy() const { return !serves_.empty() || !queue_.empty(); }
  /** Serves under way read our regions: freeing one must wait. */
  bool serving() const { return !serves_.empty(); }
  bool has_outstanding() const;

  /** Agent closing: drops every reader (see above); serves end as their requests do. */
  void close();
  /**
   * After the bulk worker is destroyed: UCX has released every request it held, completed or
   * not, and can call back no more, so the serves it never completed are freed here.
   */
  void release_after_worker_destroyed();

 private:
  struct Reader {
    uint32_t id = 0;
    std::string name;
    uint64_t uid = 0;
    ucp_ep_h ep = nullptr;  // null once dropped
  };

  struct Serve : OpCore {
    enum class Phase { kSending, kReplying };
    struct Piece {
      const uint8_t* source = nullptr;
      uint64_t tag = 0;  // tag_base | index: the reader's receive for it
      Completion done;   // done.size_bytes: the piece's size
    };
    std::vector<Piece> pieces;
    size_t next = 0;
    uint64_t tag_base = 0;
    bool has_grant = false;
    GrantId grant;
    Phase phase = Phase::kSending;
    std::vector<uint8_t> reply;  // SERVE_REPLY bytes, alive until the send completes
    Completion reply_done;

    bool can_post() const { return phase == Phase::kSending && status.is_ok() && next < pieces.size() && outstanding < kMaxOutstandingServe; }
  };

  Status accept_reader(const ServeRequest& request, Reader** out);
  Status plan(const ServeRequest& request, Serve* serve) const;
  Reader* find_reader(uint32_t id) {
    auto it = readers_.find(id);
    return it == readers_.end() || it->second.ep == nullptr ? nullptr : &it->second;
  }
  void drop(uint32_t reader_id) { readers_.erase(reader_id); }

  const std::map<uint32_t, Region>& regions_;
  const GrantTable& grants_;
  ucp_worker_h bulk_worker_ = nullptr;
  uint64_t owner_uid_ = 0;
  bool require_grant_ = true;

  uint32_t next_reader_ = 1;
  uint64_t next_serve_ = 1;
  std::map<uint32_t, Reader> readers_;  // live endpoints to readers, by id
  std::vector<ServeRequest> queue_;     // received, not yet started
  std::map<uint64_t, std::unique_ptr<Serve>> serves_;
  // Serves whose reader was dropped while UCX still held sends of theirs: they no longer block
  // freeing regions (we post nothing more) and are freed when the sends end, or at close.
  std::vector<std::unique_ptr<Serve>> parked_;
};

}  // namespace hpd::transport
