import type {ModelSpec} from '../model/model-spec.js'
import {falconH1Reference} from './reference/falcon-h1.js'
import {graniteHReference} from './reference/granite-h.js'
import {llamaReference} from './reference/llama.js'
import {nemotronHReference} from './reference/nemotron-h.js'
import {qwen3NextReference} from './reference/qwen3-next.js'
import type {Weights} from './weights.js'

/**
 * The scalar reference forward the tests hold the engine to: float64 loops over the unsharded
 * checkpoint, one token at a time, written from each family's published definition
 * (reference/<family>.ts; each reads its own config keys), with no paging, TP, chunking or the
 * engine's kernels. Returns the logits of every position ([T][vocab]).
 */
export function referenceForward(spec: ModelSpec, w: Weights, tokens: readonly number[]): Float64Array[] {
  switch (spec.family) {
    case 'nemotron-h':
      return nemotronHReference(spec, w, tokens)
    case 'granite-4.0-h':
      return graniteHReference(spec, w, tokens)
    case 'falcon-h1':
      return falconH1Reference(spec, w, tokens)
    case 'qwen3-next':
      return qwen3NextReference(spec, w, tokens)
    case 'llama':
      return llamaReference(spec, w, tokens)
    default:
      throw new Error(`no reference forward for the ${spec.family} family`)
  }
}
