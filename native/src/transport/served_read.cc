#include "served_read.h"

#include <algorithm>

#include "wire.h"

namespace hpd::transport {
namespace {

constexpr uint32_t kRequestMagic = 0x47535048;  // "HPSG": requests carry a grant (the grantless "HPSQ" is gone)
constexpr uint32_t kReplyMagic = 0x52535048;    // "HPSR"
constexpr uint32_t kMaxPieces = 1u << 24;

Status malformed(const char* what) {
  return Status(StatusCode::kInvalidArgument, std::string("malformed served-read ") + what + " (not an hpd agent?)");
}

}  // namespace

std::vector<uint8_t> encode_serve_request(const ServeRequest& r) {
  Writer w;
  w.u32(kRequestMagic);
  w.u64(r.tag_base);
  w.u64(r.reader_uid);
  w.u32(r.budget_ms);
  w.u8(r.has_grant ? 1 : 0);
  w.raw(r.grant.bytes.data(), r.grant.bytes.size());
  w.u32(static_cast<uint32_t>(r.reader_metadata.size()));
  w.raw(r.reader_metadata.data(), r.reader_metadata.size());
  w.u32(static_cast<uint32_t>(r.pieces.size()));
  for (const ServedPiece& p : r.pieces) {
    w.u32(p.owner_region);
    w.u64(p.owner_offset_bytes);
    w.u64(p.size_bytes);
  }
  return w.take();
}

Status decode_serve_request(const uint8_t* data, size_t size, ServeRequest* out) {
  Reader r(data, size);
  uint32_t magic = 0, meta_len = 0, count = 0;
  uint8_t has_grant = 0;
  ServeRequest q;
  if (!r.u32(&magic) || magic != kRequestMagic || !r.u64(&q.tag_base) || !r.u64(&q.reader_uid) ||
      !r.u32(&q.budget_ms) || !r.u8(&has_grant) || has_grant > 1 || !r.raw(q.grant.bytes.data(), q.grant.bytes.size()) ||
      !r.u32(&meta_len) || !r.bytes(meta_len, &q.reader_metadata) || !r.u32(&count) || count > kMaxPieces) {
    return malformed("request");
  }
  q.has_grant = has_grant == 1;
  q.pieces.resize(count);
  for (ServedPiece& p : q.pieces) {
    if (!r.u32(&p.owner_region) || !r.u64(&p.owner_offset_bytes) || !r.u64(&p.size_bytes)) return malformed("request");
  }
  *out = std::move(q);
  return Status::ok();
}

std::vector<uint8_t> encode_serve_reply(const ServeReply& r) {
  Writer w;
  w.u32(kReplyMagic);
  w.u64(r.tag_base);
  w.u64(r.owner_uid);
  w.u32(static_cast<uint32_t>(r.code));
  const uint16_t len = static_cast<uint16_t>(std::min<size_t>(r.message.size(), 1024));
  w.u16(len);
  w.raw(r.message.data(), len);
  return w.take();
}

Status decode_serve_reply(const uint8_t* data, size_t size, ServeReply* out) {
  Reader r(data, size);
  uint32_t magic = 0, code = 0;
  uint16_t len = 0;
  std::vector<uint8_t> msg;
  if (!r.u32(&magic) || magic != kReplyMagic || !r.u64(&out->tag_base) || !r.u64(&out->owner_uid) || !r.u32(&code) ||
      code > static_cast<uint32_t>(kLastStatusCode) || !r.u16(&len) || !r.bytes(len, &msg)) {
    return malformed("reply");
  }
  out->code = static_cast<StatusCode>(code);
  out->message.assign(msg.begin(), msg.end());
  return Status::ok();
}

}  // namespace hpd::transport
