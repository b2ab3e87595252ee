// The owner side of served reads: one `Serve` state machine per reader request (see the header).
// Runs on the agent's progress thread with the UCX lock held.
#include "served_read_owner.h"

#include <algorithm>

namespace hpd::transport {

void ServedReadOwner::start() {
  std::vector<ServeRequest> queue;
  queue.swap(queue_);
  for (const ServeRequest& q : queue) {
    Reader* reader = nullptr;
    Status st = accept_reader(q, &reader);
    // No endpoint to the reader: nobody to answer. Its own deadline reports the read.
    if (reader == nullptr) continue;
    auto serve = std::make_unique<Serve>();
    serve->id = next_serve_++;
    serve->verb = "serve";
    serve->peer = reader->id;
    serve->peer_name = reader->name;
    serve->tag_base = q.tag_base;
    serve->has_grant = q.has_grant;
    serve->grant = q.grant;
    serve->begin(q.budget_ms);
    if (st.is_ok()) st = plan(q, serve.get());
    serve->status = st;
    serves_[serve->id] = std::move(serve);
  }
}

// Finds (or, from the metadata in the request, creates) the endpoint to the reader.
Status ServedReadOwner::accept_reader(const ServeRequest& q, Reader** out) {
  for (auto& [id, r] : readers_) {
    if (r.uid == q.reader_uid && r.ep != nullptr) {
      *out = &r;
      return Status::ok();
    }
  }
  *out = nullptr;
  AgentMetadata m;
  Status st = decode_metadata(q.reader_metadata.data(), q.reader_metadata.size(), &m);
  if (!st.is_ok()) return st;
  if (m.uid != q.reader_uid) return Status(StatusCode::kInvalidArgument, "served read whose metadata names another agent");
  Reader r;
  r.id = next_reader_++;
  r.name = m.name;
  r.uid = m.uid;
  // No peer error handling on the bulk worker (see the header): a dead reader fails our sends,
  // a stuck one is dropped at the budget's end (advance).
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_NAME;
  ep.address = reinterpret_cast<const ucp_address_t*>(m.bulk_worker_address.data());
  ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  ep.name = r.name.c_str();
  if (m.bulk_worker_address.empty() || ucp_ep_create(bulk_worker_, &ep, &r.ep) != UCS_OK) {
    return Status(StatusCode::kPeerUnreachable, "cannot reach reader '" + m.name + "'");
  }
  *out = &(readers_[r.id] = std::move(r));
  return Status::ok();  // segment sizes were compared by the reader's connect()
}

// Checks every piece against our regions and the grant; nothing is sent unless all pass. Messages
// name the piece and its range, never memory contents.
Status ServedReadOwner::plan(const ServeRequest& q, Serve* serve) const {
  if (q.has_grant && !grants_.live(q.grant)) {
    return Status(StatusCode::kPermissionDenied,
                  "the grant this read carries is not live on the owner (revoked, its region freed, or never issued)");
  }
  if (!q.has_grant && require_grant_) {
    return Status(StatusCode::kPermissionDenied, "the owner serves reads only with a grant, and this read carries none");
  }
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
    if (q.has_grant && !grants_.covers(q.grant, piece.owner_region, piece.owner_offset_bytes, piece.size_bytes)) {
      return Status(StatusCode::kPermissionDenied, which + "(region " + std::to_string(piece.owner_region) + ", bytes [" +
                                                       std::to_string(piece.owner_offset_bytes) + ", +" + std::to_string(piece.size_bytes) +
                                                       ")) lies outside the ranges its grant covers");
    }
    Serve::Piece p;
    p.source = own->second.base + piece.owner_offset_bytes;
    p.tag = q.tag_base | i;
    p.done.size_bytes = piece.size_bytes;
    serve->pieces.push_back(p);
    serve->total_bytes += piece.size_bytes;
  }
  return Status::ok();
}

void ServedReadOwner::post(uint64_t* budget_bytes) {
  for (auto& [id, sp] : serves_) {
    Serve& s = *sp;
    while (s.can_post() && *budget_bytes > 0) {
      Reader* reader = find_reader(s.peer);
      if (reader == nullptr) {
        s.fail(Status(StatusCode::kPeerUnreachable, "serve to a reader that is gone"));
        break;
      }
      // Revoked (or its region freed) mid-read: what is posted finishes, the rest is refused.
      if (s.has_grant && !grants_.live(s.grant)) {
        s.fail(Status(StatusCode::kPermissionDenied, "the grant was revoked after " + std::to_string(s.next) + " of " +
                                                         std::to_string(s.pieces.size()) + " pieces were sent; piece " +
                                                         std::to_string(s.next) + " and later were refused"));
        break;
      }
      Serve::Piece& piece = s.pieces[s.next++];
      piece.done.op = &s;
      ucp_request_param_t param = send_param(&piece.done);
      s.track(ucp_tag_send_nbx(reader->ep, piece.source, piece.done.size_bytes, piece.tag, &param), &piece.done,
              "serve to peer '" + reader->name + "'");
      *budget_bytes = piece.done.size_bytes >= *budget_bytes ? 0 : *budget_bytes - piece.done.size_bytes;
    }
  }
}

void ServedReadOwner::advance(Clock::time_point now) {
  for (auto it = serves_.begin(); it != serves_.end();) {
    Serve& s = *it->second;
    Reader* reader = find_reader(s.peer);
    if (reader == nullptr) s.fail(Status(StatusCode::kPeerUnreachable, "the reader is gone"));
    if (s.phase == Serve::Phase::kSending && s.status.is_ok() && s.past_deadline(now) && (s.next < s.pieces.size() || s.outstanding > 0)) {
      s.fail(Status(StatusCode::kTimeout, "the owner stopped at the reader's deadline (" + std::to_string(s.timeout_ms) + " ms) with " +
                                              std::to_string(s.done_bytes) + " of " + std::to_string(s.total_bytes) + " bytes sent"));
      // Sends cannot be cancelled, nor this endpoint closed (see the header): drop the reader so
      // nothing more goes to it. Its next request carries its metadata: a fresh endpoint then.
      if (s.outstanding > 0 && reader != nullptr) {
        drop(reader->id);
        reader = nullptr;
      }
    }
    if (s.phase == Serve::Phase::kSending && (s.next >= s.pieces.size() || !s.status.is_ok()) && s.outstanding == 0) {
      s.phase = Serve::Phase::kReplying;
      if (!s.status.is_ok() && reader != nullptr) {
        s.reply = encode_serve_reply(ServeReply{s.tag_base, owner_uid_, s.status.code(), s.status.message()});
        s.reply_done = Completion{&s, 0};
        // A failed post means the reader is gone: nobody is left to tell.
        s.track(send_eager(reader->ep, kServeReplyAmId, s.reply, &s.reply_done), &s.reply_done, "reply to peer '" + reader->name + "'");
      }
    }
    if (s.phase == Serve::Phase::kReplying && s.outstanding == 0) {
      it = serves_.erase(it);
      continue;
    }
    if (reader == nullptr && s.outstanding > 0) {
      parked_.push_back(std::move(it->second));
      it = serves_.erase(it);
      continue;
    }
    ++it;
  }
  parked_.erase(std::remove_if(parked_.begin(), parked_.end(), [](const std::unique_ptr<Serve>& s) { return s->outstanding == 0; }),
                parked_.end());
}

bool ServedReadOwner::has_work() const {
  if (!queue_.empty()) return true;
  for (const auto& [id, s] : serves_) {
    if (s->can_post()) return true;
  }
  return false;
}

bool ServedReadOwner::has_outstanding() const {
  for (const auto& [id, s] : serves_) {
    if (s->outstanding > 0) return true;
  }
  return false;
}

void ServedReadOwner::close() {
  readers_.clear();
  queue_.clear();
}

void ServedReadOwner::release_after_worker_destroyed() {
  serves_.clear();
  parked_.clear();
}

}  // namespace hpd::transport
