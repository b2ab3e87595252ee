/**
 * The hostile-input generator behind the `inspect-layout` fuzz tests (in process:
 * src/commands/inspect-layout.fuzz.test.ts; through the built CLI: test/e2e/inspect-layout-fuzz.test.ts).
 *
 * A case is an argv for `hpd inspect-layout ... --json` plus the secrets its files hold. Models come
 * from presets, mutated config.json files (keys deleted or set to huge, negative, fractional,
 * NaN-ish, prototype-named, nested or secret-bearing values; known architectures swapped for
 * prototype keys), text-corrupted JSON, and special files (devices, a FIFO, directories, sparse
 * oversized files, secrets files, binary noise). Flags get valid, boundary, huge, unsafe-integer,
 * negative and non-numeric values. Deterministic for a seed.
 */
import {execFileSync} from 'node:child_process'
import {closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {PRESETS} from '../model/index.js'
import {Rng} from '../engine/random.js'

export interface FuzzCase {
  readonly index: number
  /** What the case is, for a failure message. */
  readonly label: string
  readonly argv: readonly string[]
  /** Text planted in the case's files that no error may show. */
  readonly secrets: readonly string[]
}

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/configs/', import.meta.url))

/** The engine's seeded stream (mulberry32), so a seed names a case list exactly. */
export class FuzzRng extends Rng {
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive)
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]
  }
  chance(p: number): boolean {
    return this.next() < p
  }
}

/** Keys the family parsers read (and a few they do not), the targets of value mutations. */
const GEOMETRY_KEYS = [
  'architectures', 'model_type', 'torch_dtype', 'dtype', 'hidden_size', 'vocab_size', 'num_hidden_layers',
  'hybrid_override_pattern', 'layer_types', 'layers_block_type', 'attn_layer_indices', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'attention_head_dim', 'mamba_num_heads', 'mamba_head_dim', 'n_groups',
  'mamba_n_groups', 'ssm_state_size', 'conv_kernel', 'mamba_d_conv', 'mamba_n_heads', 'mamba_d_head',
  'mamba_d_state', 'mamba_expand', 'mamba_d_ssm', 'n_mamba_heads', 'mamba_headdim', 'mamba_ngroups',
  'linear_num_key_heads', 'linear_num_value_heads', 'linear_key_head_dim', 'linear_value_head_dim',
  'linear_conv_kernel_dim', 'full_attention_interval', 'attn_layer_period', 'attn_layer_offset',
  'expert_layer_period', 'expert_layer_offset', 'num_experts', 'num_local_experts', 'mamba_cache_dtype',
  'mamba_ssm_cache_dtype', 'text_config', 'max_position_embeddings', '_name_or_path',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty',
] as const

const PROTOTYPE_NAMES = ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'isPrototypeOf', '__defineGetter__']
const ARCHITECTURES = ['NemotronHForCausalLM', 'GraniteMoeHybridForCausalLM', 'BambaForCausalLM', 'Zamba2ForCausalLM', 'FalconH1ForCausalLM', 'JambaForCausalLM', 'Qwen3NextForCausalLM', 'LlamaForCausalLM', 'MistralForCausalLM']

/** JSON cannot spell these; they are spliced into the text in place of a marker string. */
const RAW_NUMBERS = ['1e400', '-1e400', '1e308', '9007199254740993', '18446744073709551617', '-0', '1.0', '4.000000000000001', '1E3']

/** A hostile value for a config key; secret-bearing strings are recorded in `secrets`. */
function hostileValue(rng: FuzzRng, secret: () => string, raw: string[]): unknown {
  switch (rng.int(14)) {
    case 0: return rng.pick([0, -1, -4096, 0.5, 1.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 53 + 2, 1e24, Number.MAX_VALUE, Number.MIN_VALUE])
    case 1: return rng.pick([1, 2, 3, 4, 7, 8, 16, 64, 65_536, 65_537, 1_048_576, 16_777_217])
    case 2: {
      const marker = `__raw${raw.length}__`
      raw.push(rng.pick(RAW_NUMBERS))
      return marker
    }
    case 3: return rng.pick(['NaN', 'Infinity', '-Infinity', '12', '0x10', '', ' ', 'null', 'true'])
    case 4: return secret()
    case 5: return rng.pick([true, false, null])
    case 6: return rng.pick([[], [1], [secret()], {}, {x: 1}, {[secret()]: secret()}])
    case 7: {
      // Deep nesting is spliced in as text: building it as a value would overflow JSON.stringify here.
      const depth = rng.pick([10, 1000, 30_000])
      const leaf = rng.chance(0.5) ? '1' : JSON.stringify(secret())
      const marker = `__raw${raw.length}__`
      raw.push(rng.chance(0.5) ? `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}${leaf}${'}'.repeat(depth)}`)
      return marker
    }
    case 8: return Array.from({length: rng.pick([100, 5000])}, (_, i) => (rng.chance(0.5) ? i : 'mamba'))
    case 9: return rng.pick(PROTOTYPE_NAMES)
    case 10: return Array.from({length: rng.pick([1, 50, 5000])}, () => rng.pick(['M', '*', '-', 'E', 'X', 'm'])).join('')
    case 11: return [rng.pick([...PROTOTYPE_NAMES, ...ARCHITECTURES, secret()])]
    case 12: return rng.pick(['bfloat16', 'float32', 'fp8', 'int4', 'auto', 'constructor', 'torch.float16'])
    default: return Array.from({length: rng.pick([2, 3, 52, 4097])}, () => rng.pick(['mamba', 'attention', 'hybrid', 'linear_attention', 'full_attention']))
  }
}

function baseConfigs(): Record<string, unknown>[] {
  const fromFixtures = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json') && !f.startsWith('bad-'))
    .map((f) => JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as Record<string, unknown>)
  return [...PRESETS.map((p) => p.config as Record<string, unknown>), ...fromFixtures]
}

/** One mutated config.json text (with its raw-number splices) and the secrets it holds. */
function mutatedConfig(rng: FuzzRng, bases: readonly Record<string, unknown>[], secretOf: () => string): string {
  const config: Record<string, unknown> = structuredClone(rng.pick(bases))
  const raw: string[] = []
  if (rng.chance(0.35)) {
    // Size attack: one numeric key the family really reads, set to a large integer, everything else
    // valid: the case that used to exit 0 with pages of 1e18–1e24 bytes.
    const numeric = Object.keys(config).filter((k) => typeof config[k] === 'number' && Number.isInteger(config[k]))
    const key = rng.pick(numeric)
    config[key] = rng.pick([2 ** 16, 2 ** 16 + 1, 2 ** 20, 2 ** 24, 2 ** 31, 2 ** 40, 2 ** 53, 2 ** 60, 1e24, 4096 * 1024])
  }
  const mutations = rng.int(4)
  for (let m = 0; m < mutations; m++) {
    const key = rng.chance(0.85) ? rng.pick(GEOMETRY_KEYS) : rng.pick(Object.keys(config))
    if (rng.chance(0.15)) delete config[key]
    else Object.defineProperty(config, key, {value: hostileValue(rng, secretOf, raw), enumerable: true, writable: true, configurable: true})
  }
  let text = JSON.stringify(rng.chance(0.08) ? {architectures: config.architectures, text_config: config} : config)
  raw.forEach((number, i) => {
    text = text.replace(`"__raw${i}__"`, number)
  })
  if (rng.chance(0.06)) {
    // Text corruption: truncated, a stray byte, a secret line in front.
    const cut = rng.int(text.length)
    text = rng.pick([text.slice(0, cut), `${text.slice(0, cut)}\u0000${text.slice(cut)}`, `${secretOf()}\n${text}`])
  }
  return text
}

/** Files that are not config.json at all; each returns a path (and records its secrets). */
function hostilePath(rng: FuzzRng, dir: string, index: number, secretOf: () => string, configText: () => string): string {
  const path = join(dir, `case-${index}`)
  switch (rng.int(10)) {
    case 0: return rng.pick(['/dev/zero', '/dev/null', '/dev/urandom'])
    case 1: {
      execFileSync('mkfifo', [path])
      return path
    }
    case 2: {
      mkdirSync(join(path, 'config.json'), {recursive: true})
      return path
    }
    case 3: {
      mkdirSync(path, {recursive: true})
      return rng.chance(0.5) ? path : join(path, 'missing.json')
    }
    case 4: {
      const fd = openSync(path, 'w')
      ftruncateSync(fd, rng.pick([4 * 1024 * 1024 + 1, 1024 ** 3]))
      closeSync(fd)
      return path
    }
    case 5: {
      writeFileSync(path, `${secretOf()}=${secretOf()}\nexport TOKEN=${secretOf()}\n`)
      return path
    }
    case 6: {
      const noise = Buffer.alloc(1 + rng.int(4096))
      for (let i = 0; i < noise.length; i++) noise[i] = rng.int(256)
      writeFileSync(path, noise)
      return path
    }
    case 7: {
      writeFileSync(path, rng.pick(['', ' ', '[]', 'null', '42', '"x"', '{}']))
      return path
    }
    case 8: {
      mkdirSync(path, {recursive: true})
      writeFileSync(join(path, 'config.json'), configText())
      return path
    }
    default: return join(dir, 'no', 'such', `model-${index}`)
  }
}

const INT_FLAG_EXTREMES = ['1', '2', '4', '8', '3', '16', '128', '0', '-1', '1024', '1025', '3000', '65536', '1048576', '1048577', '16777216', '16777217', '1000000000000', '9007199254740993']
/** Not integers at all: oclif refuses these (HPD_USAGE) before hpd sees them, so they are rare here. */
const INT_FLAG_GARBAGE = ['1e3', '1.5', 'abc', '', '0x10']

function flags(rng: FuzzRng): string[] {
  const out: string[] = []
  const intFlag = (name: string, p: number, typical: readonly string[]) => {
    if (!rng.chance(p)) return
    const r = rng.next()
    out.push(name, r < 0.6 ? rng.pick(typical) : r < 0.97 ? rng.pick(INT_FLAG_EXTREMES) : rng.pick(INT_FLAG_GARBAGE))
  }
  const option = (valid: readonly string[], invalid: readonly string[]) => (rng.chance(0.9) ? rng.pick(valid) : rng.pick(invalid))
  intFlag('--tp', 0.4, ['1', '2', '4', '8'])
  intFlag('--decode-tp', 0.4, ['1', '2', '4'])
  intFlag('--block-size', 0.25, ['16', '64', '128', '1056'])
  intFlag('--prompt-tokens', 0.5, ['2', '100', '3000', '65536'])
  for (const flag of ['--kv-cache-dtype', '--mamba-cache-dtype', '--mamba-ssm-dtype']) {
    if (rng.chance(0.15)) out.push(flag, option(['auto', 'bf16', 'fp16', 'fp32', 'fp8'], ['int4', 'constructor']))
  }
  if (rng.chance(0.3)) out.push('--attention-backend', option(['flash-attn', 'flashinfer', 'triton', 'cpu', 'cpu'], ['__proto__']))
  if (rng.chance(0.15)) out.push('--conv-layout', option(['DS', 'SD'], ['XY']))
  intFlag('--kernel-block-size', 0.06, ['16', '32', '64'])
  intFlag('--decode-block-size', 0.06, ['16', '128'])
  if (rng.chance(0.05)) out.push('--decode-model', rng.pick(PRESETS.map((p) => p.name)))
  if (rng.chance(0.05)) out.push('--decode-kv-cache-dtype', option(['auto', 'bf16', 'fp8'], ['int4']))
  if (rng.chance(0.06)) out.push('--vllm-version', option(['0.20', '0.22', '0.30'], ['0.1', 'abc', 'constructor', '99999999999999999999.1']))
  if (rng.chance(0.1)) out.push('--descriptors')
  if (rng.chance(0.05)) out.push('--format', 'svg')
  return out
}

/**
 * `count` cases from `seed`. Files are written under `dir` (which must exist); a case's secrets
 * are marked `s3cr3t-<case>-<n>` so a leak names its case.
 */
export function inspectFuzzCases(seed: number, count: number, dir: string, firstIndex = 0): FuzzCase[] {
  const rng = new FuzzRng(seed)
  const bases = baseConfigs()
  const cases: FuzzCase[] = []
  for (let index = firstIndex; index < firstIndex + count; index++) {
    const secrets: string[] = []
    const secretOf = () => {
      const s = `s3cr3t-${index}-${secrets.length}-${rng.int(1e9).toString(36)}`
      secrets.push(s)
      return s
    }
    const kind = rng.next()
    let model: string
    let label: string
    if (kind < 0.15) {
      model = rng.pick([...PRESETS.map((p) => p.name), 'TINY', ' tiny ', 'tiny-hybrid-g1', 'nemotron-h-8b'])
      label = `preset ${model}`
    } else if (kind < 0.8) {
      model = join(dir, `case-${index}.json`)
      writeFileSync(model, mutatedConfig(rng, bases, secretOf))
      label = 'mutated config'
    } else {
      model = hostilePath(rng, dir, index, secretOf, () => mutatedConfig(rng, bases, secretOf))
      label = `hostile path ${model}`
    }
    cases.push({index, label, argv: ['--model', model, ...flags(rng), '--json'], secrets})
  }
  return cases
}

/** The cases every run includes: the inputs issue 9 found crashing or lying, one each. */
export function knownHostileCases(dir: string): FuzzCase[] {
  const write = (name: string, text: string) => {
    const path = join(dir, name)
    if (!existsSync(path)) writeFileSync(path, text)
    return path
  }
  const llama = PRESETS.find((p) => p.name === 'tiny-llama')!.config
  const secret = 's3cr3t-known-AKIAEXAMPLE'
  const cases: [string, string[], string[]][] = [
    ...PROTOTYPE_NAMES.slice(0, 4).map((name): [string, string[], string[]] => [`architectures ["${name}"]`, ['--model', write(`proto-${name}.json`, JSON.stringify({...llama, architectures: [name]}))], []]),
    ['--prompt-tokens 1e12', ['--model', 'tiny', '--prompt-tokens', '1000000000000'], []],
    ['--descriptors --prompt-tokens 1e8', ['--model', 'nemotron-h-8b', '--descriptors', '--prompt-tokens', '100000000'], []],
    ['--prompt-tokens 2^53+1', ['--model', 'tiny', '--prompt-tokens', '9007199254740993'], []],
    ['head_dim 2^53', ['--model', write('huge-head-dim.json', JSON.stringify({...llama, head_dim: 2 ** 53}))], []],
    ['ssm_state_size 1e24', ['--model', write('huge-state.json', JSON.stringify({...PRESETS[0].config, ssm_state_size: 1e24}))], []],
    ['--model /dev/zero', ['--model', '/dev/zero'], []],
    ['--model secrets file', ['--model', write('secrets.env', `${secret}\npassword=${secret}\n`)], [secret]],
  ]
  return cases.map(([label, argv, secrets], i) => ({index: -1 - i, label, argv: [...argv, '--json'], secrets}))
}
