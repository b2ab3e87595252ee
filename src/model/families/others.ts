import type {ConfigReader} from '../config-reader.js'
import {CONFIG_LIMITS} from '../limits.js'
import type {LayerKind, LayerSpec, ModelFamily} from '../model-spec.js'
import {checkLayerCount, type FamilyParse, readAttention} from './common.js'

/**
 * Jamba (`JambaForCausalLM`): attention where layer % attn_layer_period == attn_layer_offset,
 * Mamba1 elsewhere; MoE where layer % expert_layer_period == expert_layer_offset. Mamba1's conv
 * holds x only and its temporal state is (intermediate, d_state), sharded on channels.
 */
export function parseJamba(cfg: ConfigReader): FamilyParse {
  const count = cfg.positiveInt('num_hidden_layers', undefined, CONFIG_LIMITS.layers)
  const attnPeriod = cfg.positiveInt('attn_layer_period', 8)
  const attnOffset = cfg.nonNegativeInt('attn_layer_offset', 4)
  const expertPeriod = cfg.positiveInt('expert_layer_period', 2)
  const expertOffset = cfg.nonNegativeInt('expert_layer_offset', 1)
  const hasExperts = cfg.positiveInt('num_experts', 1) > 1
  const layers = Array.from({length: count}, (_, index): LayerSpec => {
    const mixer: LayerKind = index % attnPeriod === attnOffset ? 'attention' : 'mamba1'
    const ffn: LayerKind = hasExperts && index % expertPeriod === expertOffset ? 'moe' : 'mlp'
    return {index, kinds: [mixer, ffn]}
  })
  const hidden = cfg.positiveInt('hidden_size', undefined, CONFIG_LIMITS.hiddenSize)
  const expand = cfg.positiveInt('mamba_expand', 2, CONFIG_LIMITS.expand)
  return {
    family: 'jamba',
    layers,
    attention: layers.some((l) => l.kinds.includes('attention')) ? readAttention(cfg) : undefined,
    stateMixer: {
      kind: 'mamba1',
      intermediateSize: expand * hidden,
      stateSize: cfg.positiveInt('mamba_d_state', 16, CONFIG_LIMITS.headDim),
      convKernel: cfg.positiveInt('mamba_d_conv', 4, CONFIG_LIMITS.convKernel),
    },
    defaultSsmDtype: 'auto',
  }
}

/**
 * Qwen3-Next / Qwen3.5 (`Qwen3NextForCausalLM`): gated delta net layers with full attention every
 * `full_attention_interval` layers (or an explicit `layer_types`). Conv is [Q | K | V].
 */
export function parseQwen3Next(cfg: ConfigReader): FamilyParse {
  const count = cfg.positiveInt('num_hidden_layers', undefined, CONFIG_LIMITS.layers)
  const types = cfg.stringArray('layer_types')
  const interval = cfg.positiveInt('full_attention_interval', 4)
  if (types) checkLayerCount(cfg, types.length, 'layer_types')
  // Qwen3NextDecoderLayer: a sparse MoE block where num_experts > 0, the layer is not in
  // mlp_only_layers and (layer + 1) % decoder_sparse_step == 0; a dense MLP elsewhere (Qwen3.5 dense has no experts).
  const experts = cfg.nonNegativeInt('num_experts', 0)
  const sparseStep = cfg.positiveInt('decoder_sparse_step', 1)
  const mlpOnly = new Set(cfg.intArray('mlp_only_layers') ?? [])
  const ffnOf = (index: number): LayerKind => (experts > 0 && !mlpOnly.has(index) && (index + 1) % sparseStep === 0 ? 'moe' : 'mlp')
  const layers = Array.from({length: count}, (_, index): LayerSpec => {
    const ffn = ffnOf(index)
    const t = types ? types[index] : (index + 1) % interval === 0 ? 'full_attention' : 'linear_attention'
    if (t === 'full_attention') return {index, kinds: ['attention', ffn]}
    if (t === 'linear_attention') return {index, kinds: ['gdn', ffn]}
    throw cfg.bad(`layer_types[${index}]`, t, '"linear_attention" or "full_attention"')
  })
  const numKeyHeads = cfg.positiveInt('linear_num_key_heads', undefined, CONFIG_LIMITS.heads)
  const numValueHeads = cfg.positiveInt('linear_num_value_heads', undefined, CONFIG_LIMITS.heads)
  if (numValueHeads % numKeyHeads !== 0) {
    throw cfg.contradiction(`linear_num_value_heads = ${numValueHeads} is not a multiple of linear_num_key_heads = ${numKeyHeads}`, {
      key: 'linear_num_value_heads',
      value: numValueHeads,
    })
  }
  return {
    family: 'qwen3-next',
    layers,
    attention: layers.some((l) => l.kinds.includes('attention')) ? readAttention(cfg) : undefined,
    stateMixer: {
      kind: 'gdn',
      numKeyHeads,
      numValueHeads,
      keyHeadDim: cfg.positiveInt('linear_key_head_dim', undefined, CONFIG_LIMITS.headDim),
      valueHeadDim: cfg.positiveInt('linear_value_head_dim', undefined, CONFIG_LIMITS.headDim),
      convKernel: cfg.positiveInt('linear_conv_kernel_dim', 4, CONFIG_LIMITS.convKernel),
    },
    defaultSsmDtype: 'auto',
  }
}

/** Plain decoder-only transformers (Llama, Qwen2, Mistral): attention + MLP in every layer, no state. */
export function transformerParser(family: Extract<ModelFamily, 'llama' | 'qwen2' | 'mistral'>) {
  return (cfg: ConfigReader): FamilyParse => {
    const count = cfg.positiveInt('num_hidden_layers', undefined, CONFIG_LIMITS.layers)
    return {
      family,
      layers: Array.from({length: count}, (_, index): LayerSpec => ({index, kinds: ['attention', 'mlp']})),
      attention: readAttention(cfg),
      stateMixer: undefined,
      defaultSsmDtype: 'auto',
    }
  }
}
