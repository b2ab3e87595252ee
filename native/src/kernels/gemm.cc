#include <cblas.h>

#include <algorithm>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {

// Rows up to which a product runs as sgemv per row. Measured (OpenBLAS 0.3.21, one thread,
// [m, 1024] x [3088, 1024]^T): m=1 sgemm 1.55 ms / sgemv 0.44 ms; m=2 1.45 / 0.73; m=4 1.23 / 1.25;
// m=8 1.57 / 2.94.
constexpr int64_t kGemvRows = 3;

// Rows up to which bf16 weights are multiplied by weight-stationary dots (each weight row read
// once, widened in registers, for all rows): up to a decode batch of 8 the product is bound by
// reading the weights, which bf16 halves; past it the tiles are widened once and sgemm'd.
constexpr int64_t kBf16DotRows = 8;

void linear_slice(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t m, int64_t k,
                  int64_t n_begin, int64_t n_end, bool accumulate, float alpha) {
  // y[:, n_begin:n_end] = alpha · x · w[n_begin:n_end]^T: RowMajor, A = x [m, k], B = w slice viewed
  // transposed ([k, n]); OpenBLAS packs both, so the slice needs no copy.
  const int64_t n = n_end - n_begin;
  if (m <= 0 || n <= 0) return;
  if (m <= kGemvRows) {
    // Decode-sized batches: sgemm would pack (copy) the whole weight slice for a handful of rows,
    // doubling the memory traffic of a memory-bound product; sgemv streams it once per row.
    for (int64_t i = 0; i < m; ++i) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), alpha, w + n_begin * k,
                  static_cast<int>(k), x + i * ldx, 1, accumulate ? 1.0f : 0.0f, y + i * ldy + n_begin, 1);
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              alpha, x, static_cast<int>(ldx), w + n_begin * k, static_cast<int>(k), accumulate ? 1.0f : 0.0f,
              y + n_begin, static_cast<int>(ldy));
}

namespace {

// Dots of MM activation rows with each weight row of [n_begin, n_end), the weight row widened
// 8 bf16 at a time (a bf16 is the high half of an fp32). U independent accumulators per row
// (MM·U ≤ 8 + operands fit the 16 AVX2 registers) keep the FMA pipeline full: with one chain per
// row a decode step (MM = 1) would wait on each FMA's latency.
template <int MM, int U>
void bf16_dots(const float* x, int64_t ldx, const uint16_t* w, float* y, int64_t ldy, int64_t k, int64_t n_begin,
               int64_t n_end, bool accumulate, float alpha) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint16_t* wr = w + n * k;
    float sums[MM];
    int64_t c = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[MM][U];
    for (int r = 0; r < MM; ++r) {
      for (int u = 0; u < U; ++u) acc[r][u] = _mm256_setzero_ps();
    }
    for (; c + 8 * U <= k; c += 8 * U) {
      for (int u = 0; u < U; ++u) {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + c + 8 * u));
        const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
        for (int r = 0; r < MM; ++r) acc[r][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * ldx + c + 8 * u), acc[r][u]);
      }
    }
    for (; c + 8 <= k; c += 8) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + c));
      const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
      for (int r = 0; r < MM; ++r) acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * ldx + c), acc[r][0]);
    }
    for (int r = 0; r < MM; ++r) {
      for (int u = 1; u < U; ++u) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][u]);
      float lanes[8];
      _mm256_storeu_ps(lanes, acc[r][0]);
      sums[r] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    }
#else
    for (int r = 0; r < MM; ++r) sums[r] = 0.0f;
#endif
    for (; c < k; ++c) {
      const float wv = bf16_to_f32(wr[c]);
      for (int r = 0; r < MM; ++r) sums[r] += wv * x[r * ldx + c];
    }
    for (int r = 0; r < MM; ++r) {
      float* out = y + r * ldy + n;
      *out = alpha * sums[r] + (accumulate ? *out : 0.0f);
    }
  }
}

}  // namespace

void linear_slice_bf16(const float* x, int64_t ldx, const uint16_t* w, float* y, int64_t ldy, int64_t m, int64_t k,
                       int64_t n_begin, int64_t n_end, bool accumulate, float alpha) {
  const int64_t n = n_end - n_begin;
  if (m <= 0 || n <= 0) return;
  if (m <= kBf16DotRows) {
    // One pass over the weight slice for all m (<= 8) rows.
    switch (m) {
      case 1: bf16_dots<1, 4>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      case 2: bf16_dots<2, 4>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      case 3: bf16_dots<3, 2>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      case 4: bf16_dots<4, 2>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      case 5: bf16_dots<5, 1>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      case 6: bf16_dots<6, 1>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      case 7: bf16_dots<7, 1>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
      default: bf16_dots<8, 1>(x, ldx, w, y, ldy, k, n_begin, n_end, accumulate, alpha); break;
    }
    return;
  }
  // Widen tiles of ~256 KiB (a multiple of 16 rows) into this thread's buffer, then sgemm them.
  const int64_t tile = std::max<int64_t>(16, (65536 / std::max<int64_t>(k, 1)) / 16 * 16);
  thread_local std::vector<float> widened;
  widened.resize(static_cast<size_t>(std::min(tile, n) * k));
  for (int64_t t0 = n_begin; t0 < n_end; t0 += tile) {
    const int64_t rows = std::min(tile, n_end - t0);
    widen_bf16(w + t0 * k, widened.data(), rows * k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(rows),
                static_cast<int>(k), alpha, x, static_cast<int>(ldx), widened.data(), static_cast<int>(k),
                accumulate ? 1.0f : 0.0f, y + t0, static_cast<int>(ldy));
  }
}

void linear_rows(const float* x, int64_t ldx, WeightView w, float* y, int64_t ldy, int64_t m, int64_t k,
                 int64_t n_begin, int64_t n_end, bool accumulate, float alpha) {
  if (w.bf16) {
    linear_slice_bf16(x, ldx, w.bf16, y, ldy, m, k, n_begin, n_end, accumulate, alpha);
  } else {
    linear_slice(x, ldx, w.f32, y, ldy, m, k, n_begin, n_end, accumulate, alpha);
  }
}

}  // namespace hpd::kernels
