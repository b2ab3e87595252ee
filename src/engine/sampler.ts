import {kernels} from '../native/kernels-binding.js'
import {Rng, SeedStream} from './random.js'

/** How to pick the next token (OpenAI-style knobs). temperature 0 = greedy. */
export interface SamplingOptions {
  readonly temperature: number
  /** 0 = no top-k cut. */
  readonly topK?: number
  /** 1 = no nucleus cut. */
  readonly topP?: number
  /** 0 = no min-p cut (vLLM min_p: drop tokens below minP × the most likely one's probability). */
  readonly minP?: number
}

/**
 * Picks tokens from logits with the native sampler; a seeded stream per request makes sampled
 * output reproducible (same seed, same logits → same tokens).
 */
export class Sampler {
  private readonly rng: Rng

  constructor(seed: number) {
    this.rng = new Rng(seed)
  }

  sample(logits: Float32Array, options: SamplingOptions): number {
    const uniform = options.temperature > 0 ? this.rng.next() : 0
    return kernels().sample(logits, options.temperature, options.topK ?? 0, options.topP ?? 1, options.minP ?? 0, uniform)
  }
}

/** Everything that decides one sequence's tokens, as vLLM's SamplingParams define it. */
export interface SequenceSamplingOptions extends SamplingOptions {
  /** Any safe integer (the API's `seed`): the whole of it picks the stream (random.ts SeedStream). */
  readonly seed: number
  /** Which continuation of the request this is (n > 1): continuation j draws seed + j's stream. Default 0. */
  readonly continuation?: number
  /** −2..2: subtracted once from every token already generated (OpenAI presence_penalty). */
  readonly presencePenalty?: number
  /** −2..2: subtracted per occurrence in the generated tokens (OpenAI frequency_penalty). */
  readonly frequencyPenalty?: number
  /** > 0, 1 = off: divides positive / multiplies negative logits of tokens in prompt or output (vLLM, CTRL). */
  readonly repetitionPenalty?: number
  /** token id → bias added to its logit. */
  readonly logitBias?: Readonly<Record<string, number>>
  /** Until this many tokens were generated, EOS (unless ignoreEos) and stopTokenIds cannot be sampled. */
  readonly minTokens?: number
  readonly stopTokenIds?: readonly number[]
  readonly eosTokenId?: number
  readonly ignoreEos?: boolean
  /** Return log-probabilities: of the sampled token plus this many most likely ones; undefined = none. */
  readonly logprobs?: number
}

export interface TokenLogprob {
  readonly tokenId: number
  readonly logprob: number
}

/** A sampled token; logprob and top are present when logprobs were asked for. */
export interface SampledToken {
  readonly tokenId: number
  /**
   * log P(token) from the model's raw logits of this step (log-softmax before penalties, bias and
   * temperature: vLLM's default logprobs mode `raw_logprobs`).
   */
  readonly logprob?: number
  /** The `logprobs` most likely tokens under the same distribution, most likely first. */
  readonly top?: readonly TokenLogprob[]
}

/** One work row shared by all samplers: sampling is synchronous, so one caller uses it at a time. */
let scratch = new Float32Array(0)

/**
 * The sampler of one sequence: keeps what its penalties count (prompt and generated tokens) and
 * applies the logits processors in vLLM V1's order — min_tokens, logit_bias, then the repetition,
 * frequency and presence penalties — before temperature, min-p, top-k and top-p (native sample).
 * The raw logits are never modified: processors work on a copy.
 */
export class SequenceSampler {
  private readonly rng: SeedStream
  private readonly outputCounts = new Map<number, number>()
  /** Tokens of prompt and output: the repetition penalty's set. */
  private readonly seen: Set<number>
  private produced = 0
  private readonly bias: readonly (readonly [number, number])[]
  private readonly minTokenBlocked: readonly number[]

  constructor(
    private readonly o: SequenceSamplingOptions,
    promptTokenIds: readonly number[],
  ) {
    this.rng = new SeedStream(o.seed, o.continuation ?? 0)
    this.seen = new Set(o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1 ? promptTokenIds : [])
    this.bias = Object.entries(o.logitBias ?? {}).map(([id, b]) => [Number(id), b] as const)
    this.minTokenBlocked = [...(o.ignoreEos || o.eosTokenId === undefined || o.eosTokenId < 0 ? [] : [o.eosTokenId]), ...(o.stopTokenIds ?? [])]
  }

  /** Output tokens sampled so far. */
  get outputTokens(): number {
    return this.produced
  }

  next(logits: Float32Array): SampledToken {
    const work = this.process(logits)
    const uniform = this.o.temperature > 0 ? this.rng.next() : 0
    const tokenId = kernels().sample(work, this.o.temperature, this.o.topK ?? 0, this.o.topP ?? 1, this.o.minP ?? 0, uniform)
    const out = this.o.logprobs === undefined ? {tokenId} : {tokenId, ...logprobsOf(logits, tokenId, this.o.logprobs)}
    this.record(tokenId)
    return out
  }

  private record(tokenId: number): void {
    this.produced++
    this.outputCounts.set(tokenId, (this.outputCounts.get(tokenId) ?? 0) + 1)
    if (this.o.repetitionPenalty !== undefined && this.o.repetitionPenalty !== 1) this.seen.add(tokenId)
  }

  /** The logits the sampler draws from: `logits` itself when no processor applies, else a processed copy. */
  private process(logits: Float32Array): Float32Array {
    const o = this.o
    const minTokens = this.produced < (o.minTokens ?? 0) && this.minTokenBlocked.length > 0
    const rep = o.repetitionPenalty ?? 1
    const freq = o.frequencyPenalty ?? 0
    const pres = o.presencePenalty ?? 0
    if (!minTokens && this.bias.length === 0 && rep === 1 && freq === 0 && pres === 0) return logits
    if (scratch.length < logits.length) scratch = new Float32Array(logits.length)
    const work = scratch.subarray(0, logits.length)
    work.set(logits)
    const V = logits.length
    if (minTokens) for (const t of this.minTokenBlocked) if (t >= 0 && t < V) work[t] = Number.NEGATIVE_INFINITY
    for (const [t, b] of this.bias) if (t < V) work[t] += b
    if (rep !== 1) {
      for (const t of this.seen) {
        if (t < V) work[t] = work[t] > 0 ? work[t] / rep : work[t] * rep
      }
    }
    if (freq !== 0 || pres !== 0) {
      for (const [t, count] of this.outputCounts) {
        if (t < V) work[t] -= freq * count + pres
      }
    }
    return work
  }
}

/** The sampled token's log-probability and the `k` most likely, from raw logits. */
export function logprobsOf(logits: Float32Array, tokenId: number, k: number): {logprob: number; top: TokenLogprob[]} {
  const kk = Math.min(k, logits.length)
  const ids = new Int32Array(kk)
  const values = new Float32Array(kk)
  const lse = kernels().logSoftmaxTop(logits, kk, ids, values)
  // Rounded to float32 as the top entries are (the kernel writes them as floats), so a sampled
  // token that is also among the top reports the very same value in both places.
  return {logprob: Math.fround(logits[tokenId] - lse), top: Array.from(ids, (id, i) => ({tokenId: id, logprob: values[i]}))}
}
