import type {ModelSpec} from '../../model/model-spec.js'
import type {ModelDims} from '../model-dims.js'
import type {RankDims} from '../rank-weights.js'
import type {ExpectedTensor} from '../weight-names.js'
import type {Weights} from '../weights.js'
import {attentionDims, attentionTensors, baseDims, ComputeKeys, lmHeadTensors, missingKey, refuseUnsupportedSwitches, requireActivation, rotaryDim, swigluTensors, unsupported} from './common.js'
import type {FamilyModule, RankShard} from './index.js'
import {normWeight, projectionNames, rankShard, shardAttention, shardMlp, swigluNames} from './shard.js'

/** Llama (`LlamaForCausalLM`, model-forward.md §4.2, §5.2): RoPE attention block, then a SwiGLU MLP block. */
function dims(spec: ModelSpec): ModelDims {
  refuseUnsupportedSwitches(spec)
  const keys = new ComputeKeys(spec)
  requireActivation(spec, keys, 'hidden_act', 'silu')
  if (!spec.attention) throw unsupported(spec, 'a Llama config without attention heads')
  const rope = keys.rope(10000)
  return {
    ...baseDims(spec),
    family: 'llama',
    layers: spec.layers.map(() => ({blocks: [{ops: ['attention']}, {ops: ['mlp']}]})),
    attention: attentionDims(spec, {rope: {theta: rope.theta, rotaryDim: rotaryDim(spec.attention.headDim, rope.partialRotaryFactor)}}),
    mlp: {activation: 'swiglu', intermediateSize: keys.int('intermediate_size', 0) || (() => { throw missingKey('intermediate_size') })(), gateScale: 1, outScale: 1},
    normEps: keys.positive('rms_norm_eps', 1e-6),
    tieWordEmbeddings: keys.bool('tie_word_embeddings', false),
  }
}

function tensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const a = d.attention!
  const I = d.mlp!.intermediateSize
  const out: ExpectedTensor[] = [{name: 'model.embed_tokens.weight', shape: [d.vocabSize, D]}]
  d.layers.forEach((_l, i) => {
    const p = `model.layers.${i}.`
    out.push(
      {name: `${p}input_layernorm.weight`, shape: [D]},
      ...attentionTensors(`${p}self_attn.`, a, D),
      {name: `${p}post_attention_layernorm.weight`, shape: [D]},
      ...swigluTensors(`${p}mlp.`, I, D),
    )
  })
  out.push({name: 'model.norm.weight', shape: [D]})
  out.push(...lmHeadTensors(d))
  return out
}

function shard(d: ModelDims, w: Weights, rd: RankDims): RankShard {
  const D = d.hiddenSize
  const layers = d.layers.map((_l, i) => {
    const p = `model.layers.${i}.`
    return [
      {
        norm: normWeight(w, `${p}input_layernorm.weight`, false),
        ops: [shardAttention(d, w, projectionNames(`${p}self_attn.`), rd)],
      },
      {
        norm: normWeight(w, `${p}post_attention_layernorm.weight`, false),
        ops: [shardMlp(D, d.mlp!.intermediateSize, 'swiglu', w, swigluNames(`${p}mlp.`), rd)],
      },
    ]
  })
  return rankShard(d, w, rd, {embedding: 'model.embed_tokens.weight', finalNorm: 'model.norm.weight'}, layers)
}

export const llama: FamilyModule = {family: 'llama', dims, tensors, shard}
