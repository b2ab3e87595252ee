import {ModelConfigError, UsageError} from '../errors.js'
import {describeFound} from './config-errors.js'

/** Element types a cache tensor can hold. `fp8` is 1 byte (e4m3/e5m2 alike for layout). */
export type Dtype = 'fp32' | 'bf16' | 'fp16' | 'fp8'

export const DTYPES: readonly Dtype[] = ['fp32', 'bf16', 'fp16', 'fp8']

/** A cache dtype as a user or config gives it: `auto` means "derive it" (see the layout README). */
export type DtypeChoice = Dtype | 'auto'

const BYTES: Readonly<Record<Dtype, number>> = {fp32: 4, bf16: 2, fp16: 2, fp8: 1}

const ALIASES: Readonly<Record<string, Dtype>> = {
  fp32: 'fp32', float32: 'fp32', float: 'fp32', 'torch.float32': 'fp32',
  bf16: 'bf16', bfloat16: 'bf16', 'torch.bfloat16': 'bf16',
  fp16: 'fp16', float16: 'fp16', half: 'fp16', 'torch.float16': 'fp16',
  fp8: 'fp8', fp8_e4m3: 'fp8', fp8_e5m2: 'fp8', float8_e4m3fn: 'fp8',
}

export function dtypeBytes(dtype: Dtype): number {
  return BYTES[dtype]
}

/** Parses a dtype name (`bfloat16`, `bf16`, `float32`, ...); undefined when unknown (own keys only: `constructor` is no dtype). */
export function parseDtype(name: string): Dtype | undefined {
  const key = name.trim().toLowerCase()
  return Object.hasOwn(ALIASES, key) ? ALIASES[key] : undefined
}

/** A dtype read from config.json: unknown names are a ModelConfigError naming the key (never quoting the file's text). */
export function configDtype(key: string, value: unknown): Dtype {
  const parsed = typeof value === 'string' ? parseDtype(value) : undefined
  if (!parsed) {
    const found = describeFound(value)
    throw new ModelConfigError('HPD_MODEL_BAD_DTYPE', `config key \`${key}\` is ${found}, not a dtype hpd knows`, {
      hint: 'Use one of float32, bfloat16, float16 (fp8 only for --kv-cache-dtype).',
      details: {key, found},
    })
  }
  return parsed
}

/** A dtype flag value (`auto` allowed): unknown names are a UsageError naming the flag. */
export function flagDtypeChoice(flag: string, value: string | undefined): DtypeChoice {
  if (value === undefined || value === 'auto') return 'auto'
  const parsed = parseDtype(value)
  if (!parsed) {
    throw new UsageError('HPD_USAGE_BAD_DTYPE', `--${flag} ${value} is not a dtype`, {
      hint: `Use auto, ${DTYPES.join(', ')}.`,
      details: {flag, value},
    })
  }
  return parsed
}
