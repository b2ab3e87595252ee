import {ModelConfigError} from '../errors.js'
import {describeFound} from './config-errors.js'
import {ConfigReader} from './config-reader.js'
import {buildSpec, type FamilyParser} from './families/common.js'
import {parseBamba, parseFalconH1, parseGranite4H, parseZamba2} from './families/mamba2-hybrids.js'
import {parseNemotronH} from './families/nemotron-h.js'
import {parseJamba, parseQwen3Next, transformerParser} from './families/others.js'
import {checkSpecLimits} from './limits.js'
import type {ModelSource, ModelSpec} from './model-spec.js'

/**
 * `architectures[0]` → family parser. Where to add a family: here plus a parser in families/.
 * A Map, not an object literal: a config naming `constructor` or `__proto__` must find nothing.
 */
const BY_ARCHITECTURE: ReadonlyMap<string, FamilyParser> = new Map<string, FamilyParser>([
  ['NemotronHForCausalLM', parseNemotronH],
  ['GraniteMoeHybridForCausalLM', parseGranite4H],
  ['BambaForCausalLM', parseBamba],
  ['Zamba2ForCausalLM', parseZamba2],
  ['FalconH1ForCausalLM', parseFalconH1],
  ['JambaForCausalLM', parseJamba],
  ['Qwen3NextForCausalLM', parseQwen3Next],
  ['Qwen3_5ForConditionalGeneration', parseQwen3Next],
  ['Qwen3_5MoeForConditionalGeneration', parseQwen3Next],
  ['LlamaForCausalLM', transformerParser('llama')],
  ['Qwen2ForCausalLM', transformerParser('qwen2')],
  ['MistralForCausalLM', transformerParser('mistral')],
])

/** `model_type` → architecture, for configs without `architectures`. */
const BY_MODEL_TYPE: ReadonlyMap<string, string> = new Map([
  ['nemotron_h', 'NemotronHForCausalLM'],
  ['granitemoehybrid', 'GraniteMoeHybridForCausalLM'],
  ['bamba', 'BambaForCausalLM'],
  ['zamba2', 'Zamba2ForCausalLM'],
  ['falcon_h1', 'FalconH1ForCausalLM'],
  ['jamba', 'JambaForCausalLM'],
  ['qwen3_next', 'Qwen3NextForCausalLM'],
  ['llama', 'LlamaForCausalLM'],
  ['qwen2', 'Qwen2ForCausalLM'],
  ['mistral', 'MistralForCausalLM'],
])

export const SUPPORTED_ARCHITECTURES: readonly string[] = [...BY_ARCHITECTURE.keys()]

/**
 * A config.json object → validated ModelSpec. Pure. Multimodal wrappers (Qwen3.5) are read from
 * their `text_config`. Errors are ModelConfigError naming the key and value at fault.
 */
export function parseModelConfig(raw: unknown, options: {name?: string; source?: ModelSource} = {}): ModelSpec {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError('HPD_MODEL_NOT_AN_OBJECT', 'config.json is not a JSON object', {hint: 'Point --model at a Hugging Face config.json.'})
  }
  const top = raw as Record<string, unknown>
  const architecture = readArchitecture(top)
  const parser = BY_ARCHITECTURE.get(architecture)
  if (!parser) {
    // The name is not quoted: it is text of whatever file --model named.
    throw new ModelConfigError('HPD_MODEL_UNKNOWN_ARCHITECTURE', `config key \`architectures\` names an architecture hpd has no layout for`, {
      hint: `Supported: ${SUPPORTED_ARCHITECTURES.join(', ')}.`,
      details: {key: 'architectures'},
    })
  }
  const text = typeof top.text_config === 'object' && top.text_config !== null ? {...(top.text_config as Record<string, unknown>)} : top
  if (text !== top && text.torch_dtype === undefined && top.torch_dtype !== undefined) text.torch_dtype = top.torch_dtype
  const cfg = new ConfigReader(text, architecture)
  const parsed = parser(cfg)
  const name = options.name ?? (typeof top._name_or_path === 'string' && top._name_or_path !== '' ? top._name_or_path : architecture)
  const spec = buildSpec(cfg, architecture, parsed, name, options.source ?? {kind: 'object'})
  checkSpecLimits(spec)
  if (!spec.attention) {
    throw new ModelConfigError('HPD_MODEL_NO_ATTENTION', `${architecture} config has no attention layer: hpd lays out hybrid and attention models only`, {
      hint: 'Pure state-space models have no paged KV cache to disaggregate.',
      details: {key: 'layers'},
    })
  }
  return spec
}

function readArchitecture(top: Record<string, unknown>): string {
  const archs = top.architectures
  if (Array.isArray(archs) && typeof archs[0] === 'string') return archs[0]
  if (archs !== undefined) {
    throw new ModelConfigError('HPD_MODEL_BAD_KEY', `config key \`architectures\` is ${describeFound(archs)}; expected an array of strings`, {
      hint: 'Set `architectures` to e.g. ["NemotronHForCausalLM"].',
      details: {key: 'architectures', found: describeFound(archs)},
    })
  }
  const byType = typeof top.model_type === 'string' ? BY_MODEL_TYPE.get(top.model_type) : undefined
  if (byType !== undefined) return byType
  throw new ModelConfigError('HPD_MODEL_MISSING_KEY', 'config has neither `architectures` nor a known `model_type`', {
    hint: 'Add `"architectures": ["NemotronHForCausalLM"]` (or your model\'s class) to config.json.',
    details: {key: 'architectures'},
  })
}
