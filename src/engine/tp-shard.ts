import {familyModule} from './families/index.js'
import type {ModelDims} from './model-dims.js'
import {checkEngineTp, rankDims, type RankWeights} from './rank-weights.js'
import type {Weights} from './weights.js'

/**
 * One TP rank's weights (rank-weights.ts says what a shard holds; families/shard.ts how each
 * op's tensors are cut; families/<family>.ts which checkpoint tensors feed them). Each rank owns
 * its slices (as if on its own device); at TP 1 whole tensors are shared, not copied.
 */
export function shardWeights(d: ModelDims, w: Weights, tp: number, rank: number): RankWeights {
  checkEngineTp(d, tp)
  const dims = rankDims(d, tp, rank)
  return {dims, ...familyModule(d.family).shard(d, w, dims)}
}

export type {RankDims, RankWeights} from './rank-weights.js'
