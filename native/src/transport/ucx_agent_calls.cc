// The synchronous API of the UCX agent, called from the event loop under the agent's lock:
// regions, grants, metadata and peers, prepared descriptor lists, and how posted work becomes an
// operation (ops.h) that the progress thread (ucx_agent.cc) then drives.
#include <algorithm>
#include <cstring>

#include "hpd/busy_memory.h"
#include "ucx_agent.h"

namespace hpd::transport {

// ---- regions --------------------------------------------------------------------------------

Status UcxAgent::alloc_region(uint64_t size_bytes, RegionInfo* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  if (size_bytes == 0) return Status(StatusCode::kInvalidArgument, "region size must be positive, got 0 bytes");
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  mp.address = nullptr;
  mp.length = size_bytes;
  mp.flags = UCP_MEM_MAP_ALLOCATE;
  ucp_mem_h memh = nullptr;
  ucs_status_t s = ucp_mem_map(context_, &mp, &memh);
  if (s != UCS_OK) {
    return Status(StatusCode::kNoMemory, "UCX could not allocate a shared region of " + std::to_string(size_bytes) +
                                             " bytes: " + ucs_text(s) +
                                             " (check free space in /dev/shm and `ipcs -l` shared memory limits)");
  }
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  s = ucp_mem_query(memh, &attr);
  if (s != UCS_OK) {
    ucp_mem_unmap(context_, memh);
    return Status(StatusCode::kTransport, "ucp_mem_query failed: " + ucs_text(s));
  }
  return add_region(memh, static_cast<uint8_t*>(attr.address), size_bytes, true, out);
}

Status UcxAgent::register_memory(void* address, uint64_t size_bytes, RegionInfo* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  if (address == nullptr || size_bytes == 0) return Status(StatusCode::kInvalidArgument, "cannot register an empty buffer");
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = address;
  mp.length = size_bytes;
  ucp_mem_h memh = nullptr;
  ucs_status_t s = ucp_mem_map(context_, &mp, &memh);
  if (s != UCS_OK) return Status(StatusCode::kTransport, "ucp_mem_map (register) failed: " + ucs_text(s));
  return add_region(memh, static_cast<uint8_t*>(address), size_bytes, false, out);
}

// Packs the rkey of a freshly mapped region and records it; unmaps it again on failure.
// Called with the agent lock held.
Status UcxAgent::add_region(ucp_mem_h memh, uint8_t* base, uint64_t size_bytes, bool allocated, RegionInfo* out) {
  Region r;
  r.id = next_region_++;
  r.memh = memh;
  r.base = base;
  r.size_bytes = size_bytes;
  r.allocated = allocated;
  void* rkey = nullptr;
  size_t rkey_len = 0;
  ucs_status_t s = ucp_rkey_pack(context_, memh, &rkey, &rkey_len);
  if (s != UCS_OK) {
    ucp_mem_unmap(context_, memh);
    return Status(StatusCode::kTransport, "ucp_rkey_pack failed: " + ucs_text(s));
  }
  r.rkey.assign(static_cast<uint8_t*>(rkey), static_cast<uint8_t*>(rkey) + rkey_len);
  ucp_rkey_buffer_release(rkey);
  *out = RegionInfo{r.id, r.base, r.size_bytes, allocated};
  regions_[r.id] = std::move(r);
  kick();
  return Status::ok();
}

Status UcxAgent::free_region(uint32_t region) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  auto it = regions_.find(region);
  if (it == regions_.end()) return Status(StatusCode::kInvalidArgument, "no region " + std::to_string(region));
  if (!ops_.empty() || owner_.serving()) {
    return Status(StatusCode::kInvalidArgument,
                  "region " + std::to_string(region) + " cannot be freed while transfers are in flight on this agent" +
                      " (reads of its own, or reads it serves to a peer)");
  }
  if (!wait_memory_idle(it->second.base, it->second.size_bytes, kKernelDrainTimeout)) {
    return Status(StatusCode::kTimeout, "region " + std::to_string(region) + " is still in use by a verification kernel");
  }
  // Unmapping is not revocation: a same-host reader keeps the orphaned pages (ucx-notes.md §2).
  // Peers must be told by protocol (a notification) before the owner frees.
  ucp_mem_unmap(context_, it->second.memh);
  regions_.erase(it);
  grants_.drop_region(region);  // grants over a freed region die with it
  return Status::ok();
}

// ---- served-read grants (grants.h) -----------------------------------------------------------

Status UcxAgent::grant(const std::vector<Descriptor>& ranges, GrantId* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  RegionSizes sizes;
  for (const auto& [id, r] : regions_) sizes[id] = r.size_bytes;
  return grants_.create(ranges, sizes, out);
}

Status UcxAgent::revoke_grant(const GrantId& grant, bool* was_live) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  *was_live = grants_.revoke(grant);
  return Status::ok();
}

// ---- metadata and peers ---------------------------------------------------------------------

Status UcxAgent::metadata(std::vector<uint8_t>* out) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  *out = encode_metadata(own_metadata());
  return Status::ok();
}

// Lock held.
AgentMetadata UcxAgent::own_metadata(bool with_regions) const {
  AgentMetadata m;
  m.ucx_major = ucx_major_;
  m.ucx_minor = ucx_minor_;
  m.ucx_release = ucx_release_;
  m.uid = uid_;
  m.tcp_segment_bytes = tcp_segment_bytes_;
  m.name = options_.name;
  m.host = host_;
  const auto* a = reinterpret_cast<const uint8_t*>(worker_address_);
  m.worker_address.assign(a, a + worker_address_len_);
  const auto* b = reinterpret_cast<const uint8_t*>(bulk_address_);
  m.bulk_worker_address.assign(b, b + bulk_address_len_);
  if (!with_regions) return m;
  for (auto& [id, r] : regions_) {
    m.regions.push_back(RegionMetadata{id, reinterpret_cast<uint64_t>(r.base), r.size_bytes, r.allocated, r.rkey});
  }
  return m;
}

Status UcxAgent::connect(const uint8_t* blob, size_t size, PeerInfo* out) {
  AgentMetadata m;
  Status st = decode_metadata(blob, size, &m);
  if (!st.is_ok()) return st;
  Lock lk(this);
  st = check_open();
  if (!st.is_ok()) return st;
  if (m.ucx_major != ucx_major_ || m.ucx_minor != ucx_minor_ || m.ucx_release != ucx_release_) {
    return Status(StatusCode::kUnsupported, "peer '" + m.name + "' runs UCX " + std::to_string(m.ucx_major) + "." +
                                                std::to_string(m.ucx_minor) + "." + std::to_string(m.ucx_release) +
                                                ", this agent " + std::to_string(ucx_major_) + "." +
                                                std::to_string(ucx_minor_) + "." + std::to_string(ucx_release_) +
                                                " (both ends must run the same UCX)");
  }
  if (m.tcp_segment_bytes != tcp_segment_bytes_) {
    return Status(StatusCode::kInvalidArgument,
                  "peer '" + m.name + "' uses TCP segments of " + std::to_string(m.tcp_segment_bytes) +
                      " bytes, this agent " + std::to_string(tcp_segment_bytes_) +
                      " (0 = UCX default); UCX aborts a reader whose receive segment is smaller, so both ends must agree");
  }
  Peer* peer = nullptr;
  for (auto& [id, p] : peers_) {
    if (p->uid == m.uid && !p->disconnected && !p->failed) peer = p.get();
  }
  if (peer == nullptr) {
    auto p = std::make_unique<Peer>();
    p->id = next_peer_++;
    p->name = m.name;
    p->uid = m.uid;
    p->served = decide_served(m);
    ucp_ep_params_t ep{};
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_NAME;
    ep.address = reinterpret_cast<const ucp_address_t*>(m.worker_address.data());
    ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb = &UcxAgent::on_ep_error;
    ep.err_handler.arg = this;  // on_ep_error finds the peer by its endpoint
    ep.name = p->name.c_str();
    ucs_status_t s = ucp_ep_create(worker_, &ep, &p->ep);
    if (s != UCS_OK) {
      return Status(s == UCS_ERR_UNREACHABLE ? StatusCode::kPeerUnreachable : StatusCode::kTransport,
                    "cannot reach peer '" + m.name + "': " + ucs_text(s));
    }
    peer = p.get();
    peers_[p->id] = std::move(p);
  }
  for (auto& reg : m.regions) {
    auto found = peer->regions.find(reg.id);
    if (found != peer->regions.end()) continue;
    RemoteRegion rr;
    rr.meta = reg;
    ucs_status_t s = ucp_ep_rkey_unpack(peer->ep, reg.rkey.data(), &rr.rkey);
    if (s != UCS_OK) {
      return Status(StatusCode::kTransport,
                    "cannot unpack the key of region " + std::to_string(reg.id) + " of peer '" + m.name + "': " + ucs_text(s));
    }
    peer->regions[reg.id] = std::move(rr);
  }
  *out = PeerInfo{peer->id, peer->name, static_cast<uint32_t>(peer->regions.size()), peer->served};
  kick();
  return Status::ok();
}

Status UcxAgent::disconnect(uint32_t id) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  Peer* peer = find_peer(id);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "no connected peer " + std::to_string(id));
  for (auto& [oid, op] : ops_) {
    if (core(*op).peer == id) return Status(StatusCode::kInvalidArgument, "peer '" + peer->name + "' has transfers in flight");
  }
  peer->disconnected = true;
  for (auto& [rid, rr] : peer->regions) {
    if (rr.rkey != nullptr) ucp_rkey_destroy(rr.rkey);
    rr.rkey = nullptr;
  }
  peer->regions.clear();
  // Peer stays in the map (UCX callbacks may still name it); marking it failed force-closes the endpoint.
  peer->failed = true;
  peer->failure = Status(StatusCode::kClosed, "peer '" + peer->name + "' was disconnected");
  for (auto it = lists_.begin(); it != lists_.end();) {
    it = it->second.remote && it->second.peer == id ? lists_.erase(it) : std::next(it);
  }
  kick();
  return Status::ok();
}

// ---- descriptor lists and posting -------------------------------------------------------------

Status UcxAgent::prepare_local(const std::vector<Descriptor>& descs, uint32_t* list) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  for (size_t i = 0; i < descs.size(); ++i) {
    const Descriptor& d = descs[i];
    auto it = regions_.find(d.region);
    if (it == regions_.end()) {
      return Status(StatusCode::kInvalidArgument, "descriptor " + std::to_string(i) + " names region " +
                                                      std::to_string(d.region) + ", which this agent does not have");
    }
    if (d.offset_bytes > it->second.size_bytes || d.size_bytes > it->second.size_bytes - d.offset_bytes) {
      return Status(StatusCode::kOutOfRange, "descriptor " + std::to_string(i) + " [" + std::to_string(d.offset_bytes) +
                                                 ", +" + std::to_string(d.size_bytes) + ") is past the end of region " +
                                                 std::to_string(d.region) + " (" + std::to_string(it->second.size_bytes) +
                                                 " bytes)");
    }
  }
  *list = next_list_++;
  lists_[*list] = List{false, 0, descs};
  return Status::ok();
}

Status UcxAgent::prepare_remote(uint32_t peer_id, const std::vector<Descriptor>& descs, uint32_t* list) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  Peer* peer = find_peer(peer_id);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "no connected peer " + std::to_string(peer_id));
  for (size_t i = 0; i < descs.size(); ++i) {
    const Descriptor& d = descs[i];
    auto it = peer->regions.find(d.region);
    if (it == peer->regions.end()) {
      return Status(StatusCode::kInvalidArgument, "descriptor " + std::to_string(i) + " names region " +
                                                      std::to_string(d.region) + ", which peer '" + peer->name +
                                                      "' did not publish (connect again with fresh metadata?)");
    }
    const uint64_t size = it->second.meta.size_bytes;
    if (d.offset_bytes > size || d.size_bytes > size - d.offset_bytes) {
      return Status(StatusCode::kOutOfRange, "descriptor " + std::to_string(i) + " [" + std::to_string(d.offset_bytes) +
                                                 ", +" + std::to_string(d.size_bytes) + ") is past the end of region " +
                                                 std::to_string(d.region) + " of peer '" + peer->name + "' (" +
                                                 std::to_string(size) + " bytes)");
    }
  }
  *list = next_list_++;
  lists_[*list] = List{true, peer_id, descs};
  return Status::ok();
}

Status UcxAgent::release_list(uint32_t list) {
  Lock lk(this);
  if (lists_.erase(list) == 0) return Status(StatusCode::kInvalidArgument, "no descriptor list " + std::to_string(list));
  return Status::ok();
}

uint8_t* UcxAgent::local_address(uint32_t region, uint64_t offset_bytes) {
  auto it = regions_.find(region);
  return it == regions_.end() ? nullptr : it->second.base + offset_bytes;
}

void UcxAgent::add_op(std::unique_ptr<Op> op) {
  {
    std::lock_guard<std::mutex> lk(events_mu_);
    pending_++;
  }
  const uint64_t id = core(*op).id;
  ops_[id] = std::move(op);
  kick();
}

Status UcxAgent::post_read(uint32_t local_list, const uint32_t* local_idx, uint32_t remote_list, const uint32_t* remote_idx,
                           size_t count, uint32_t timeout_ms, const GrantId* grant, uint64_t* op_id, BatchShape* shape) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  auto li = lists_.find(local_list);
  auto ri = lists_.find(remote_list);
  if (li == lists_.end() || li->second.remote) return Status(StatusCode::kInvalidArgument, "no local descriptor list " + std::to_string(local_list));
  if (ri == lists_.end() || !ri->second.remote) return Status(StatusCode::kInvalidArgument, "no remote descriptor list " + std::to_string(remote_list));
  Peer* peer = find_peer(ri->second.peer);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "the remote list's peer is disconnected");
  std::vector<PairedRun> runs;
  st = merge_pairs(li->second.descs, local_idx, ri->second.descs, remote_idx, count, &runs);
  if (!st.is_ok()) return st;
  for (const PairedRun& run : runs) {
    if (local_address(run.local_region, run.local_offset_bytes) == nullptr) {
      return Status(StatusCode::kInvalidArgument, "local region " + std::to_string(run.local_region) + " was freed");
    }
  }
  auto op = std::make_unique<Op>();
  if (peer->served) {
    // The owner sends each piece into a receive posted on our memory (ServedRead::post).
    ServedRead& r = op->emplace<ServedRead>();
    r.has_grant = grant != nullptr;
    if (grant != nullptr) r.grant = *grant;
    for (const PairedRun& run : runs) {
      uint8_t* local = local_address(run.local_region, run.local_offset_bytes);
      for (uint64_t off = 0; off < run.size_bytes; off += kServedPieceBytes) {
        ServedRead::Piece piece;
        piece.local = local + off;
        piece.owner_region = run.remote_region;
        piece.owner_offset_bytes = run.remote_offset_bytes + off;
        piece.size_bytes = std::min(kServedPieceBytes, run.size_bytes - off);
        r.pieces.push_back(piece);
      }
      r.total_bytes += run.size_bytes;
    }
  } else {
    GetRead& r = op->emplace<GetRead>();
    for (const PairedRun& run : runs) {
      uint8_t* local = local_address(run.local_region, run.local_offset_bytes);
      const RemoteRegion& rr = peer->regions.at(run.remote_region);
      for (uint64_t off = 0; off < run.size_bytes; off += kMaxGetPieceBytes) {
        GetRead::Piece piece;
        piece.local = local + off;
        piece.remote_address = rr.meta.base + run.remote_offset_bytes + off;
        piece.rkey = rr.rkey;
        piece.done.size_bytes = std::min(kMaxGetPieceBytes, run.size_bytes - off);
        r.pieces.push_back(piece);
      }
      r.total_bytes += run.size_bytes;
    }
  }
  OpCore& c = core(*op);
  c.id = next_op_++;
  c.verb = "read";
  c.peer = peer->id;
  c.peer_name = peer->name;
  c.begin(timeout_ms);
  if (auto* served = std::get_if<ServedRead>(op.get())) {
    for (size_t i = 0; i < served->pieces.size(); ++i) served->pieces[i].tag = (c.id << 32) | i;
  }
  *shape = BatchShape{c.total_bytes, static_cast<uint32_t>(count), static_cast<uint32_t>(runs.size())};
  if (peer->failed) c.fail(Status(peer->failure.code(), "read from " + peer->failure.message()));
  *op_id = c.id;
  add_op(std::move(op));
  return Status::ok();
}

Status UcxAgent::post_copy(uint32_t dst_list, const uint32_t* dst_idx, uint32_t src_list, const uint32_t* src_idx,
                           size_t count, uint64_t* op_id, BatchShape* shape) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  auto di = lists_.find(dst_list);
  auto si = lists_.find(src_list);
  if (di == lists_.end() || di->second.remote) return Status(StatusCode::kInvalidArgument, "no local descriptor list " + std::to_string(dst_list));
  if (si == lists_.end() || si->second.remote) return Status(StatusCode::kInvalidArgument, "no local descriptor list " + std::to_string(src_list));
  std::vector<PairedRun> runs;
  st = merge_pairs(di->second.descs, dst_idx, si->second.descs, src_idx, count, &runs);
  if (!st.is_ok()) return st;
  auto op = std::make_unique<Op>();
  CopyOp& c = op->emplace<CopyOp>();
  for (const PairedRun& run : runs) {
    uint8_t* dst = local_address(run.local_region, run.local_offset_bytes);
    const uint8_t* src = local_address(run.remote_region, run.remote_offset_bytes);
    if (dst == nullptr || src == nullptr) return Status(StatusCode::kInvalidArgument, "a region of the copy was freed");
    for (uint64_t off = 0; off < run.size_bytes; off += kMaxGetPieceBytes) {
      c.pieces.push_back(CopyOp::Piece{dst + off, src + off, std::min(kMaxGetPieceBytes, run.size_bytes - off)});
    }
    c.total_bytes += run.size_bytes;
  }
  c.id = next_op_++;
  c.verb = "copy";
  c.begin(0);
  *shape = BatchShape{c.total_bytes, static_cast<uint32_t>(count), static_cast<uint32_t>(runs.size())};
  *op_id = c.id;
  add_op(std::move(op));
  return Status::ok();
}

Status UcxAgent::post_notify(uint32_t peer_id, const uint8_t* data, size_t size, uint32_t timeout_ms, uint64_t* op_id) {
  Lock lk(this);
  Status st = check_open();
  if (!st.is_ok()) return st;
  if (size > kMaxNotificationBytes) {
    return Status(StatusCode::kInvalidArgument, "notification of " + std::to_string(size) + " bytes exceeds the " +
                                                    std::to_string(kMaxNotificationBytes) + "-byte limit");
  }
  Peer* peer = find_peer(peer_id);
  if (peer == nullptr || peer->disconnected) return Status(StatusCode::kInvalidArgument, "no connected peer " + std::to_string(peer_id));
  auto op = std::make_unique<Op>();
  NotifyOp& n = op->emplace<NotifyOp>();
  n.id = next_op_++;
  n.verb = "notify";
  n.peer = peer_id;
  n.peer_name = peer->name;
  n.begin(timeout_ms);
  // Header: our uid (so the receiver can name its connected peer), our name, the payload.
  const uint16_t name_len = static_cast<uint16_t>(std::min<size_t>(options_.name.size(), 256));
  n.header.resize(10 + name_len + size);
  std::memcpy(n.header.data(), &uid_, 8);
  std::memcpy(n.header.data() + 8, &name_len, 2);
  std::memcpy(n.header.data() + 10, options_.name.data(), name_len);
  if (size > 0) std::memcpy(n.header.data() + 10 + name_len, data, size);
  n.total_bytes = size;
  if (peer->failed) n.fail(Status(peer->failure.code(), "notify " + peer->failure.message()));
  *op_id = n.id;
  add_op(std::move(op));
  return Status::ok();
}

// kAuto serves reads where UCX would emulate GET over TCP: a TCP-only agent, or a peer on another
// host when no RDMA device exists here. Same-host shared memory and RDMA keep one-sided GETs.
bool UcxAgent::decide_served(const AgentMetadata& peer) const {
  switch (options_.read_protocol) {
    case ReadProtocol::kGet: return false;
    case ReadProtocol::kServed: return true;
    case ReadProtocol::kAuto: break;
  }
  if (options_.transport == TransportChoice::kTcp) return true;
  if (options_.transport == TransportChoice::kShm) return false;
  return peer.host != host_ && !rdma_present_;
}

}  // namespace hpd::transport
