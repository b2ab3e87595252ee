#include <cblas.h>

#include "hpd/kernels.h"

namespace hpd::kernels {

// Rows up to which a product runs as sgemv per row. Measured (OpenBLAS 0.3.21, one thread,
// [m, 1024] x [3088, 1024]^T): m=1 sgemm 1.55 ms / sgemv 0.44 ms; m=2 1.45 / 0.73; m=4 1.23 / 1.25;
// m=8 1.57 / 2.94.
constexpr int64_t kGemvRows = 3;

void linear_slice(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t m, int64_t k,
                  int64_t n_begin, int64_t n_end, bool accumulate) {
  // y[:, n_begin:n_end] = x · w[n_begin:n_end]^T: RowMajor, A = x [m, k], B = w slice viewed
  // transposed ([k, n]); OpenBLAS packs both, so the slice needs no copy.
  const int64_t n = n_end - n_begin;
  if (m <= 0 || n <= 0) return;
  if (m <= kGemvRows) {
    // Decode-sized batches: sgemm would pack (copy) the whole weight slice for a handful of rows,
    // doubling the memory traffic of a memory-bound product; sgemv streams it once per row.
    for (int64_t i = 0; i < m; ++i) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f, w + n_begin * k,
                  static_cast<int>(k), x + i * ldx, 1, accumulate ? 1.0f : 0.0f, y + i * ldy + n_begin, 1);
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, x, static_cast<int>(ldx), w + n_begin * k, static_cast<int>(k), accumulate ? 1.0f : 0.0f,
              y + n_begin, static_cast<int>(ldy));
}

}  // namespace hpd::kernels
