// The agent metadata blob: what a peer needs to read our regions. Little-endian, versioned,
// bounds-checked on parse (a truncated or foreign blob is INVALID_ARGUMENT, never a crash).
//
//   "HPDM" u32 format | u32 ucx major, minor, release | u64 agent uid | u64 tcp segment bytes
//   u16 name length, name | u16 host length, host | u32 worker address length, address
//   u32 bulk worker address length, address
//   u32 region count, then per region: u32 id, u64 base, u64 size, u8 allocated, u32 rkey length, rkey
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpd/status.h"

namespace hpd::transport {

struct RegionMetadata {
  uint32_t id = 0;
  uint64_t base = 0;
  uint64_t size_bytes = 0;
  bool allocated = false;
  std::vector<uint8_t> rkey;
};

struct AgentMetadata {
  uint32_t ucx_major = 0, ucx_minor = 0, ucx_release = 0;
  uint64_t uid = 0;
  uint64_t tcp_segment_bytes = 0;
  std::string name;
  std::string host;  // "<hostname>/<boot id>": peers on one host can map each other's shared memory
  std::vector<uint8_t> worker_address;
  std::vector<uint8_t> bulk_worker_address;  // served reads' data path (ucx_agent.cc: bulk_worker_)
  std::vector<RegionMetadata> regions;
};

std::vector<uint8_t> encode_metadata(const AgentMetadata& meta);
Status decode_metadata(const uint8_t* data, size_t size, AgentMetadata* out);

}  // namespace hpd::transport
