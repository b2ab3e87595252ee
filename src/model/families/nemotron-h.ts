import type {ConfigReader} from '../config-reader.js'
import {CONFIG_LIMITS} from '../limits.js'
import type {LayerKind, LayerSpec} from '../model-spec.js'
import {checkLayerCount, type FamilyParse, readAttention, readMamba2} from './common.js'

const PATTERN_KINDS: ReadonlyMap<string, LayerKind> = new Map([
  ['M', 'mamba2'],
  ['*', 'attention'],
  ['-', 'mlp'],
  ['E', 'moe'],
])

/**
 * Nemotron-H (`NemotronHForCausalLM`): one mixer per layer from `hybrid_override_pattern`
 * (`M` mamba2, `*` attention, `-` MLP, `E` MoE). Raw configs use the remote-code names
 * (`mamba_n_groups`, `mamba_d_conv`) as aliases. SSM state defaults to fp32 (vLLM #39032).
 */
export function parseNemotronH(cfg: ConfigReader): FamilyParse {
  const pattern = cfg.string('hybrid_override_pattern')
  if (pattern.length > CONFIG_LIMITS.layers) throw cfg.bad('hybrid_override_pattern', pattern, `at most ${CONFIG_LIMITS.layers} layers`)
  const layers: LayerSpec[] = [...pattern].map((ch, index) => {
    const kind = PATTERN_KINDS.get(ch)
    if (!kind) throw cfg.bad('hybrid_override_pattern', pattern, `only M, *, - and E (layer ${index} is another character)`)
    return {index, kinds: [kind]}
  })
  if (layers.length === 0) throw cfg.bad('hybrid_override_pattern', pattern, 'at least one layer')
  checkLayerCount(cfg, layers.length, 'hybrid_override_pattern')
  const hasAttention = pattern.includes('*')
  const hasMamba = pattern.includes('M')
  return {
    family: 'nemotron-h',
    layers,
    attention: hasAttention ? readAttention(cfg, ['head_dim', 'attention_head_dim']) : undefined,
    stateMixer: hasMamba
      ? readMamba2(cfg, {
          numHeads: ['mamba_num_heads'],
          headDim: ['mamba_head_dim'],
          nGroups: ['n_groups', 'mamba_n_groups'],
          stateSize: ['ssm_state_size'],
          convKernel: ['conv_kernel', 'mamba_d_conv'],
        })
      : undefined,
    defaultSsmDtype: 'fp32',
  }
}
