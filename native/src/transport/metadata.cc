#include "metadata.h"

#include <cstring>

#include "wire.h"

namespace hpd::transport {
namespace {

constexpr uint32_t kMagic = 0x4d445048;  // "HPDM" little-endian
constexpr uint32_t kFormat = 3;  // 3: served-read requests carry a grant (served_read.h)

}  // namespace

std::vector<uint8_t> encode_metadata(const AgentMetadata& meta) {
  Writer w;
  w.u32(kMagic);
  w.u32(kFormat);
  w.u32(meta.ucx_major);
  w.u32(meta.ucx_minor);
  w.u32(meta.ucx_release);
  w.u64(meta.uid);
  w.u64(meta.tcp_segment_bytes);
  w.u16(static_cast<uint16_t>(meta.name.size()));
  w.raw(meta.name.data(), meta.name.size());
  w.u16(static_cast<uint16_t>(meta.host.size()));
  w.raw(meta.host.data(), meta.host.size());
  w.u32(static_cast<uint32_t>(meta.worker_address.size()));
  w.raw(meta.worker_address.data(), meta.worker_address.size());
  w.u32(static_cast<uint32_t>(meta.bulk_worker_address.size()));
  w.raw(meta.bulk_worker_address.data(), meta.bulk_worker_address.size());
  w.u32(static_cast<uint32_t>(meta.regions.size()));
  for (const auto& r : meta.regions) {
    w.u32(r.id);
    w.u64(r.base);
    w.u64(r.size_bytes);
    w.u8(r.allocated ? 1 : 0);
    w.u32(static_cast<uint32_t>(r.rkey.size()));
    w.raw(r.rkey.data(), r.rkey.size());
  }
  return w.take();
}

Status decode_metadata(const uint8_t* data, size_t size, AgentMetadata* out) {
  Reader r(data, size);
  auto truncated = [&r]() {
    return Status(StatusCode::kInvalidArgument,
                  "peer metadata is truncated at byte " + std::to_string(r.pos()) + " (not an hpd agent blob?)");
  };
  uint32_t magic = 0, format = 0;
  if (!r.u32(&magic) || !r.u32(&format)) return truncated();
  if (magic != kMagic) return Status(StatusCode::kInvalidArgument, "peer metadata does not start with the hpd magic");
  if (format != kFormat) {
    return Status(StatusCode::kUnsupported,
                  "peer metadata format " + std::to_string(format) + " differs from ours (" + std::to_string(kFormat) + ")");
  }
  AgentMetadata m;
  uint16_t name_len = 0;
  uint32_t addr_len = 0, count = 0;
  if (!r.u32(&m.ucx_major) || !r.u32(&m.ucx_minor) || !r.u32(&m.ucx_release) || !r.u64(&m.uid) ||
      !r.u64(&m.tcp_segment_bytes) || !r.u16(&name_len)) {
    return truncated();
  }
  std::vector<uint8_t> name;
  if (!r.bytes(name_len, &name)) return truncated();
  m.name.assign(name.begin(), name.end());
  uint16_t host_len = 0;
  std::vector<uint8_t> host;
  if (!r.u16(&host_len) || !r.bytes(host_len, &host)) return truncated();
  m.host.assign(host.begin(), host.end());
  uint32_t bulk_len = 0;
  if (!r.u32(&addr_len) || !r.bytes(addr_len, &m.worker_address) || !r.u32(&bulk_len) ||
      !r.bytes(bulk_len, &m.bulk_worker_address) || !r.u32(&count)) {
    return truncated();
  }
  if (count > (1u << 20)) return Status(StatusCode::kInvalidArgument, "peer metadata lists an absurd region count");
  m.regions.resize(count);
  for (auto& reg : m.regions) {
    uint8_t allocated = 0;
    uint32_t rkey_len = 0;
    if (!r.u32(&reg.id) || !r.u64(&reg.base) || !r.u64(&reg.size_bytes) || !r.u8(&allocated) || !r.u32(&rkey_len) ||
        !r.bytes(rkey_len, &reg.rkey)) {
      return truncated();
    }
    reg.allocated = allocated != 0;
  }
  *out = std::move(m);
  return Status::ok();
}

}  // namespace hpd::transport
