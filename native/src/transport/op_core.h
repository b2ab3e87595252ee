// What every operation the agent runs has in common: identity, status, byte counts, the UCX
// requests it has in flight, and its deadline. Each kind of operation (ops.h: GET read, served
// read, copy, notify; served_read_owner.h: the owner's serve) is its own type built on it.
//
// Ownership of completions: every UCX request an operation posts carries a `Completion` that
// lives inside the operation (in its piece or message), never a per-request allocation. So the
// operation owns everything a UCX callback can touch, and must outlive its last request: the
// agent keeps it until `outstanding` is 0, or until the worker that holds the request is
// destroyed (UcxAgent::close()), after which UCX can no longer call back.
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "agent_state.h"
#include "hpd/agent.h"
#include "hpd/status.h"

namespace hpd::transport {

struct OpCore;

/** The user_data of one UCX request: the operation it counts on, and the bytes it moves. */
struct Completion {
  OpCore* op = nullptr;
  uint64_t size_bytes = 0;
};

struct OpCore {
  uint64_t id = 0;
  uint32_t peer = kUnknownPeer;  // the peer read from / notified; the owner side: its reader's id
  std::string peer_name;         // for messages ("peer 'prefill-r0'"); empty for copies
  const char* verb = "op";       // "read", "copy", "notify", "serve": error messages and JS's `operation`
  Status status;                 // the first failure; ok while all goes well
  size_t outstanding = 0;        // UCX requests posted and not completed
  uint64_t total_bytes = 0;
  uint64_t done_bytes = 0;
  Clock::time_point start;
  uint32_t timeout_ms = 0;  // 0: no deadline
  Clock::time_point deadline;
  bool reported = false;  // kOpDone pushed while UCX still held requests: it lingers until they end

  void begin(uint32_t deadline_ms) {
    start = Clock::now();
    timeout_ms = deadline_ms;
    deadline = start + std::chrono::milliseconds(deadline_ms);
  }
  void fail(Status why) {
    if (status.is_ok()) status = std::move(why);
  }
  bool past_deadline(Clock::time_point now) const { return timeout_ms > 0 && now >= deadline; }
  std::string who() const { return peer_name.empty() ? "peer" : "peer '" + peer_name + "'"; }

  /**
   * Books the result of a UCX post: NULL (done at once: no callback follows), an error (fails
   * the op with `what` + UCX's reason), or a request (counted until on_send_done).
   */
  void track(ucs_status_ptr_t p, Completion* c, const std::string& what) {
    if (p == nullptr) {
      done_bytes += c->size_bytes;
    } else if (UCS_PTR_IS_ERR(p)) {
      fail(Status(StatusCode::kPeerUnreachable, what + " failed to post: " + ucs_text(UCS_PTR_STATUS(p))));
    } else {
      outstanding++;
    }
  }
};

/** UCX send callback (GET, tag send, active message): counts the completion on its op. */
void on_send_done(void* request, ucs_status_t status, void* user_data);

/** Request parameters for a send whose completion is `c`. */
ucp_request_param_t send_param(Completion* c);

/** Posts `message` as one eager active message (whole in the receive callback, never rendezvous). */
ucs_status_ptr_t send_eager(ucp_ep_h ep, unsigned am_id, const std::vector<uint8_t>& message, Completion* c);

}  // namespace hpd::transport
