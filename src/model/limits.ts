import {ModelConfigError} from '../errors.js'
import {badConfigKey} from './config-errors.js'
import type {ModelSpec} from './model-spec.js'

/**
 * The largest values hpd accepts from a config.json (documented in the top-level README, "Limits").
 *
 * Why these numbers: every count and size hpd derives from a config must stay an exact integer
 * (below 2^53) and small enough that a machine could hold it, and every array hpd builds from a
 * count (one entry per layer, per head) must stay small. Each maximum is far above any published
 * model (the largest today: 126 layers, 128 heads, head dims of 256–512, SSM state 256, conv
 * kernel 4), so a real config never meets one; a hostile or mistyped one gets a typed error
 * naming the key instead of a 1e24-byte page or an out-of-memory abort.
 */
export const CONFIG_LIMITS = {
  /** num_hidden_layers and the length of every per-layer list or pattern. */
  layers: 4096,
  /** hidden_size. */
  hiddenSize: 1_048_576,
  /** vocab_size. */
  vocabSize: 16_777_216,
  /** Any head or group count: attention and KV heads, Mamba heads and groups, GDN key/value heads. */
  heads: 65_536,
  /** Any per-head width: head_dim, mamba head dim, GDN key/value head dims, SSM state size. */
  headDim: 65_536,
  /** Conv kernel width (d_conv). */
  convKernel: 1024,
  /** Mamba expand factor (intermediate = expand · hidden_size). */
  expand: 1024,
  /** Other counts (expert counts, layer periods and offsets). */
  count: 2_147_483_647,
  /**
   * Routed experts summed over a model's MoE layers (each is two or three weight matrices the
   * engine lists and loads one by one): the largest published, Qwen3-Next's 512 × 48, is 24576.
   */
  expertsPerModel: 262_144,
  /** Context length hpd serves (max_position_embeddings above it is capped to it) and the most prompt tokens it plans. */
  contextTokens: 16_777_216,
  /** Elements of attention K+V per token per layer before TP (2 · KV heads · head dim): 64 MiB at fp32. */
  kvElementsPerToken: 16_777_216,
  /** Elements of one layer's recurrent state before TP (conv + SSM): 16 GiB at fp32. */
  stateElementsPerLayer: 4_294_967_296,
} as const

/** Elements of K+V for one token in one attention layer, all KV heads (TP 1: the most any rank holds). */
export function kvElementsPerToken(spec: ModelSpec): number {
  return spec.attention ? 2 * spec.attention.numKvHeads * spec.attention.headDim : 0
}

/** Elements of one state layer's conv + SSM state, all heads (TP 1: the most any rank holds). */
export function stateElementsPerLayer(spec: ModelSpec): number {
  const m = spec.stateMixer
  if (!m) return 0
  if (m.kind === 'mamba2') return (m.intermediateSize + 2 * m.nGroups * m.stateSize) * (m.convKernel - 1) + m.numHeads * m.headDim * m.stateSize
  if (m.kind === 'mamba1') return m.intermediateSize * (m.convKernel - 1) + m.intermediateSize * m.stateSize
  const convChannels = 2 * m.numKeyHeads * m.keyHeadDim + m.numValueHeads * m.valueHeadDim
  return convChannels * (m.convKernel - 1) + m.numValueHeads * m.valueHeadDim * m.keyHeadDim
}

/**
 * Refuses a spec whose derived cache sizes exceed hpd's limits. Every key was already bounded by
 * the family parser, so these products are exact (each below 2^53).
 */
export function checkSpecLimits(spec: ModelSpec): void {
  const kv = kvElementsPerToken(spec)
  if (kv > CONFIG_LIMITS.kvElementsPerToken) {
    throw sizeLimit(
      `attention K/V of one token in one layer is 2 × num_key_value_heads × head_dim = ${kv} elements; hpd's limit is ${CONFIG_LIMITS.kvElementsPerToken}`,
      'num_key_value_heads',
    )
  }
  const state = stateElementsPerLayer(spec)
  if (state > CONFIG_LIMITS.stateElementsPerLayer) {
    throw sizeLimit(`one layer's recurrent state (conv + SSM) is ${state} elements; hpd's limit is ${CONFIG_LIMITS.stateElementsPerLayer}`, 'ssm_state_size')
  }
}

function sizeLimit(message: string, key: string): ModelConfigError {
  return new ModelConfigError('HPD_MODEL_SIZE_LIMIT', `config: ${message}`, {
    hint: 'No published model comes near this; check the head counts, head dims and state size in config.json.',
    details: {key},
  })
}

/**
 * The context length to serve: `max_position_embeddings` (an integer ≥ 2), capped at
 * CONFIG_LIMITS.contextTokens (long-context configs declare up to 10M; a larger figure is a
 * declaration hpd could not hold anyway, so it is capped rather than refused).
 */
export function contextLength(spec: ModelSpec): number {
  const value = spec.config.max_position_embeddings
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 2) {
    throw badConfigKey(spec.architecture, 'max_position_embeddings', value, 'an integer ≥ 2')
  }
  return Math.min(value, CONFIG_LIMITS.contextTokens)
}
