import type {ModelSpec} from '../../model/model-spec.js'
import type {LayerDims, ModelDims} from '../model-dims.js'
import type {RankDims} from '../rank-weights.js'
import type {ExpectedTensor} from '../weight-names.js'
import type {Weights} from '../weights.js'
import {attentionDims, attentionTensors, baseDims, ComputeKeys, lmHeadTensors, mambaDims, missingKey, refuseUnsupportedSwitches, requireActivation, rotaryDim} from './common.js'
import type {FamilyModule, RankShard} from './index.js'
import {normWeight, projectionNames, rankShard, shardAttention, shardMamba, shardMlp, shardMoe} from './shard.js'

/**
 * Granite-4.0-H (`GraniteMoeHybridForCausalLM`, transformers modeling_granitemoehybrid.py):
 * per layer a Mamba2 or attention block (`layer_types`), then an FFN block of the shared SwiGLU
 * MLP plus, when num_local_experts > 0, routed SwiGLU experts (top-k of the router logits,
 * softmax over the k). µP-style scalars: embeddings × embedding_multiplier, every block's output
 * × residual_multiplier, softmax scale attention_multiplier, logits ÷ logits_scaling. Attention
 * is NoPE unless position_embedding_type is "rope". The Mamba gated norm is full width
 * (GraniteMoeHybridRMSNormGated normalises all I channels at once, whatever mamba_n_groups).
 */
function dims(spec: ModelSpec): ModelDims {
  refuseUnsupportedSwitches(spec)
  const keys = new ComputeKeys(spec)
  requireActivation(spec, keys, 'hidden_act', 'silu')
  const residual = keys.num('residual_multiplier', 1)
  const moe = spec.layers.some((l) => l.kinds.includes('moe'))
  const layers = spec.layers.map((l): LayerDims => ({
    blocks: [{ops: [l.kinds[0] === 'mamba2' ? 'mamba' : 'attention']}, {ops: [moe ? 'moe' : 'mlp']}],
  }))
  const rope = keys.string('position_embedding_type') === 'rope' ? keys.rope(10000) : undefined
  const headDim = spec.attention?.headDim ?? 0
  const shared = keys.int('shared_intermediate_size', 1024)
  return {
    ...baseDims(spec),
    family: 'granite-4.0-h',
    layers,
    attention: attentionDims(spec, {
      softmaxScale: keys.num('attention_multiplier', 1),
      rope: rope ? {theta: rope.theta, rotaryDim: rotaryDim(headDim, rope.partialRotaryFactor)} : null,
      outScale: residual,
    }),
    mamba: mambaDims(spec, keys, {chunkKeys: ['mamba_chunk_size'], convBiasKeys: ['mamba_conv_bias'], normMode: 'gate-first', normGroups: 1, outScale: residual}),
    mlp: moe ? undefined : {activation: 'swiglu', intermediateSize: shared, gateScale: 1, outScale: residual},
    moe: moe
      ? {
          numExperts: keys.int('num_local_experts', 8),
          topK: keys.int('num_experts_per_tok', 2),
          expertSize: keys.int('intermediate_size', 0) || (() => { throw missingKey('intermediate_size') })(),
          activation: 'swiglu',
          router: 'topk-softmax',
          normTopk: false,
          nGroup: 1,
          topkGroup: 1,
          routedScale: 1,
          sharedSize: shared,
          sharedGate: false,
          outScale: residual,
        }
      : undefined,
    normEps: keys.positive('rms_norm_eps', 1e-6),
    embeddingScale: keys.num('embedding_multiplier', 1),
    logitsScale: 1 / keys.positive('logits_scaling', 1),
    tieWordEmbeddings: keys.bool('tie_word_embeddings', false),
  }
}

function tensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const out: ExpectedTensor[] = [{name: 'model.embed_tokens.weight', shape: [d.vocabSize, D], ...(d.tieWordEmbeddings ? {init: 'embedding-bytes' as const} : {})}]
  d.layers.forEach((layer, i) => {
    const p = `model.layers.${i}.`
    out.push({name: `${p}input_layernorm.weight`, shape: [D]}, {name: `${p}post_attention_layernorm.weight`, shape: [D]})
    if (layer.blocks[0].ops[0] === 'mamba') {
      const m = d.mamba!
      const gn = m.nGroups * m.stateSize
      const cd = m.inner + 2 * gn
      out.push(
        {name: `${p}mamba.in_proj.weight`, shape: [2 * m.inner + 2 * gn + m.numHeads, D]},
        {name: `${p}mamba.conv1d.weight`, shape: [cd, 1, m.convKernel]},
        ...(m.useConvBias ? [{name: `${p}mamba.conv1d.bias`, shape: [cd]}] : []),
        {name: `${p}mamba.dt_bias`, shape: [m.numHeads]},
        {name: `${p}mamba.A_log`, shape: [m.numHeads]},
        {name: `${p}mamba.D`, shape: [m.numHeads]},
        {name: `${p}mamba.norm.weight`, shape: [m.inner]},
        {name: `${p}mamba.out_proj.weight`, shape: [D, m.inner]},
      )
    } else {
      const a = d.attention!
      out.push(
        ...attentionTensors(`${p}self_attn.`, a, D),
      )
    }
    const S = d.moe ? d.moe.sharedSize : d.mlp!.intermediateSize
    out.push({name: `${p}shared_mlp.input_linear.weight`, shape: [2 * S, D]}, {name: `${p}shared_mlp.output_linear.weight`, shape: [D, S]})
    if (d.moe) {
      const {numExperts: E, expertSize: I} = d.moe
      out.push(
        {name: `${p}block_sparse_moe.router.layer.weight`, shape: [E, D]},
        {name: `${p}block_sparse_moe.input_linear.weight`, shape: [E, 2 * I, D]},
        {name: `${p}block_sparse_moe.output_linear.weight`, shape: [E, D, I]},
      )
    }
  })
  out.push({name: 'model.norm.weight', shape: [D]})
  out.push(...lmHeadTensors(d))
  return out
}

function shard(d: ModelDims, w: Weights, rd: RankDims): RankShard {
  const D = d.hiddenSize
  const layers = d.layers.map((layer, i) => {
    const p = `model.layers.${i}.`
    const mixer =
      layer.blocks[0].ops[0] === 'mamba'
        ? shardMamba(d, w, `${p}mamba.`, rd)
        : shardAttention(d, w, projectionNames(`${p}self_attn.`), rd)
    const sharedNames = {gateUp: `${p}shared_mlp.input_linear.weight`, down: `${p}shared_mlp.output_linear.weight`}
    const ffn = d.moe
      ? shardMoe(d, w, {
          router: `${p}block_sparse_moe.router.layer.weight`,
          experts: {stackedGateUp: `${p}block_sparse_moe.input_linear.weight`, stackedDown: `${p}block_sparse_moe.output_linear.weight`},
          shared: sharedNames,
        }, rd)
      : shardMlp(D, d.mlp!.intermediateSize, 'swiglu', w, sharedNames, rd)
    return [
      {norm: normWeight(w, `${p}input_layernorm.weight`, false), ops: [mixer]},
      {norm: normWeight(w, `${p}post_attention_layernorm.weight`, false), ops: [ffn]},
    ]
  })
  return rankShard(d, w, rd, {embedding: 'model.embed_tokens.weight', finalNorm: 'model.norm.weight'}, layers)
}

export const graniteH: FamilyModule = {family: 'granite-4.0-h', dims, tensors, shard}
