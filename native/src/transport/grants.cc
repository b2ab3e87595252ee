#include "grants.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace hpd::transport {
namespace {

uint64_t key_of(const GrantId& id) {
  uint64_t k;
  std::memcpy(&k, id.bytes.data(), sizeof(k));
  return k;
}

bool same_id(const GrantId& a, const GrantId& b) {
  uint8_t diff = 0;
  for (size_t i = 0; i < a.bytes.size(); ++i) diff |= a.bytes[i] ^ b.bytes[i];
  return diff == 0;
}

}  // namespace

Status random_grant_id(GrantId* out) {
  size_t filled = 0;
  while (filled < out->bytes.size()) {
    const ssize_t n = getrandom(out->bytes.data() + filled, out->bytes.size() - filled, 0);
    if (n > 0) {
      filled += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // ENOSYS (a kernel before 3.17): read the same CSPRNG through its device
    }
  }
  if (filled == out->bytes.size()) return Status::ok();
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (urandom.read(reinterpret_cast<char*>(out->bytes.data()), static_cast<std::streamsize>(out->bytes.size()))) {
    return Status::ok();
  }
  return Status(StatusCode::kInternal, "no randomness for a grant id: getrandom(2) and /dev/urandom both failed");
}

Status GrantTable::create(const std::vector<Descriptor>& ranges, const RegionSizes& regions, GrantId* out) {
  if (ranges.empty()) return Status(StatusCode::kInvalidArgument, "a grant needs at least one range");
  if (ranges.size() > kMaxRanges) {
    return Status(StatusCode::kInvalidArgument, "a grant of " + std::to_string(ranges.size()) + " ranges exceeds the limit of " +
                                                    std::to_string(kMaxRanges));
  }
  if (grants_.size() >= kMaxGrants) {
    return Status(StatusCode::kOutOfRange, std::to_string(grants_.size()) +
                                               " grants are live on this agent (the limit): revoke the grants of finished requests");
  }
  Grant g;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const Descriptor& d = ranges[i];
    auto it = regions.find(d.region);
    const std::string which = "grant range " + std::to_string(i) + " ";
    if (it == regions.end()) {
      return Status(StatusCode::kInvalidArgument, which + "names region " + std::to_string(d.region) + ", which this agent does not have");
    }
    if (d.size_bytes == 0) return Status(StatusCode::kInvalidArgument, which + "is empty");
    if (d.offset_bytes > it->second || d.size_bytes > it->second - d.offset_bytes) {
      return Status(StatusCode::kOutOfRange, which + "[" + std::to_string(d.offset_bytes) + ", +" + std::to_string(d.size_bytes) +
                                                 ") is past the end of region " + std::to_string(d.region) + " (" +
                                                 std::to_string(it->second) + " bytes)");
    }
    g.by_region[d.region].push_back(Interval{d.offset_bytes, d.offset_bytes + d.size_bytes});
  }
  for (auto& [region, intervals] : g.by_region) {
    std::sort(intervals.begin(), intervals.end(), [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
    std::vector<Interval> merged;
    for (const Interval& iv : intervals) {
      if (!merged.empty() && iv.begin <= merged.back().end) {
        merged.back().end = std::max(merged.back().end, iv.end);  // overlapping or touching: one interval
      } else {
        merged.push_back(iv);
      }
    }
    intervals.swap(merged);
  }
  Status st = random_grant_id(&g.id);
  if (!st.is_ok()) return st;
  *out = g.id;
  grants_.emplace(key_of(g.id), std::move(g));
  return Status::ok();
}

const GrantTable::Grant* GrantTable::find(const GrantId& id) const {
  auto [first, last] = grants_.equal_range(key_of(id));
  for (auto it = first; it != last; ++it) {
    if (same_id(it->second.id, id)) return &it->second;
  }
  return nullptr;
}

bool GrantTable::revoke(const GrantId& id) {
  auto [first, last] = grants_.equal_range(key_of(id));
  for (auto it = first; it != last; ++it) {
    if (same_id(it->second.id, id)) {
      grants_.erase(it);
      return true;
    }
  }
  return false;
}

void GrantTable::drop_region(uint32_t region) {
  for (auto it = grants_.begin(); it != grants_.end();) {
    it = it->second.by_region.count(region) != 0 ? grants_.erase(it) : std::next(it);
  }
}

bool GrantTable::covers(const GrantId& id, uint32_t region, uint64_t offset_bytes, uint64_t size_bytes) const {
  const Grant* g = find(id);
  if (g == nullptr) return false;
  auto r = g->by_region.find(region);
  if (r == g->by_region.end() || size_bytes > UINT64_MAX - offset_bytes) return false;
  const std::vector<Interval>& intervals = r->second;
  // The last interval starting at or before the piece: merged intervals never touch, so the
  // piece is inside the union only if it is inside that one.
  auto after = std::upper_bound(intervals.begin(), intervals.end(), offset_bytes,
                                [](uint64_t offset, const Interval& iv) { return offset < iv.begin; });
  if (after == intervals.begin()) return false;
  const Interval& iv = *std::prev(after);
  return offset_bytes + size_bytes <= iv.end;
}

}  // namespace hpd::transport
