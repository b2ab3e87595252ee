import type {ConfigReader} from '../config-reader.js'
import {CONFIG_LIMITS} from '../limits.js'
import type {LayerKind, LayerSpec} from '../model-spec.js'
import {checkLayerCount, type FamilyParse, type Mamba2Keys, readAttention, readMamba2} from './common.js'

/** Granite-4.0-H and Bamba share vLLM's key names (`mamba2_state_shape` with mamba_expand·hidden). */
const GRANITE_KEYS: Mamba2Keys = {
  numHeads: ['mamba_n_heads'],
  headDim: ['mamba_d_head'],
  nGroups: ['mamba_n_groups'],
  stateSize: ['mamba_d_state'],
  convKernel: ['mamba_d_conv'],
  expand: 'mamba_expand',
}

/** Granite-4.0-H (`GraniteMoeHybridForCausalLM`): `layer_types` of "mamba" / "attention"; MoE or MLP in every layer. */
export function parseGranite4H(cfg: ConfigReader): FamilyParse {
  const types = cfg.stringArray('layer_types') ?? cfg.stringArray('layers_block_type')
  if (!types) throw cfg.missing(['layer_types'])
  checkLayerCount(cfg, types.length, 'layer_types')
  // HF's GraniteMoeHybridConfig defaults num_local_experts to 8: a config without the key has MoE layers.
  const ffn: LayerKind = cfg.nonNegativeInt('num_local_experts', 8, CONFIG_LIMITS.count) > 0 ? 'moe' : 'mlp'
  const layers = types.map((t, index): LayerSpec => {
    if (t === 'mamba') return {index, kinds: ['mamba2', ffn]}
    if (t === 'attention') return {index, kinds: ['attention', ffn]}
    throw cfg.bad(`layer_types[${index}]`, t, '"mamba" or "attention"')
  })
  return withMixers(cfg, 'granite-4.0-h', layers, GRANITE_KEYS)
}

/** Bamba (`BambaForCausalLM`): attention at `attn_layer_indices`, Mamba2 elsewhere, an MLP in every layer. */
export function parseBamba(cfg: ConfigReader): FamilyParse {
  const count = cfg.positiveInt('num_hidden_layers', undefined, CONFIG_LIMITS.layers)
  const attn = new Set(cfg.intArray('attn_layer_indices') ?? [])
  for (const i of attn) if (i >= count) throw cfg.bad('attn_layer_indices', [...attn], `indices below num_hidden_layers = ${count}`)
  const layers = Array.from({length: count}, (_, index): LayerSpec => ({index, kinds: [attn.has(index) ? 'attention' : 'mamba2', 'mlp']}))
  return withMixers(cfg, 'bamba', layers, GRANITE_KEYS)
}

/**
 * Zamba2 (`Zamba2ForCausalLM`): `layers_block_type` of "mamba" / "hybrid"; a hybrid layer runs the
 * shared transformer block (attention + MLP) beside its Mamba2 mixer, and keeps a KV cache of its own.
 */
export function parseZamba2(cfg: ConfigReader): FamilyParse {
  const types = cfg.stringArray('layers_block_type')
  if (!types) throw cfg.missing(['layers_block_type'])
  checkLayerCount(cfg, types.length, 'layers_block_type')
  const layers = types.map((t, index): LayerSpec => {
    if (t === 'mamba') return {index, kinds: ['mamba2']}
    if (t === 'hybrid') return {index, kinds: ['mamba2', 'attention', 'mlp']}
    throw cfg.bad(`layers_block_type[${index}]`, t, '"mamba" or "hybrid"')
  })
  const hidden = cfg.positiveInt('hidden_size', undefined, CONFIG_LIMITS.hiddenSize)
  const heads = cfg.positiveInt('num_attention_heads', undefined, CONFIG_LIMITS.heads)
  // Zamba2's attention runs on the concatenation [hidden, original embedding]: width 2·hidden.
  // Without `attention_head_dim` the width must split evenly over the heads (a fraction is no head dim).
  const defaultHeadDim = (2 * hidden) % heads === 0 ? (2 * hidden) / heads : undefined
  const hasAttention = layers.some((l) => l.kinds.includes('attention'))
  if (hasAttention && defaultHeadDim === undefined && !cfg.has('attention_head_dim')) throw cfg.missing(['attention_head_dim'])
  const attention = hasAttention ? readAttention(cfg, ['attention_head_dim'], defaultHeadDim) : undefined
  return {
    family: 'zamba2',
    layers,
    attention,
    stateMixer: readMamba2(cfg, {
      numHeads: ['n_mamba_heads'],
      headDim: ['mamba_headdim'],
      nGroups: ['mamba_ngroups'],
      stateSize: ['mamba_d_state'],
      convKernel: ['mamba_d_conv'],
      expand: 'mamba_expand',
    }),
    defaultSsmDtype: 'auto',
  }
}

/**
 * Falcon-H1 (`FalconH1ForCausalLM`): attention and Mamba2 run in parallel in every layer (so every
 * layer keeps both caches). Falcon-H1-0.5B has mamba_n_groups = 1 (replicated B/C under TP).
 */
export function parseFalconH1(cfg: ConfigReader): FamilyParse {
  const count = cfg.positiveInt('num_hidden_layers', undefined, CONFIG_LIMITS.layers)
  const layers = Array.from({length: count}, (_, index): LayerSpec => ({index, kinds: ['attention', 'mamba2', 'mlp']}))
  return {
    family: 'falcon-h1',
    layers,
    attention: readAttention(cfg),
    stateMixer: readMamba2(cfg, {
      numHeads: ['mamba_n_heads'],
      headDim: ['mamba_d_head'],
      nGroups: ['mamba_n_groups'],
      stateSize: ['mamba_d_state'],
      convKernel: ['mamba_d_conv'],
      intermediate: ['mamba_d_ssm'],
      expand: 'mamba_expand',
    }),
    defaultSsmDtype: 'auto',
  }
}

function withMixers(cfg: ConfigReader, family: 'granite-4.0-h' | 'bamba', layers: LayerSpec[], keys: Mamba2Keys): FamilyParse {
  const hasAttention = layers.some((l) => l.kinds.includes('attention'))
  const hasMamba = layers.some((l) => l.kinds.includes('mamba2'))
  return {
    family,
    layers,
    attention: hasAttention ? readAttention(cfg, ['head_dim', 'attention_head_dim']) : undefined,
    stateMixer: hasMamba ? readMamba2(cfg, keys) : undefined,
    defaultSsmDtype: 'auto',
  }
}
