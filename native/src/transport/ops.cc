// The state machines of ops.h, one kind after another. All run on the agent's progress thread
// with the UCX lock held; UCX callbacks run inside ucp_worker_progress on that same thread.
#include "ops.h"

#include <algorithm>
#include <cstring>

namespace hpd::transport {

// ---- shared by every kind ---------------------------------------------------------------------

ucp_request_param_t send_param(Completion* c) {
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &on_send_done;
  param.user_data = c;
  return param;
}

void on_send_done(void* request, ucs_status_t status, void* user_data) {
  auto* c = static_cast<Completion*>(user_data);
  OpCore* op = c->op;
  op->outstanding--;
  if (status == UCS_OK) {
    op->done_bytes += c->size_bytes;
  } else {
    op->fail(Status(StatusCode::kPeerUnreachable, std::string(op->verb) + " from " + op->who() + " failed: " + ucs_text(status)));
  }
  ucp_request_free(request);
}

ucs_status_ptr_t send_eager(ucp_ep_h ep, unsigned am_id, const std::vector<uint8_t>& message, Completion* c) {
  ucp_request_param_t param = send_param(c);
  param.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_AM_SEND_FLAG_EAGER;  // delivered whole in the receive callback, never rendezvous
  return ucp_am_send_nbx(ep, am_id, nullptr, 0, message.data(), message.size(), &param);
}

// ---- GetRead ----------------------------------------------------------------------------------

void GetRead::post(Peer* owner, uint64_t* budget_bytes) {
  while (can_post() && *budget_bytes > 0) {
    if (owner == nullptr || !owner->usable()) {
      fail(peer_gone(owner, "read from"));
      return;
    }
    Piece& piece = pieces[next++];
    piece.done.op = this;
    ucp_request_param_t param = send_param(&piece.done);
    track(ucp_get_nbx(owner->ep, piece.local, piece.done.size_bytes, piece.remote_address, piece.rkey, &param), &piece.done,
          "read from peer '" + owner->name + "'");
    *budget_bytes = piece.done.size_bytes >= *budget_bytes ? 0 : *budget_bytes - piece.done.size_bytes;
  }
}

// ---- ServedRead (reader side; the owner side is served_read_owner.cc) --------------------------

void ServedRead::post(Peer* owner, ucp_worker_h bulk_worker, uint64_t reader_uid, const std::vector<uint8_t>& reader_identity) {
  request_sent = true;
  if (owner == nullptr || !owner->usable()) {
    fail(peer_gone(owner, "read from"));
    return;
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    Piece& piece = pieces[i];
    piece.read = this;
    piece.index = i;
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.recv = &ServedRead::on_recv_done;
    param.user_data = &piece;
    ucs_status_ptr_t p = ucp_tag_recv_nbx(bulk_worker, piece.local, piece.size_bytes, piece.tag, ~ucp_tag_t(0), &param);
    if (UCS_PTR_IS_ERR(p) || p == nullptr) {
      fail(Status(StatusCode::kTransport, "cannot post a receive: " + ucs_text(UCS_PTR_STATUS(p))));
      return;
    }
    piece.recv = p;
    outstanding++;
  }
  ServeRequest q;
  q.tag_base = id << 32;
  q.reader_uid = reader_uid;
  if (timeout_ms > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    q.budget_ms = static_cast<uint32_t>(std::max<int64_t>(1, left));
  }
  q.has_grant = has_grant;
  q.grant = grant;
  q.reader_metadata = reader_identity;
  q.pieces.reserve(pieces.size());
  for (const Piece& p : pieces) q.pieces.push_back(ServedPiece{p.owner_region, p.owner_offset_bytes, p.size_bytes});
  message = encode_serve_request(q);
  message_done = Completion{this, 0};
  track(send_eager(owner->ep, kServeRequestAmId, message, &message_done), &message_done, "read from peer '" + owner->name + "'");
}

void ServedRead::on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data) {
  auto* piece = static_cast<Piece*>(user_data);
  ServedRead* read = piece->read;
  read->outstanding--;
  piece->recv = nullptr;
  if (status == UCS_OK && info->length == piece->size_bytes) {
    read->done_bytes += piece->size_bytes;
  } else if (status != UCS_OK) {
    read->fail(Status(StatusCode::kPeerUnreachable, "read from " + read->who() + " failed: " + ucs_text(status)));
  } else {
    read->fail(Status(StatusCode::kTransport, "read from " + read->who() + ": piece " + std::to_string(piece->index) + " came with " +
                                                  std::to_string(info->length) + " of " + std::to_string(piece->size_bytes) + " bytes"));
  }
  ucp_request_free(request);
}

void ServedRead::check_owner(const Peer* owner, ucp_worker_h bulk_worker) {
  if (!request_sent) return;
  if (status.is_ok() && outstanding > 0 && (owner == nullptr || owner->failed)) fail(peer_gone(owner, "read from"));
  if (!status.is_ok()) cancel_receives(bulk_worker);
}

void ServedRead::refused(const Peer& owner, const ServeReply& reply) {
  fail(Status(reply.code, "read from peer '" + owner.name + "' refused: " + reply.message));
}

void ServedRead::cancel_receives(ucp_worker_h bulk_worker) {
  if (cancelled) return;
  cancelled = true;
  for (const Piece& p : pieces) {
    if (p.recv != nullptr) ucp_request_cancel(bulk_worker, p.recv);
  }
}

// ---- CopyOp -----------------------------------------------------------------------------------

void CopyOp::post(uint64_t* budget_bytes) {
  while (can_post() && *budget_bytes > 0) {
    const Piece& piece = pieces[next++];
    std::memcpy(piece.dst, piece.src, piece.size_bytes);
    done_bytes += piece.size_bytes;
    *budget_bytes = piece.size_bytes >= *budget_bytes ? 0 : *budget_bytes - piece.size_bytes;
  }
}

// ---- NotifyOp ---------------------------------------------------------------------------------

void NotifyOp::post(Peer* peer, unsigned am_id) {
  sent = true;
  if (peer == nullptr || !peer->usable()) {
    fail(peer_gone(peer, "notify"));
    return;
  }
  done = Completion{this, 0};
  ucp_request_param_t param = send_param(&done);
  track(ucp_am_send_nbx(peer->ep, am_id, header.data(), header.size(), nullptr, 0, &param), &done, "notify peer '" + peer->name + "'");
}

}  // namespace hpd::transport
