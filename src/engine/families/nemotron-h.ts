import type {ModelSpec} from '../../model/model-spec.js'
import type {LayerDims, ModelDims, MoeDims, OpKind} from '../model-dims.js'
import type {ExpectedTensor} from '../weight-names.js'
import type {Weights} from '../weights.js'
import type {RankDims} from '../rank-weights.js'
import {attentionDims, baseDims, ComputeKeys, mambaDims, missingKey, refuseUnsupportedSwitches, unsupported, attentionTensors} from './common.js'
import type {FamilyModule, RankShard} from './index.js'
import {normWeight, projectionNames, rankShard, shardAttention, shardMamba, shardMlp, shardMoe} from './shard.js'

/**
 * Nemotron-H (`NemotronHForCausalLM`, model-forward.md §1–§5): one pre-norm mixer per layer from
 * `hybrid_override_pattern` — Mamba2 (M), attention without RoPE (*), relu² MLP (-), and the
 * Nemotron-3 MoE (E): sigmoid router with a selection-only bias, group-limited top-k, weights
 * renormalised and scaled by routed_scaling_factor, relu² experts plus a shared expert.
 */
const KIND_OP: ReadonlyMap<string, OpKind> = new Map([
  ['mamba2', 'mamba'],
  ['attention', 'attention'],
  ['mlp', 'mlp'],
  ['moe', 'moe'],
])

function dims(spec: ModelSpec): ModelDims {
  // mamba_proj_bias is stored but unused by every reference mixer (HF, remote code, vLLM).
  refuseUnsupportedSwitches(spec, ['mamba_proj_bias'])
  const keys = new ComputeKeys(spec)
  const layers = spec.layers.map((l): LayerDims => ({blocks: [{ops: [KIND_OP.get(l.kinds[0])!]}]}))
  const has = (op: OpKind) => layers.some((l) => l.blocks[0].ops[0] === op)
  const act = keys.string('mlp_hidden_act')
  if (act !== undefined && act !== 'relu2') throw unsupported(spec, `\`mlp_hidden_act\` ${JSON.stringify(act)} (Nemotron-H MLPs and experts are relu²)`)
  return {
    ...baseDims(spec),
    family: 'nemotron-h',
    layers,
    attention: attentionDims(spec),
    mamba: mambaDims(spec, keys, {chunkKeys: ['chunk_size', 'mamba_chunk_size'], convBiasKeys: ['use_conv_bias', 'mamba_conv_bias'], normMode: 'gate-first', normGroups: spec.stateMixer?.kind === 'mamba2' ? spec.stateMixer.nGroups : 1}),
    mlp: has('mlp') ? {activation: 'relu2', intermediateSize: keys.int('intermediate_size', 0) || missing('intermediate_size'), gateScale: 1, outScale: 1} : undefined,
    moe: has('moe') ? moeDims(spec, keys) : undefined,
    normEps: keys.positive('layer_norm_epsilon', 1e-5),
    tieWordEmbeddings: false,
  }
}

function missing(key: string): never {
  throw missingKey(key)
}

function moeDims(spec: ModelSpec, keys: ComputeKeys): MoeDims {
  const latent = spec.config.moe_latent_size
  if (latent !== undefined && latent !== null) throw unsupported(spec, '`moe_latent_size` (latent MoE projections are not implemented)')
  const numExperts = keys.int('n_routed_experts', 0) || missing('n_routed_experts')
  const shared = keys.int('n_shared_experts', 1, 0)
  if (shared > 1) throw unsupported(spec, '`n_shared_experts` > 1')
  const topK = keys.int('num_experts_per_tok', 0) || missing('num_experts_per_tok')
  const nGroup = keys.int('n_group', 1)
  const topkGroup = keys.int('topk_group', 1)
  if (topK > numExperts || numExperts % nGroup !== 0 || topkGroup > nGroup || (nGroup > 1 && topkGroup * (numExperts / nGroup) < topK)) {
    throw unsupported(spec, `routing of ${topK} of ${numExperts} experts in ${nGroup} groups keeping ${topkGroup}`)
  }
  return {
    numExperts,
    topK,
    expertSize: keys.int('moe_intermediate_size', 0) || missing('moe_intermediate_size'),
    activation: 'relu2',
    router: 'sigmoid-bias',
    normTopk: keys.bool('norm_topk_prob', true),
    nGroup,
    topkGroup,
    routedScale: keys.num('routed_scaling_factor', 1),
    sharedSize: shared === 0 ? 0 : keys.int('moe_shared_expert_intermediate_size', 0) || missing('moe_shared_expert_intermediate_size'),
    sharedGate: false,
    outScale: 1,
  }
}

function tensors(d: ModelDims): ExpectedTensor[] {
  const D = d.hiddenSize
  const out: ExpectedTensor[] = [{name: 'backbone.embeddings.weight', shape: [d.vocabSize, D]}]
  d.layers.forEach((layer, i) => {
    const p = `backbone.layers.${i}.`
    out.push({name: `${p}norm.weight`, shape: [D]})
    const kind = layer.blocks[0].ops[0]
    if (kind === 'mamba') {
      const m = d.mamba!
      const gn = m.nGroups * m.stateSize
      const cd = m.inner + 2 * gn
      out.push(
        {name: `${p}mixer.in_proj.weight`, shape: [2 * m.inner + 2 * gn + m.numHeads, D]},
        {name: `${p}mixer.conv1d.weight`, shape: [cd, 1, m.convKernel]},
        ...(m.useConvBias ? [{name: `${p}mixer.conv1d.bias`, shape: [cd]}] : []),
        {name: `${p}mixer.dt_bias`, shape: [m.numHeads]},
        {name: `${p}mixer.A_log`, shape: [m.numHeads]},
        {name: `${p}mixer.D`, shape: [m.numHeads]},
        {name: `${p}mixer.norm.weight`, shape: [m.inner]},
        {name: `${p}mixer.out_proj.weight`, shape: [D, m.inner]},
      )
    } else if (kind === 'attention') {
      const a = d.attention!
      out.push(
        ...attentionTensors(`${p}mixer.`, a, D),
      )
    } else if (kind === 'mlp') {
      const I = d.mlp!.intermediateSize
      out.push({name: `${p}mixer.up_proj.weight`, shape: [I, D]}, {name: `${p}mixer.down_proj.weight`, shape: [D, I]})
    } else {
      const moe = d.moe!
      const I = moe.expertSize
      out.push({name: `${p}mixer.gate.weight`, shape: [moe.numExperts, D]}, {name: `${p}mixer.gate.e_score_correction_bias`, shape: [moe.numExperts], init: 'router-bias'})
      for (let j = 0; j < moe.numExperts; j++) {
        out.push({name: `${p}mixer.experts.${j}.up_proj.weight`, shape: [I, D]}, {name: `${p}mixer.experts.${j}.down_proj.weight`, shape: [D, I]})
      }
      if (moe.sharedSize > 0) {
        const S = moe.sharedSize
        out.push({name: `${p}mixer.shared_experts.up_proj.weight`, shape: [S, D]}, {name: `${p}mixer.shared_experts.down_proj.weight`, shape: [D, S]})
      }
    }
  })
  out.push({name: 'backbone.norm_f.weight', shape: [D]}, {name: 'lm_head.weight', shape: [d.vocabSize, D]})
  return out
}

function shard(d: ModelDims, w: Weights, rd: RankDims): RankShard {
  const D = d.hiddenSize
  const layers = d.layers.map((layer, i) => {
    const p = `backbone.layers.${i}.mixer.`
    const norm = normWeight(w, `backbone.layers.${i}.norm.weight`, false)
    const kind = layer.blocks[0].ops[0]
    const op =
      kind === 'mamba'
        ? shardMamba(d, w, p, rd)
        : kind === 'attention'
          ? shardAttention(d, w, projectionNames(p), rd)
          : kind === 'mlp'
            ? shardMlp(D, d.mlp!.intermediateSize, 'relu2', w, {up: `${p}up_proj.weight`, down: `${p}down_proj.weight`}, rd)
            : shardMoe(d, w, {
                router: `${p}gate.weight`,
                routerBias: `${p}gate.e_score_correction_bias`,
                experts: (j) => ({up: `${p}experts.${j}.up_proj.weight`, down: `${p}experts.${j}.down_proj.weight`}),
                shared: {up: `${p}shared_experts.up_proj.weight`, down: `${p}shared_experts.down_proj.weight`},
              }, rd)
    return [{norm, ops: [op]}]
  })
  return rankShard(d, w, rd, {embedding: 'backbone.embeddings.weight', finalNorm: 'backbone.norm_f.weight'}, layers)
}

export const nemotronH: FamilyModule = {family: 'nemotron-h', dims, tensors, shard}
