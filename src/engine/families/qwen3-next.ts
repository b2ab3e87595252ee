import type {ModelSpec} from '../../model/model-spec.js'
import type {LayerDims, ModelDims} from '../model-dims.js'
import type {RankDims} from '../rank-weights.js'
import type {ExpectedTensor} from '../weight-names.js'
import type {Weights} from '../weights.js'
import {attentionDims, baseDims, ComputeKeys, lmHeadTensors, missingKey, refuseUnsupportedSwitches, requireActivation, rotaryDim, swigluTensors, unsupported} from './common.js'
import type {FamilyModule, RankShard} from './index.js'
import {normWeight, projectionNames, rankShard, shardAttention, shardGdn, shardMlp, shardMoe, swigluNames} from './shard.js'

/**
 * Qwen3-Next (`Qwen3NextForCausalLM`) and Qwen3.5 (`Qwen3_5ForConditionalGeneration`,
 * `Qwen3_5MoeForConditionalGeneration`; transformers modeling_qwen3_next.py / modular_qwen3_5.py):
 * per layer a Gated DeltaNet ("linear_attention") or gated full-attention block, then a SwiGLU MLP
 * or a sparse MoE block (softmax router over all experts, top-k, renormalised when
 * norm_topk_prob; plus a shared expert times sigmoid(shared_expert_gate)). Every RMSNorm of the
 * residual stream and q_norm / k_norm are zero-centred (scale 1 + w); the GDN output norm is a
 * plain weight, normalise-then-gate per value head. Attention: q_proj emits [q | gate] per head,
 * q/k per-head RMSNorm, partial RoPE (partial_rotary_factor of head_dim), output · sigmoid(gate).
 * Qwen3.5 differs in naming only (for text): `model.language_model.` and split GDN projections;
 * its multimodal RoPE (mrope) equals 1-D RoPE for text, whose three position ids are equal.
 */
const QWEN35 = new Set(['Qwen3_5ForConditionalGeneration', 'Qwen3_5MoeForConditionalGeneration'])

function dims(spec: ModelSpec): ModelDims {
  refuseUnsupportedSwitches(spec)
  const keys = new ComputeKeys(spec)
  requireActivation(spec, keys, 'hidden_act', 'silu')
  const m = spec.stateMixer
  if (m && m.kind !== 'gdn') throw unsupported(spec, `a ${m.kind} state mixer`)
  const layers = spec.layers.map((l): LayerDims => ({
    blocks: [{ops: [l.kinds[0] === 'gdn' ? 'gdn' : 'attention']}, {ops: [l.kinds.includes('moe') ? 'moe' : 'mlp']}],
  }))
  const anyMoe = spec.layers.some((l) => l.kinds.includes('moe'))
  const anyMlp = spec.layers.some((l) => l.kinds.includes('mlp'))
  const rope = keys.rope(10000)
  // Qwen3NextConfig's partial_rotary_factor default is 0.25 (inside rope_parameters in newer configs).
  const rp = spec.config.rope_parameters as Record<string, unknown> | undefined
  const partial = spec.config.partial_rotary_factor ?? (rp && typeof rp === 'object' ? rp.partial_rotary_factor : undefined) ?? 0.25
  const headDim = spec.attention?.headDim ?? 0
  return {
    ...baseDims(spec),
    family: 'qwen3-next',
    tensorNaming: QWEN35.has(spec.architecture) ? 'qwen3.5' : 'default',
    layers,
    attention: attentionDims(spec, {rope: {theta: rope.theta, rotaryDim: rotaryDim(headDim, typeof partial === 'number' ? partial : rope.partialRotaryFactor)}, qkNorm: true, outputGate: true}),
    gdn: m && m.kind === 'gdn'
      ? {numKeyHeads: m.numKeyHeads, numValueHeads: m.numValueHeads, keyHeadDim: m.keyHeadDim, valueHeadDim: m.valueHeadDim, convKernel: m.convKernel, chunkSize: 64, outScale: 1}
      : undefined,
    mlp: anyMlp ? {activation: 'swiglu', intermediateSize: keys.int('intermediate_size', 0) || (() => { throw missingKey('intermediate_size') })(), gateScale: 1, outScale: 1} : undefined,
    moe: anyMoe
      ? {
          numExperts: keys.int('num_experts', 0) || (() => { throw missingKey('num_experts') })(),
          topK: keys.int('num_experts_per_tok', 0) || (() => { throw missingKey('num_experts_per_tok') })(),
          expertSize: keys.int('moe_intermediate_size', 0) || (() => { throw missingKey('moe_intermediate_size') })(),
          activation: 'swiglu',
          router: 'softmax-topk',
          normTopk: keys.bool('norm_topk_prob', true),
          nGroup: 1,
          topkGroup: 1,
          routedScale: 1,
          sharedSize: keys.int('shared_expert_intermediate_size', 0, 0),
          sharedGate: true,
          outScale: 1,
        }
      : undefined,
    normEps: keys.positive('rms_norm_eps', 1e-6),
    zeroCenteredNorms: true,
    tieWordEmbeddings: keys.bool('tie_word_embeddings', false),
  }
}

/** `model.` (Qwen3-Next) or `model.language_model.` (Qwen3.5's multimodal checkpoints). */
function prefix(d: ModelDims): string {
  return d.tensorNaming === 'qwen3.5' ? 'model.language_model.' : 'model.'
}

function tensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const P = prefix(d)
  const out: ExpectedTensor[] = [{name: `${P}embed_tokens.weight`, shape: [d.vocabSize, D], ...(d.tieWordEmbeddings ? {init: 'embedding-bytes' as const} : {})}]
  d.layers.forEach((layer, i) => {
    const p = `${P}layers.${i}.`
    out.push({name: `${p}input_layernorm.weight`, shape: [D], init: 'norm-zero'}, {name: `${p}post_attention_layernorm.weight`, shape: [D], init: 'norm-zero'})
    if (layer.blocks[0].ops[0] === 'gdn') {
      const g = d.gdn!
      const keyDim = g.numKeyHeads * g.keyHeadDim
      const valueDim = g.numValueHeads * g.valueHeadDim
      const l = `${p}linear_attn.`
      if (d.tensorNaming === 'qwen3.5') {
        out.push(
          {name: `${l}in_proj_qkv.weight`, shape: [2 * keyDim + valueDim, D]},
          {name: `${l}in_proj_z.weight`, shape: [valueDim, D]},
          {name: `${l}in_proj_b.weight`, shape: [g.numValueHeads, D]},
          {name: `${l}in_proj_a.weight`, shape: [g.numValueHeads, D]},
        )
      } else {
        out.push({name: `${l}in_proj_qkvz.weight`, shape: [2 * keyDim + 2 * valueDim, D]}, {name: `${l}in_proj_ba.weight`, shape: [2 * g.numValueHeads, D]})
      }
      out.push(
        {name: `${l}conv1d.weight`, shape: [2 * keyDim + valueDim, 1, g.convKernel]},
        {name: `${l}dt_bias`, shape: [g.numValueHeads]},
        {name: `${l}A_log`, shape: [g.numValueHeads]},
        {name: `${l}norm.weight`, shape: [g.valueHeadDim]},
        {name: `${l}out_proj.weight`, shape: [D, valueDim]},
      )
    } else {
      const a = d.attention!
      const s = `${p}self_attn.`
      out.push(
        {name: `${s}q_proj.weight`, shape: [2 * a.numHeads * a.headDim, D]},
        {name: `${s}k_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
        {name: `${s}v_proj.weight`, shape: [a.numKvHeads * a.headDim, D]},
        {name: `${s}o_proj.weight`, shape: [D, a.numHeads * a.headDim]},
        {name: `${s}q_norm.weight`, shape: [a.headDim], init: 'norm-zero'},
        {name: `${s}k_norm.weight`, shape: [a.headDim], init: 'norm-zero'},
      )
    }
    const f = `${p}mlp.`
    if (layer.blocks[1].ops[0] === 'moe') {
      const moe = d.moe!
      out.push({name: `${f}gate.weight`, shape: [moe.numExperts, D]})
      for (let j = 0; j < moe.numExperts; j++) out.push(...swigluTensors(`${f}experts.${j}.`, moe.expertSize, D))
      if (moe.sharedSize > 0) out.push(...swigluTensors(`${f}shared_expert.`, moe.sharedSize, D), {name: `${f}shared_expert_gate.weight`, shape: [1, D]})
    } else {
      out.push(...swigluTensors(f, d.mlp!.intermediateSize, D))
    }
  })
  out.push({name: `${P}norm.weight`, shape: [D], init: 'norm-zero'})
  out.push(...lmHeadTensors(d))
  return out
}

function shard(d: ModelDims, w: Weights, rd: RankDims): RankShard {
  const D = d.hiddenSize
  const P = prefix(d)
  const layers = d.layers.map((layer, i) => {
    const p = `${P}layers.${i}.`
    const s = `${p}self_attn.`
    const mixer =
      layer.blocks[0].ops[0] === 'gdn'
        ? shardGdn(d, w, `${p}linear_attn.`, rd, d.tensorNaming === 'qwen3.5' ? 'qwen3.5' : 'qwen3-next')
        : shardAttention(d, w, {...projectionNames(s), qNorm: `${s}q_norm.weight`, kNorm: `${s}k_norm.weight`}, rd)
    const f = `${p}mlp.`
    const ffn =
      layer.blocks[1].ops[0] === 'moe'
        ? shardMoe(d, w, {
            router: `${f}gate.weight`,
            experts: (j) => swigluNames(`${f}experts.${j}.`),
            ...(d.moe!.sharedSize > 0 ? {shared: swigluNames(`${f}shared_expert.`), sharedGate: `${f}shared_expert_gate.weight`} : {}),
          }, rd)
        : shardMlp(D, d.mlp!.intermediateSize, 'swiglu', w, swigluNames(f), rd)
    return [
      {norm: normWeight(w, `${p}input_layernorm.weight`, true), ops: [mixer]},
      {norm: normWeight(w, `${p}post_attention_layernorm.weight`, true), ops: [ffn]},
    ]
  })
  return rankShard(d, w, rd, {embedding: `${P}embed_tokens.weight`, finalNorm: `${P}norm.weight`, zeroCenteredNorm: true}, layers)
}

export const qwen3Next: FamilyModule = {family: 'qwen3-next', dims, tensors, shard}
