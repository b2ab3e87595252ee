import {ModelConfigError} from '../errors.js'

/**
 * Typed access to a raw config.json object. Every failure is a ModelConfigError that names the
 * key and the value at fault, so a user can fix their config without reading hpd's source.
 */
export class ConfigReader {
  constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    private readonly family: string,
  ) {}

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null
  }

  /** First present key of `keys` (aliases), or undefined. */
  pick(...keys: string[]): string | undefined {
    return keys.find((k) => this.has(k))
  }

  /** A positive integer under the first present alias; `fallback` when all are absent. */
  positiveInt(keys: string | readonly string[], fallback?: number): number {
    return this.typed(keys, fallback, 'a positive integer', (v): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0)
  }

  /** A string under the first present alias; `fallback` when all are absent. */
  string(keys: string | readonly string[], fallback?: string): string {
    return this.typed(keys, fallback, 'a string', (v): v is string => typeof v === 'string')
  }

  /** The value under the first present alias, checked by `accepts`; a missing or bad key throws naming it. */
  private typed<T>(keys: string | readonly string[], fallback: T | undefined, expected: string, accepts: (value: unknown) => value is T): T {
    const names = typeof keys === 'string' ? [keys] : keys
    const key = this.pick(...names)
    if (key === undefined) {
      if (fallback !== undefined) return fallback
      throw this.missing(names)
    }
    const value = this.raw[key]
    if (!accepts(value)) throw this.bad(key, value, expected)
    return value
  }

  stringArray(key: string): readonly string[] | undefined {
    if (!this.has(key)) return undefined
    const value = this.raw[key]
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw this.bad(key, value, 'an array of strings')
    return value as string[]
  }

  intArray(key: string): readonly number[] | undefined {
    if (!this.has(key)) return undefined
    const value = this.raw[key]
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'number' || !Number.isInteger(v) || v < 0)) {
      throw this.bad(key, value, 'an array of non-negative integers')
    }
    return value as number[]
  }

  bad(key: string, value: unknown, expected: string): ModelConfigError {
    return new ModelConfigError('HPD_MODEL_BAD_KEY', `${this.family} config key \`${key}\` = ${short(value)}: expected ${expected}`, {
      hint: `Fix \`${key}\` in config.json.`,
      details: {key, value: short(value)},
    })
  }

  missing(keys: readonly string[]): ModelConfigError {
    const shown = keys.map((k) => `\`${k}\``).join(' or ')
    return new ModelConfigError('HPD_MODEL_MISSING_KEY', `${this.family} config has no ${shown}`, {
      hint: `Add ${shown} to config.json (see the model card for its value).`,
      details: {key: keys[0]},
    })
  }

  contradiction(message: string, details: Record<string, unknown>): ModelConfigError {
    return new ModelConfigError('HPD_MODEL_CONTRADICTORY_KEYS', `${this.family} config: ${message}`, {
      hint: 'Make the keys agree; hpd does not guess which one is right.',
      details,
    })
  }
}

function short(value: unknown): string {
  const text = JSON.stringify(value)
  if (text === undefined) return String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
