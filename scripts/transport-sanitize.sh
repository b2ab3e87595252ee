#!/usr/bin/env bash
# The transfer agent's C++ core under AddressSanitizer + UBSan + LeakSanitizer: builds
# native/src/transport (without N-API) with a driver that runs two agents over TCP in one process:
# served reads with a grant, a refused read outside it, a revoked grant, and a reader that gives
# up after 1 ms, so the owner drops it with sends in flight that UCX never completes (the requests
# that used to be parked and leaked at close). Fails on any sanitizer report, leaks included;
# UCX's own allocations are suppressed (its request pools are released with their workers, and
# it warns about each request never returned).
# Usage: scripts/transport-sanitize.sh      (needs g++ with libasan/libubsan, libucx-dev)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/main.cc" <<'CC'
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#include "hpd/agent.h"
#include "hpd/busy_memory.h"
using namespace hpd;
#define CHECK(c) do { if (!(c)) { std::fprintf(stderr, "FAILED %s:%d %s\n", __FILE__, __LINE__, #c); std::exit(1); } } while (0)

static AgentEvent wait_done(Agent& a, uint64_t op) {
  for (int i = 0; i < 20000; ++i) {
    for (AgentEvent& e : a.take_events()) if (e.kind == AgentEvent::Kind::kOpDone && e.op_id == op) return e;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::fprintf(stderr, "FAILED: op %llu never finished\n", (unsigned long long)op);
  std::exit(1);
}

int main() {
  AgentOptions o;
  o.transport = TransportChoice::kTcp;
  o.read_protocol = ReadProtocol::kServed;
  o.net_devices = {"lo"};
  std::unique_ptr<Agent> owner, reader;
  o.name = "owner";
  CHECK(Agent::create(o, [] {}, &owner).is_ok());
  o.name = "reader";
  CHECK(Agent::create(o, [] {}, &reader).is_ok());
  const uint64_t size = 64ull << 20;
  RegionInfo src, dst;
  CHECK(owner->alloc_region(size, &src).is_ok());
  CHECK(reader->alloc_region(size, &dst).is_ok());
  for (uint64_t i = 0; i < size; ++i) src.base[i] = static_cast<uint8_t>(i * 7);
  std::vector<uint8_t> blob;
  CHECK(owner->metadata(&blob).is_ok());
  PeerInfo peer;
  CHECK(reader->connect(blob.data(), blob.size(), &peer).is_ok() && peer.served);
  uint32_t local = 0, remote = 0;
  CHECK(reader->prepare_local({{dst.id, 0, size}, {dst.id, 0, 4096}}, &local).is_ok());
  CHECK(reader->prepare_remote(peer.id, {{src.id, 0, size}, {src.id, size - 4096, 4096}}, &remote).is_ok());
  GrantId all, head;
  CHECK(owner->grant({{src.id, 0, size}}, &all).is_ok());
  CHECK(owner->grant({{src.id, 0, 4096}}, &head).is_ok());
  const uint32_t whole = 0, tail = 1;
  uint64_t op;
  BatchShape shape;

  CHECK(reader->post_read(local, &whole, remote, &whole, 1, 10000, &all, &op, &shape).is_ok());
  CHECK(wait_done(*reader, op).status.is_ok() && std::memcmp(src.base, dst.base, size) == 0);
  std::memset(dst.base, 0x5a, 4096);
  CHECK(reader->post_read(local, &tail, remote, &tail, 1, 10000, &head, &op, &shape).is_ok());
  CHECK(wait_done(*reader, op).status.code() == StatusCode::kPermissionDenied && dst.base[0] == 0x5a);
  bool live = false;
  CHECK(owner->revoke_grant(all, &live).is_ok() && live);
  CHECK(reader->post_read(local, &whole, remote, &whole, 1, 10000, &all, &op, &shape).is_ok());
  CHECK(wait_done(*reader, op).status.code() == StatusCode::kPermissionDenied);
  CHECK(owner->grant({{src.id, 0, size}}, &all).is_ok());

  // A reader that gives up before the owner starts: the owner's progress thread is held up (a
  // free_region waiting on a busy mark holds its lock) while the reader's 1 ms deadline passes
  // and its receives are cancelled. Then the owner sends into receives that no longer exist:
  // the rendezvous requests wait in the reader's unexpected queue, the owner drops the reader
  // at the same budget, and its 8 sends never complete.
  RegionInfo blocker;
  CHECK(owner->alloc_region(4096, &blocker).is_ok());
  const uint64_t busy = acquire_busy_memory(blocker.base, 4096);
  std::thread held([&] { CHECK(owner->free_region(blocker.id).is_ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(reader->post_read(local, &whole, remote, &whole, 1, 1, &all, &op, &shape).is_ok());
  CHECK(wait_done(*reader, op).status.code() == StatusCode::kTimeout);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release_busy_memory(busy);
  held.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The owner closes first, while its sends still wait on the reader.
  CHECK(owner->close().is_ok());
  CHECK(reader->close().is_ok());
  std::printf("transport: 3 served reads, 2 refusals, 1 abandoned read; closed\n");
  return 0;
}
CC
cat > "$work/lsan.supp" <<'SUPP'
leak:libucs.so
leak:libucp.so
leak:libuct.so
SUPP
g++ -std=c++17 -O1 -g -march=x86-64-v3 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -I"$root/native/include" "$work/main.cc" "$root"/native/src/transport/*.cc -lucp -lucs -luct -lpthread -o "$work/transport-sanitize"
# UCX's memory hooks patch malloc/mmap under the sanitizer's own interceptors: off, as in Node.
UCX_MEM_EVENTS=n UCX_MEM_MALLOC_HOOKS=n UCX_MEM_MMAP_HOOK_MODE=none UCX_HANDLE_ERRORS=none \
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$work/lsan.supp,print_suppressions=0" "$work/transport-sanitize"
echo "transport: ASan/UBSan/LSan clean"
