// Served-read grants: what an owner lets one request read (issue 9: "served reads refuse pieces
// outside the blocks leased to the requesting request").
//
// A grant is a capability: 128 bits from the kernel's CSPRNG (getrandom), handed by the owner's
// application to one reader over its own (authenticated) channel, carried back in that reader's
// served-read requests (served_read.h). The owner serves a piece only if it lies wholly inside
// the union of the grant's ranges. Ranges are kept per region as sorted, merged intervals, so a
// piece spanning two adjacent granted blocks is one containment check.
//
// Only served reads can be checked: a GET (shared memory, RDMA) is one-sided and never reaches
// the owner's code. There the cluster token that guards the metadata is the boundary.
//
// Not thread-safe: the agent calls it under its UCX lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hpd/agent.h"
#include "hpd/status.h"

namespace hpd::transport {

/** The size of each of this agent's regions, by id (what a grant may name). */
using RegionSizes = std::map<uint32_t, uint64_t>;

class GrantTable {
 public:
  // Live grants per agent. A serving owner grants per request and revokes when the request's
  // blocks are freed; far more than this many live grants is a leak, refused loudly.
  static constexpr size_t kMaxGrants = 1u << 16;
  static constexpr size_t kMaxRanges = 1u << 20;

  /** Validates every range against `regions` (exists, in bounds, non-empty) and issues a fresh id. */
  Status create(const std::vector<Descriptor>& ranges, const RegionSizes& regions, GrantId* out);
  /** True when the grant was live (it is gone now). */
  bool revoke(const GrantId& id);
  /** Grants naming `region` die with it. */
  void drop_region(uint32_t region);
  void clear() { grants_.clear(); }
  size_t size() const { return grants_.size(); }

  /** Whether the grant is live and [offset, offset + size) of `region` lies inside its ranges. */
  bool covers(const GrantId& id, uint32_t region, uint64_t offset_bytes, uint64_t size_bytes) const;
  bool live(const GrantId& id) const { return find(id) != nullptr; }

 private:
  struct Interval {
    uint64_t begin;  // bytes, inclusive
    uint64_t end;    // bytes, exclusive
  };
  struct Grant {
    GrantId id;
    std::map<uint32_t, std::vector<Interval>> by_region;  // sorted by begin, merged, non-overlapping
  };

  const Grant* find(const GrantId& id) const;

  // Keyed by the id's first 64 bits; the whole id is then compared in constant time, so lookup
  // timing says nothing about the second half (and 64 bits alone still cannot be guessed).
  std::multimap<uint64_t, Grant> grants_;
};

/** 16 random bytes from getrandom(2) (falls back to /dev/urandom); never a weaker generator. */
Status random_grant_id(GrantId* out);

}  // namespace hpd::transport
