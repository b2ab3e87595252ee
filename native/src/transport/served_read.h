// Served reads: the wire format of a READ that the owner executes as tagged sends.
//
// Over TCP, UCX 1.13 has no one-sided GET (nor PUT: its RMA lanes need short/bcopy support TCP
// lacks): ucp_get_nbx/ucp_put_nbx are emulated with active messages that pack every byte into a
// bounce segment on one side and unpack it on the other (four copies per byte counting the
// kernel's two; its speed then depends on the segment size: 3x between UCX's 8K/64K and 256 KiB).
// UCX's tag-matched rendezvous instead moves a large message with TCP's zero-copy PUT: the sender
// sendmsg()s from its buffer and the receiver recv()s straight into the posted buffer (two
// copies, no user-space copy left in a profile; segment size no longer matters). UCX only does
// that between endpoints without peer error handling, so the data travels between the agents'
// bulk workers (ucx_agent.cc: bulk_worker_) while requests, replies and failure detection stay
// on the main workers. A served read:
//
//   reader          posts one tagged receive per piece, straight into its destination memory
//   reader → owner  SERVE_REQUEST  tag base, reader uid, budget, grant (if any), reader metadata, pieces
//   owner  → reader one tagged send per piece (tag = tag base | piece index), at most
//                   kMaxOutstandingServe in flight
//   owner  → reader SERVE_REPLY    only when the owner refuses or gives up: status and message
//
// The read completes when every receive has. Every request carries the reader's metadata (the
// owner makes its bulk endpoint to the reader from it, or reuses a live one); the owner refuses
// a bad request (unknown region, out of bounds, a piece outside the grant it carries, no grant
// where the owner requires one: grants.h) with a reply before sending anything. The budget
// is the time left until the reader's deadline: past it the owner posts nothing more and
// force-closes its endpoint to the reader, which cancels what it still had in flight. A reader
// whose read failed cancels its receives not yet matched, so a late send lands in UCX's
// unexpected queue, never in memory; a piece already matched may still complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpd/agent.h"
#include "hpd/status.h"

namespace hpd::transport {

constexpr unsigned kServeRequestAmId = 0x4851;
constexpr unsigned kServeReplyAmId = 0x4852;

/** One piece to send: a range of an owner region; the reader's receive for it is tagged tag_base | index. */
struct ServedPiece {
  uint32_t owner_region = 0;
  uint64_t owner_offset_bytes = 0;
  uint64_t size_bytes = 0;
};

struct ServeRequest {
  uint64_t tag_base = 0;                  // low 32 bits zero; piece i is tagged tag_base | i
  uint64_t reader_uid = 0;
  uint32_t budget_ms = 0;                 // time left until the reader's deadline; 0 = none
  bool has_grant = false;
  GrantId grant;                          // the owner's grant the reader was given (grants.h)
  std::vector<uint8_t> reader_metadata;   // its worker address: the owner's endpoint to the reader
  std::vector<ServedPiece> pieces;
};

struct ServeReply {
  uint64_t tag_base = 0;
  uint64_t owner_uid = 0;
  StatusCode code = StatusCode::kOk;
  std::string message;
};

std::vector<uint8_t> encode_serve_request(const ServeRequest& r);
Status decode_serve_request(const uint8_t* data, size_t size, ServeRequest* out);
std::vector<uint8_t> encode_serve_reply(const ServeReply& r);
Status decode_serve_reply(const uint8_t* data, size_t size, ServeReply* out);

}  // namespace hpd::transport
