import type {ModelSpec} from '../../model/model-spec.js'
import type {MambaDims, ModelDims} from '../model-dims.js'
import type {RankDims} from '../rank-weights.js'
import type {ExpectedTensor} from '../weight-names.js'
import type {Weights} from '../weights.js'
import {attentionDims, attentionTensors, baseDims, ComputeKeys, lmHeadTensors, mambaDims, missingKey, refuseUnsupportedSwitches, requireActivation, rotaryDim, swigluTensors} from './common.js'
import type {FamilyModule, RankShard} from './index.js'
import {normWeight, projectionNames, rankShard, shardAttention, shardMamba, shardMlp, swigluNames} from './shard.js'

/**
 * Falcon-H1 (`FalconH1ForCausalLM`, transformers modeling_falcon_h1.py): every layer runs Mamba2
 * and RoPE attention in parallel on the same input_layernorm output and adds both to the
 * residual, then a SwiGLU MLP block (pre_ff_layernorm). µP multipliers, all applied to
 * activations (never folded into bf16 weights, which would round them again):
 * embeddings × embedding_multiplier; Mamba input × ssm_in_multiplier and in_proj output segments
 * [z | x | B | C | dt] × ssm_multipliers, output × ssm_out_multiplier; attention input ×
 * attention_in_multiplier, keys × key_multiplier, output × attention_out_multiplier; MLP
 * gate × mlp_multipliers[0], output × mlp_multipliers[1]; logits × lm_head_multiplier. The Mamba
 * gated norm is optional (mamba_rms_norm), grouped by mamba_n_groups, before or after the gate
 * (mamba_norm_before_gate). Falcon-H1-0.5B has mamba_n_groups = 1: under TP the B/C group is
 * replicated, the case vLLM's heterogeneous-TP transfer corrupts (#55208) and hpd reads whole.
 */
function dims(spec: ModelSpec): ModelDims {
  refuseUnsupportedSwitches(spec)
  const keys = new ComputeKeys(spec)
  requireActivation(spec, keys, 'hidden_act', 'silu')
  const rope = keys.rope(10000)
  const ssmIn = keys.num('ssm_in_multiplier', 1)
  const ssm = keys.numbers('ssm_multipliers', 5, [1, 1, 1, 1, 1]).map((v) => v * ssmIn) as [number, number, number, number, number]
  const [gateScale, downScale] = keys.numbers('mlp_multipliers', 2, [1, 1])
  const rmsNorm = keys.bool('mamba_rms_norm', false)
  const normMode: MambaDims['normMode'] = !rmsNorm ? 'none' : keys.bool('mamba_norm_before_gate', true) ? 'norm-first' : 'gate-first'
  const nGroups = spec.stateMixer?.kind === 'mamba2' ? spec.stateMixer.nGroups : 1
  return {
    ...baseDims(spec),
    family: 'falcon-h1',
    layers: spec.layers.map(() => ({blocks: [{ops: ['mamba', 'attention']}, {ops: ['mlp']}]})),
    attention: attentionDims(spec, {
      rope: {theta: rope.theta, rotaryDim: rotaryDim(spec.attention!.headDim, rope.partialRotaryFactor)},
      inputScale: keys.num('attention_in_multiplier', 1),
      keyScale: keys.num('key_multiplier', 1),
      outScale: keys.num('attention_out_multiplier', 1),
    }),
    mamba: mambaDims(spec, keys, {
      chunkKeys: ['mamba_chunk_size'],
      convBiasKeys: ['mamba_conv_bias'],
      normMode,
      normGroups: nGroups,
      projMultipliers: ssm.every((v) => v === 1) ? null : ssm,
      outScale: keys.num('ssm_out_multiplier', 1),
    }),
    mlp: {activation: 'swiglu', intermediateSize: keys.int('intermediate_size', 0) || (() => { throw missingKey('intermediate_size') })(), gateScale, outScale: downScale},
    normEps: keys.positive('rms_norm_eps', 1e-5),
    embeddingScale: keys.num('embedding_multiplier', 1),
    logitsScale: keys.num('lm_head_multiplier', 1),
    tieWordEmbeddings: keys.bool('tie_word_embeddings', false),
  }
}

function tensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const a = d.attention!
  const m = d.mamba!
  const I = d.mlp!.intermediateSize
  const gn = m.nGroups * m.stateSize
  const cd = m.inner + 2 * gn
  const out: ExpectedTensor[] = [{name: 'model.embed_tokens.weight', shape: [d.vocabSize, D], ...(d.tieWordEmbeddings ? {init: 'embedding-bytes' as const} : {})}]
  d.layers.forEach((_l, i) => {
    const p = `model.layers.${i}.`
    out.push(
      {name: `${p}input_layernorm.weight`, shape: [D]},
      // in_proj rows [z | x | B | C | dt] (no extra MLP rows: HF's d_mlp is 0 for the published checkpoints)
      {name: `${p}mamba.in_proj.weight`, shape: [2 * m.inner + 2 * gn + m.numHeads, D]},
      {name: `${p}mamba.conv1d.weight`, shape: [cd, 1, m.convKernel]},
      ...(m.useConvBias ? [{name: `${p}mamba.conv1d.bias`, shape: [cd]}] : []),
      {name: `${p}mamba.dt_bias`, shape: [m.numHeads]},
      {name: `${p}mamba.A_log`, shape: [m.numHeads]},
      {name: `${p}mamba.D`, shape: [m.numHeads]},
      ...(m.normMode !== 'none' ? [{name: `${p}mamba.norm.weight`, shape: [m.inner]}] : []),
      {name: `${p}mamba.out_proj.weight`, shape: [D, m.inner]},
      ...attentionTensors(`${p}self_attn.`, a, D),
      {name: `${p}pre_ff_layernorm.weight`, shape: [D]},
      ...swigluTensors(`${p}feed_forward.`, I, D),
    )
  })
  out.push({name: 'model.final_layernorm.weight', shape: [D]})
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
        ops: [
          shardMamba(d, w, `${p}mamba.`, rd),
          shardAttention(d, w, projectionNames(`${p}self_attn.`), rd),
        ],
      },
      {
        norm: normWeight(w, `${p}pre_ff_layernorm.weight`, false),
        ops: [shardMlp(D, d.mlp!.intermediateSize, 'swiglu', w, swigluNames(`${p}feed_forward.`), rd, d.mlp!.gateScale)],
      },
    ]
  })
  return rankShard(d, w, rd, {embedding: 'model.embed_tokens.weight', finalNorm: 'model.final_layernorm.weight'}, layers)
}

export const falconH1: FamilyModule = {family: 'falcon-h1', dims, tensors, shard}
