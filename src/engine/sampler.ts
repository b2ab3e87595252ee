import {kernels} from '../native/kernels-binding.js'
import {Rng} from './random.js'

/** How to pick the next token (OpenAI-style knobs). temperature 0 = greedy. */
export interface SamplingOptions {
  readonly temperature: number
  /** 0 = no top-k cut. */
  readonly topK?: number
  /** 1 = no nucleus cut. */
  readonly topP?: number
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
    return kernels().sample(logits, options.temperature, options.topK ?? 0, options.topP ?? 1, uniform)
  }
}
