// Records the UCX agent's parts share: its regions, the peers it reads from, and small UCX
// helpers. The agent (ucx_agent.cc) owns every one of them; the operation state machines (ops.h)
// and the owner side of served reads (served_read_owner.h) look them up, always on the progress
// thread or under the agent's lock.
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hpd/status.h"
#include "metadata.h"

namespace hpd::transport {

using Clock = std::chrono::steady_clock;

inline std::string ucs_text(ucs_status_t s) { return ucs_status_string(s); }

/** A region of this agent: its UCX memory handle (unmapped by free_region()/close()) and packed rkey. */
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

/**
 * A peer we read from: a PEER-error-mode endpoint on the main worker (failure detection,
 * notifications, served-read requests and refusals) plus the peer's regions' unpacked rkeys.
 * Stays in the agent's map after a failure or disconnect, since UCX callbacks may still name it.
 */
struct Peer {
  uint32_t id = 0;
  std::string name;
  uint64_t uid = 0;
  ucp_ep_h ep = nullptr;
  std::map<uint32_t, RemoteRegion> regions;
  bool failed = false;
  bool disconnected = false;
  Status failure;
  void* close_request = nullptr;  // a force-close in progress
  bool served = false;            // our READs from this peer are served reads

  /** Usable for new operations: connected and not failed. */
  bool usable() const { return !failed && ep != nullptr; }
};

/** Why an operation (`verb`: "read from", "notify") cannot use `peer` (null: forgotten). */
inline Status peer_gone(const Peer* peer, const std::string& verb) {
  if (peer == nullptr || peer->failure.is_ok()) return Status(StatusCode::kPeerUnreachable, verb + " a peer that is gone");
  return Status(peer->failure.code(), verb + " " + peer->failure.message());
}

}  // namespace hpd::transport
