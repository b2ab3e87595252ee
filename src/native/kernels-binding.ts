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
 *
 * Weights (`WeightArray`) are fp32 (`Float32Array`) or bf16 (`Uint16Array` of the checkpoint's raw
 * bf16 bit patterns, kept as is: half the memory, widened exactly to fp32 inside the kernel).
 */
export type WeightArray = Float32Array | Uint16Array

/** How a MoE router picks experts (each family's published definition; see moeRoute). */
export const ROUTER_KIND = {
  /** Qwen: softmax over all experts, top-k of the probabilities, renormalised when normTopk. */
  softmaxTopk: 0,
  /** Granite: top-k of the logits, softmax over the k picked. */
  topkSoftmax: 1,
  /** Nemotron-H: sigmoid scores, chosen by score + bias (group-limited), weights the scores (renormalised), × scale. */
  sigmoidBias: 2,
} as const
export type RouterKind = (typeof ROUTER_KIND)[keyof typeof ROUTER_KIND]

export interface GdnScanArgs {
  /** Conv outputs before the l2 norm: q and k [T, keyHeads·keyDim], v [T, valueHeads·valueDim], row stride ldQkv. */
  readonly q: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  readonly ldQkv: number
  /** Raw beta logits and decay inputs [T, valueHeads] (row stride ldBa). */
  readonly b: Float32Array
  readonly a: Float32Array
  readonly ldBa: number
  /** −exp(A_log) and dt_bias, [valueHeads]. */
  readonly aNeg: Float32Array
  readonly dtBias: Float32Array
  /** [valueHeads, valueDim, keyDim]: initial state in, final state out. */
  readonly state: Float32Array
  /** [T, valueHeads·valueDim]. */
  readonly out: Float32Array
  readonly tokens: number
  readonly keyHeads: number
  readonly valueHeads: number
  readonly keyDim: number
  readonly valueDim: number
  /** Chunk length of the WY prefill; 0 = the token-by-token recurrence. */
  readonly chunk: number
}

export interface MoeRouteArgs {
  /** Router logits [tokens, experts] (fp32). */
  readonly logits: Float32Array
  readonly tokens: number
  readonly experts: number
  readonly topK: number
  readonly kind: RouterKind
  readonly normTopk: boolean
  /** Selection-only bias [experts] (sigmoidBias), or null. */
  readonly bias?: Float32Array | null
  /** Group-limited choice (sigmoidBias): experts in nGroup groups, the topkGroup best kept. Default 1, 1. */
  readonly nGroup?: number
  readonly topkGroup?: number
  /** routed_scaling_factor (sigmoidBias). Default 1. */
  readonly scale?: number
  /** Out: [tokens, topK] expert ids (by descending choice score, ties to the lower id) and weights. */
  readonly ids: Int32Array
  readonly weights: Float32Array
}

export interface MoeExpertsArgs {
  /** [tokens, hidden] (row stride ldx). */
  readonly x: Float32Array
  readonly ldx: number
  /** [tokens, topK] from moeRoute. */
  readonly ids: Int32Array
  readonly weights: Float32Array
  readonly tokens: number
  readonly topK: number
  readonly hidden: number
  /** Expert intermediate width (of this TP rank). */
  readonly inter: number
  readonly experts: number
  /** true: down(silu(gate·x)·(up·x)); false: down(relu(up·x)²). */
  readonly gated: boolean
  /**
   * One weight per expert (its tensor as loaded, a view into a stacked one, or its TP slice; never
   * a stacked copy): gate (gated only) and up [inter, hidden], down [hidden, inter].
   */
  readonly gate?: readonly WeightArray[]
  readonly up: readonly WeightArray[]
  readonly down: readonly WeightArray[]
  /** [tokens, hidden] (row stride ldy): y[t] += Σ_s weights[t,s]·expert(x[t]) (or = with accumulate false). */
  readonly y: Float32Array
  readonly ldy: number
  /** Add into y (default true) or overwrite it. */
  readonly accumulate?: boolean
}

export interface KernelsBinding {
  /**
   * y[m, n] (+)= alpha · x[m, k] · w[n, k]^T (torch Linear layout), output features split over threads.
   * fp32 weights: OpenBLAS sgemm/sgemv; bf16 weights: fp32 dots on widened rows (≤ 8 rows) or
   * sgemm on widened tiles. alpha defaults to 1.
   */
  linear(x: Float32Array, ldx: number, w: WeightArray, y: Float32Array, ldy: number, m: number, k: number, n: number, accumulate: boolean, alpha?: number): void
  /** y[rows, dim] = w · x · rsqrt(mean(x²) + eps); x may be y. */
  rmsNorm(x: Float32Array, w: Float32Array, y: Float32Array, rows: number, dim: number, eps: number): void
  /**
   * Gated norm step 1: out = y · silu(z) [rows, dim]; sumsq [rows, dim/groupSize] per contiguous
   * group. normFirst (norm-before-gate variants): out = y and sumsq of y; z is then applied in step 2.
   */
  gatedNormSumsq(y: Float32Array, z: Float32Array, ldz: number, out: Float32Array, sumsq: Float32Array, rows: number, dim: number, groupSize: number, normFirst?: boolean): void
  /** Step 2: out = w · out · rsqrt(sumsq / normCount + eps), then × silu(z) when z is given (norm-before-gate). */
  gatedNormApply(out: Float32Array, sumsq: Float32Array, w: Float32Array, rows: number, dim: number, groupSize: number, normCount: number, eps: number, z?: Float32Array | null, ldz?: number): void
  /** In place per-head RMSNorm of x [T, heads·headDim] (ldx) with weight w [headDim] (Qwen3-Next q_norm / k_norm). */
  headRmsNorm(x: Float32Array, ldx: number, tokens: number, heads: number, headDim: number, w: Float32Array, eps: number): void
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
  embedding(ids: Int32Array, table: WeightArray, vocabBegin: number, vocabEnd: number, dim: number, out: Float32Array): void
  addInplace(y: Float32Array, x: Float32Array, n: number): void
  reluSquared(x: Float32Array, n: number): void
  /** out[t, i] = silu(gu[t, i]) · gu[t, inter + i]; gu [T, 2·inter]. */
  siluMul(gu: Float32Array, out: Float32Array, tokens: number, inter: number): void
  /** NeoX (rotate-half) RoPE in place on x [T, heads·headDim] (ldx) at positions pos0..., on the first rotaryDim (default headDim) dims of each head. */
  ropeNeox(x: Float32Array, ldx: number, pos0: number, tokens: number, heads: number, headDim: number, theta: number, rotaryDim?: number): void
  /** x[t, c] *= scale[c] for c < cols, rows of stride ld (per-column µP multipliers). */
  mulColumns(x: Float32Array, ld: number, rows: number, cols: number, scale: Float32Array): void
  /** dst[t, dstStart + j] = src[t, srcStart + j] for each (srcStart, dstStart, length) triple of `runs`. */
  copyColumns(src: Float32Array, lds: number, dst: Float32Array, ldd: number, rows: number, runs: Int32Array): void
  /** x[t, c] *= f(scale[t]) for c < cols, rows of stride ld (a per-token factor): f = sigmoid when `sigmoid`, else identity. */
  scaleRows(x: Float32Array, ld: number, rows: number, cols: number, scale: Float32Array, sigmoid?: boolean): void
  /** x[i] *= alpha for i < n. */
  scaleInplace(x: Float32Array, n: number, alpha: number): void
  /** x[t, c] *= sigmoid(gate[t·ldg + c]); x [rows, cols] contiguous (gated attention output). */
  sigmoidMul(x: Float32Array, gate: Float32Array, ldg: number, rows: number, cols: number): void
  /** Gated DeltaNet over one sequence (chunked WY prefill, or the recurrence with chunk 0); state in/out. */
  gdnScan(args: GdnScanArgs): void
  /** MoE router: top-k expert ids and weights of every token. */
  moeRoute(args: MoeRouteArgs): void
  /** Routed experts as grouped GEMMs over the tokens each expert received; adds into (or writes) y. */
  moeExperts(args: MoeExpertsArgs): void
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
