#!/usr/bin/env bash
# Kernels under AddressSanitizer + UBSan: builds the engine's C++ kernels (native/src/kernels,
# without N-API) with a small driver that runs every kernel on exact-size buffers (chunked scan
# with chunks shorter and longer than the sequence, paged attention on the row and tile paths,
# sgemv and sgemm products, sampling, norms) and fails on any sanitizer report.
# Usage: scripts/bench-engine-sanitize.sh      (needs g++ with libasan/libubsan, libopenblas-dev)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/main.cc" <<'CC'
#include <cstdio>
#include <random>
#include <vector>
#include <cblas.h>
#include "hpd/kernels.h"
#include "hpd/thread_pool.h"
using namespace hpd::kernels;
int main() {
  openblas_set_num_threads(1);
  std::mt19937 rng(1); std::normal_distribution<float> nd;
  auto randv = [&](size_t n) { std::vector<float> v(n); for (auto& x : v) x = nd(rng); return v; };
  // ssm chunked vs sequential, exact-size buffers
  const int64_t T = 77, H = 4, P = 8, G = 2, N = 16, CD = H * P + 2 * G * N;
  auto xbc = randv(T * CD); auto dtr = randv(T * H); auto dtb = randv(H); auto a = randv(H); for (auto& v : a) v = -std::abs(v); auto d = randv(H);
  for (int64_t chunk : {0, 16, 64, 128}) {
    std::vector<float> st(H * P * N, 0.1f), y(T * H * P);
    SsmArgs s{xbc.data(), CD, xbc.data() + H * P, xbc.data() + H * P + G * N, CD, dtr.data(), H, dtb.data(), a.data(), d.data(), st.data(), y.data(), T, H, P, G, N};
    parallel_for([&](int i, int n) { if (chunk) ssm_scan_chunked(s, chunk, i, n); else ssm_scan_sequential(s, i, n); });
    printf("ssm chunk %ld y0 %f\n", (long)chunk, y[0]);
  }
  // conv
  { const int64_t cd = 13, K = 4; auto x = randv(T * cd); auto w = randv(cd * K); auto b = randv(cd); std::vector<float> st(cd * (K - 1)), out(T * cd);
    parallel_for([&](int i, int n) { conv1d_prefill(x.data(), cd, w.data(), b.data(), st.data(), out.data(), T, cd, K, i, n); }); printf("conv %f\n", out[5]); }
  // attention, tiles and rows
  for (int64_t tokens : {3L, 40L, 200L}) {
    const int64_t Hq = 4, Hkv = 2, hd = 8, bs = 16, pos0 = 9, ctx = pos0 + tokens, nb = (ctx + bs - 1) / bs;
    std::vector<int32_t> table(nb); for (int64_t i = 0; i < nb; ++i) table[i] = static_cast<int32_t>(nb - 1 - i);
    std::vector<float> cache(nb * 2 * Hkv * bs * hd);
    PagedKv kv{cache.data(), table.data(), nb, bs, 2 * Hkv * bs * hd, 0, Hkv * bs * hd, bs * hd};
    auto k = randv(ctx * Hkv * hd); auto v = randv(ctx * Hkv * hd); auto q = randv(tokens * Hq * hd); std::vector<float> o(tokens * Hq * hd);
    parallel_for([&](int i, int n) { kv_cache_write(kv, k.data(), Hkv * hd, v.data(), Hkv * hd, 0, ctx, Hkv, hd, i, n); });
    parallel_for([&](int i, int n) { paged_attention(kv, q.data(), Hq * hd, o.data(), pos0, tokens, Hq, Hkv, hd, 0.35f, i, n); });
    printf("attn %ld %f\n", (long)tokens, o[0]);
  }
  { auto x = randv(3 * 40); auto w = randv(50 * 33); std::vector<float> y(3 * 64);
    for (int m : {1, 3}) parallel_for([&](int i, int n) { int64_t b, e; thread_slice(50, i, n, &b, &e); linear_slice(x.data(), 40, w.data(), y.data(), 64, m, 33, b, e, false); }); printf("lin %f\n", y[0]); }
  { auto l = randv(384); printf("sample %d %d\n", sample(l.data(), 384, 0, 0, 1, 0), sample(l.data(), 384, 0.8f, 40, 0.9f, 0.3)); }
  { auto g = randv(5 * 2 * 24); std::vector<float> out(5 * 24); silu_mul(g.data(), out.data(), 5, 24, 0, 1);
    auto z = randv(5 * 30); auto yy = randv(5 * 24); std::vector<float> go(5 * 24), ss(5 * 3); auto w = randv(24);
    gated_norm_sumsq(yy.data(), z.data(), 30, go.data(), ss.data(), 5, 24, 8, 0, 1); gated_norm_apply(go.data(), ss.data(), w.data(), 5, 24, 8, 8, 1e-5f, 0, 1);
    std::vector<float> r(5 * 24); rms_norm(yy.data(), w.data(), r.data(), 5, 24, 1e-5f, 0, 1); printf("misc %f %f\n", out[0], go[3]); }
  return 0;
}
CC
kernels=$(ls "$root"/native/src/kernels/*.cc | grep -v digest)
g++ -std=c++17 -O1 -g -march=x86-64-v3 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -I"$root/native/include" "$work/main.cc" $kernels -lopenblas -lpthread -o "$work/kernels-sanitize"
ASAN_OPTIONS=detect_leaks=1 "$work/kernels-sanitize"
echo "kernels: ASan/UBSan clean"
