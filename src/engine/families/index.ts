import {ModelConfigError} from '../../errors.js'
import {CONFIG_LIMITS} from '../../model/limits.js'
import type {ModelFamily, ModelSpec} from '../../model/model-spec.js'
import type {EngineFamily, ModelDims} from '../model-dims.js'
import type {BlockRankWeights, RankDims} from '../rank-weights.js'
import type {WeightArray} from '../../native/kernels-binding.js'
import type {ExpectedTensor} from '../weight-names.js'
import type {Weights} from '../weights.js'
import {unsupported} from './common.js'
import {falconH1} from './falcon-h1.js'
import {graniteH} from './granite-h.js'
import {llama} from './llama.js'
import {nemotronH} from './nemotron-h.js'
import {qwen3Next} from './qwen3-next.js'

/**
 * One file per family the engine runs: its compute keys (dims), its checkpoint tensors in the
 * published naming (tensors), and how a TP rank's shard is cut from them (shard). Where to add a
 * family: a file here, a line in BY_MODEL_FAMILY, its scalar twin in reference/.
 */
export interface FamilyModule {
  readonly family: EngineFamily
  dims(spec: ModelSpec): ModelDims
  tensors(d: ModelDims): ExpectedTensor[]
  shard(d: ModelDims, w: Weights, rd: RankDims): RankShard
}

/** A rank's shard without its dims (tp-shard.ts adds them). */
export interface RankShard {
  readonly embedding: WeightArray
  readonly layers: readonly (readonly BlockRankWeights[])[]
  readonly finalNorm: Float32Array
  readonly lmHead: WeightArray
}

const MODULES: readonly FamilyModule[] = [nemotronH, llama, graniteH, falconH1, qwen3Next]

/** src/model's family → the engine family that runs it (Qwen2 and Mistral are not run: their biases / windows differ). */
const BY_MODEL_FAMILY: ReadonlyMap<ModelFamily, EngineFamily> = new Map<ModelFamily, EngineFamily>([
  ['nemotron-h', 'nemotron-h'],
  ['llama', 'llama'],
  ['granite-4.0-h', 'granite-4.0-h'],
  ['falcon-h1', 'falcon-h1'],
  ['qwen3-next', 'qwen3-next'],
])

export function familyModule(family: EngineFamily): FamilyModule {
  return MODULES.find((m) => m.family === family)!
}

/** The engine's view of a ModelSpec; ModelConfigError for families/layers it cannot run. */
export function dimsFromSpec(spec: ModelSpec): ModelDims {
  const family = BY_MODEL_FAMILY.get(spec.family)
  if (!family) throw unsupported(spec, `the ${spec.family} family`)
  const dims = familyModule(family).dims(spec)
  // Every routed expert is a few tensors the engine lists and loads one by one: bound their number
  // before anything is built from it.
  const moeLayers = dims.layers.filter((l) => l.blocks.some((b) => b.ops.includes('moe'))).length
  if (dims.moe && moeLayers * dims.moe.numExperts > CONFIG_LIMITS.expertsPerModel) {
    throw new ModelConfigError('HPD_MODEL_SIZE_LIMIT', `${moeLayers} MoE layers × ${dims.moe.numExperts} experts exceed hpd's limit of ${CONFIG_LIMITS.expertsPerModel} routed experts per model`, {
      hint: 'Check the expert count in config.json; see "Limits" in the README.',
      details: {experts: dims.moe.numExperts, moeLayers, max: CONFIG_LIMITS.expertsPerModel},
    })
  }
  return dims
}
