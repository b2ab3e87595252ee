/**
 * Continuous batching on a decode (or colocated) worker: every step feeds one token of every
 * running request through the engine together; requests join between steps and leave as soon as
 * they finish or are cancelled, so a long request never holds a short one back.
 */
import type {FinishReason, SamplingParams} from '../protocol.js'
import type {SampledToken, WorkerEngine} from './engine-port.js'

export interface Sequence {
  readonly requestId: string
  readonly sampling: SamplingParams
  /** The token the first step feeds: the last prompt token (after a transfer) or the first output token. */
  readonly nextInputTokenId: number
  /** Output tokens already produced before joining (1 when the colocated prefill sampled the first). */
  readonly producedTokens: number
  readonly onToken: (token: SampledToken) => void
  readonly onDone: (finish: FinishReason) => void
  readonly onError: (error: Error) => void
}

interface Running {
  seq: Sequence
  input: number
  produced: number
  cancelled: boolean
}

export class ContinuousBatcher {
  private readonly running = new Map<string, Running>()
  private looping = false
  maxBatchSeen = 0
  steps = 0

  constructor(
    private readonly engine: WorkerEngine,
    private readonly maxBatch: number,
  ) {}

  get size(): number {
    return this.running.size
  }

  /** Adds a sequence; its tokens start flowing from the next step. */
  add(seq: Sequence): void {
    this.running.set(seq.requestId, {seq, input: seq.nextInputTokenId, produced: seq.producedTokens, cancelled: false})
    if (!this.looping) void this.loop()
  }

  /** Drops a sequence (client gone): it leaves the batch before the next step and its blocks are freed. */
  cancel(requestId: string): void {
    const r = this.running.get(requestId)
    if (r) r.cancelled = true
  }

  private finish(r: Running, finish: FinishReason | Error): void {
    this.running.delete(r.seq.requestId)
    this.engine.free(r.seq.requestId)
    if (finish instanceof Error) r.seq.onError(finish)
    else r.seq.onDone(finish)
  }

  private async loop(): Promise<void> {
    this.looping = true
    try {
      while (this.running.size > 0) {
        const batch: Running[] = []
        for (const r of this.running.values()) {
          if (r.cancelled) {
            this.finish(r, 'abort')
            continue
          }
          if (batch.length < this.maxBatch) batch.push(r)
        }
        if (batch.length === 0) continue
        this.maxBatchSeen = Math.max(this.maxBatchSeen, batch.length)
        let next: readonly (SampledToken | Error)[]
        try {
          next = await this.engine.decodeStep(batch.map((r) => ({requestId: r.seq.requestId, tokenId: r.input})))
        } catch (error) {
          // The step failed as a whole (nothing says which request caused it): all of it fails.
          for (const r of batch) this.finish(r, error instanceof Error ? error : new Error(String(error)))
          continue
        }
        this.steps++
        batch.forEach((r, i) => {
          if (r.cancelled) return this.finish(r, 'abort')
          const token = next[i]
          // One request's failure (its sampling, its blocks) ends that request only.
          if (token instanceof Error) return this.finish(r, token)
          const end = endOf(token.tokenId, this.engine.eosTokenId, r.seq.sampling)
          // EOS and stop token ids are output tokens (vLLM counts them in completion_tokens); EOS's text is empty.
          r.produced++
          r.input = token.tokenId
          r.seq.onToken(token)
          if (end !== undefined) this.finish(r, 'stop')
          else if (r.produced >= r.seq.sampling.maxTokens) this.finish(r, 'length')
        })
        // Yield so control traffic (health, new requests) is served between steps (the engine's
        // step scheduler waits for this turn before building the next step).
        await new Promise((resolve) => setImmediate(resolve))
      }
    } finally {
      this.looping = false
    }
  }
}

/**
 * How a sampled token ends its sequence, after it is emitted (vLLM: part of the output, counted in
 * completion_tokens): EOS (unless ignore_eos; its text is empty: special tokens are not
 * detokenized) or a stop token id (its text only with include_stop_str_in_output). min_tokens is
 * the sampler's business: it never samples them early.
 */
export function endOf(tokenId: number, eosTokenId: number, s: SamplingParams): 'eos' | 'stop-token' | undefined {
  if (tokenId === eosTokenId && !s.ignoreEos) return 'eos'
  if (s.stopTokenIds?.includes(tokenId)) return 'stop-token'
  return undefined
}
