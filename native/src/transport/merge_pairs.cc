// Pairing and merging of (local, remote) descriptor indices into contiguous runs.
// Why merge: descriptor count, not bytes, is what costs first (NIXL PR #1756); a per-layer run of
// adjacent kernel blocks is one GET instead of one per block.
#include "hpd/agent.h"

namespace hpd {

Status merge_pairs(const std::vector<Descriptor>& local, const uint32_t* local_idx, const std::vector<Descriptor>& remote,
                   const uint32_t* remote_idx, size_t count, std::vector<PairedRun>* runs) {
  runs->clear();
  for (size_t i = 0; i < count; ++i) {
    const uint32_t li = local_idx[i], ri = remote_idx[i];
    if (li >= local.size()) {
      return Status(StatusCode::kOutOfRange, "local index " + std::to_string(li) + " at pair " + std::to_string(i) +
                                                 " is past the local list (" + std::to_string(local.size()) + " descriptors)");
    }
    if (ri >= remote.size()) {
      return Status(StatusCode::kOutOfRange, "remote index " + std::to_string(ri) + " at pair " + std::to_string(i) +
                                                 " is past the remote list (" + std::to_string(remote.size()) + " descriptors)");
    }
    const Descriptor& l = local[li];
    const Descriptor& r = remote[ri];
    if (l.size_bytes != r.size_bytes) {
      return Status(StatusCode::kInvalidArgument, "pair " + std::to_string(i) + " has local size " +
                                                      std::to_string(l.size_bytes) + " but remote size " +
                                                      std::to_string(r.size_bytes) + " bytes");
    }
    if (l.size_bytes == 0) continue;
    if (!runs->empty()) {
      PairedRun& last = runs->back();
      if (last.local_region == l.region && last.remote_region == r.region &&
          last.local_offset_bytes + last.size_bytes == l.offset_bytes &&
          last.remote_offset_bytes + last.size_bytes == r.offset_bytes) {
        last.size_bytes += l.size_bytes;
        continue;
      }
    }
    runs->push_back(PairedRun{l.region, l.offset_bytes, r.region, r.offset_bytes, l.size_bytes});
  }
  return Status::ok();
}

}  // namespace hpd
