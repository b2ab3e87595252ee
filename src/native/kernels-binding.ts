import {loadNativeAddon} from './load-addon.js'

/**
 * The typed surface of the native CPU kernels (native/src/napi/kernels.cc over
 * native/include/hpd/kernels.h). A kernel call runs at once on the calling (main) thread and fans
 * out over the addon's persistent kernel pool (both cores) before returning — unless a recording
 * is open (`record()`): then it is only checked and recorded, and `submit()` runs every recorded
 * call in order on a libuv thread, leaving the JS thread free (see `runRecorded`).
 *
 * Conventions: all tensors are fp32 `Float32Array` views, row-major, shapes in the comments as
 * [outer, ..., inner]. `ld*` arguments are row strides in elements, so a kernel can read a column
 * slice of a fused projection (pass `buf.subarray(columnOffset)` and the full row length as `ld`).
 * Views are borrowed for the duration of the call only; nothing is retained. Bad sizes throw an
 * Error with code `HPD_NATIVE_INVALID_ARGUMENT` naming the argument (before any memory is touched).
 */
export interface KernelsBinding {
  /** y[m, n] (+)= x[m, k] · w[n, k]^T (torch Linear layout). OpenBLAS sgemm, output features split over threads. */
  linear(x: Float32Array, ldx: number, w: Float32Array, y: Float32Array, ldy: number, m: number, k: number, n: number, accumulate: boolean): void
  /** y[rows, dim] = w · x · rsqrt(mean(x²) + eps); x may be y. */
  rmsNorm(x: Float32Array, w: Float32Array, y: Float32Array, rows: number, dim: number, eps: number): void
  /** Mamba2 gated norm step 1: out = y · silu(z) [rows, dim]; sumsq [rows, dim/groupSize] per contiguous group. */
  gatedNormSumsq(y: Float32Array, z: Float32Array, ldz: number, out: Float32Array, sumsq: Float32Array, rows: number, dim: number, groupSize: number): void
  /** Step 2: out = w · out · rsqrt(sumsq / normCount + eps). */
  gatedNormApply(out: Float32Array, sumsq: Float32Array, w: Float32Array, rows: number, dim: number, groupSize: number, normCount: number, eps: number): void
  /**
   * Causal depthwise conv + silu over `tokens` rows of xbc [T, channels] (stride ldx), weights
   * [channels, kernel], bias [channels] or null. state [channels, kernel-1] (DS) is the history in
   * and the last kernel-1 raw inputs out; out [T, channels]. tokens = 1 is the decode step.
   */
  conv1d(xbc: Float32Array, ldx: number, w: Float32Array, bias: Float32Array | null, state: Float32Array, out: Float32Array, tokens: number, channels: number, kernel: number): void
  /**
   * Mamba2 SSM over one sequence: x [T, H·P] (ldx), B and C [T, G·N] (ldbc), dtRaw [T, H] (lddt,
   * before dt_bias + softplus), dtBias/a(= -exp(A_log))/d [H], state [H, P, N] in/out, y [T, H·P].
   * chunk > 0: chunked SSD with that chunk length; chunk = 0: the sequential recurrence.
   */
  ssmScan(x: Float32Array, ldx: number, b: Float32Array, c: Float32Array, ldbc: number, dtRaw: Float32Array, lddt: number, dtBias: Float32Array, a: Float32Array, d: Float32Array, state: Float32Array, y: Float32Array, tokens: number, heads: number, headDim: number, groups: number, stateSize: number, chunk: number): void
  /**
   * Writes k, v [T, kvHeads·headDim] (strides ldk, ldv) for positions pos0.. into a paged cache:
   * K of (kernel block b, head h, slot s) at b·blockStride + kOffset + h·headStride + s·headDim
   * (V with vOffset); blockTable [kernel blocks] of the sequence. All offsets in elements.
   */
  kvCacheWrite(cache: Float32Array, blockTable: Int32Array, blockSize: number, blockStride: number, kOffset: number, vOffset: number, headStride: number, k: Float32Array, ldk: number, v: Float32Array, ldv: number, pos0: number, tokens: number, kvHeads: number, headDim: number): void
  /** Causal GQA attention of q [T, qHeads·headDim] (ldq) at positions pos0.. over the paged cache; o [T, qHeads·headDim]. */
  pagedAttention(cache: Float32Array, blockTable: Int32Array, blockSize: number, blockStride: number, kOffset: number, vOffset: number, headStride: number, q: Float32Array, ldq: number, o: Float32Array, pos0: number, tokens: number, qHeads: number, kvHeads: number, headDim: number, scale: number): void
  /** out[t] = table[ids[t] - vocabBegin] inside [vocabBegin, vocabEnd), else zeros (vocab-parallel shard). */
  embedding(ids: Int32Array, table: Float32Array, vocabBegin: number, vocabEnd: number, dim: number, out: Float32Array): void
  addInplace(y: Float32Array, x: Float32Array, n: number): void
  reluSquared(x: Float32Array, n: number): void
  /** out[t, i] = silu(gu[t, i]) · gu[t, inter + i]; gu [T, 2·inter]. */
  siluMul(gu: Float32Array, out: Float32Array, tokens: number, inter: number): void
  /** NeoX (rotate-half) RoPE in place on x [T, heads·headDim] (ldx) at positions pos0... */
  ropeNeox(x: Float32Array, ldx: number, pos0: number, tokens: number, heads: number, headDim: number, theta: number): void
  /**
   * Token id from logits [vocab]: temperature <= 0 is greedy; else softmax(logits / T), min-p (drop
   * p < minP · p_max), top-k, then top-p, then the CDF at `uniform` ∈ [0, 1). Never recorded.
   */
  sample(logits: Float32Array, temperature: number, topK: number, topP: number, minP: number, uniform: number): number
  /** Returns log Σ exp(logits); writes the k most likely ids (ties: lower id) and their log-probabilities. Never recorded. */
  logSoftmaxTop(logits: Float32Array, k: number, topIds: Int32Array, topLogprobs: Float32Array): number
  /** dst[0..n) = src[0..n) (no overlap). */
  copy(dst: Float32Array, src: Float32Array, n: number): void
  /** Opens a recording: later kernel calls are checked and recorded, not run. Throws while one is open or running. */
  record(): void
  /** Runs the recording's calls in order on a libuv thread; the typed arrays they name must not be touched until it resolves. */
  submit(): Promise<void>
  /** Drops an open recording (nothing recorded runs). */
  discard(): void
  /** Seconds for `iterations` OpenBLAS sgemm calls x[m,k]·w[n,k]^T with OpenBLAS's own `threads` (the benchmark reference). */
  sgemmReference(m: number, n: number, k: number, iterations: number, threads: number): number
  /** Threads of the kernel pool. */
  poolThreads(): number
}

let cached: KernelsBinding | undefined

/** The kernels surface of the addon (loaded on first use; EnvironmentError when the addon is missing). */
export function kernels(): KernelsBinding {
  cached ??= loadNativeAddon().kernels as KernelsBinding
  return cached
}

/**
 * Runs `forward` (synchronous code that calls kernels) with its kernel calls recorded, then executes
 * them off the main thread; resolves with `forward`'s return value once they have run (typed arrays
 * it returns are filled by then). One recorded program runs at a time per process: the caller
 * serialises (the engine's step scheduler does).
 */
export async function runRecorded<T>(forward: () => T): Promise<T> {
  const k = kernels()
  k.record()
  let result: T
  try {
    result = forward()
  } catch (error) {
    k.discard()
    throw error
  }
  await k.submit()
  return result
}
