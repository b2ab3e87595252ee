import {ModelConfigError} from '../errors.js'
import {badConfigKey} from './config-errors.js'
import {CONFIG_LIMITS} from './limits.js'

/**
 * Typed access to a raw config.json object. Every failure is a ModelConfigError that names the
 * key at fault, so a user can fix their config without reading hpd's source. Messages quote a
 * number or boolean found under a key, never a string or any other text of the file (a file
 * passed as `--model` may be anything, a secret included): see `describeFound`.
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

  /**
   * A positive integer no larger than `max` under the first present alias; `fallback` when all are
   * absent. `max` defaults to CONFIG_LIMITS.count; geometry keys pass their own (see limits.ts).
   */
  positiveInt(keys: string | readonly string[], fallback?: number, max: number = CONFIG_LIMITS.count): number {
    return this.typed(keys, fallback, `a positive integer ≤ ${max}`, (v): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= max)
  }

  /** A non-negative integer no larger than `max`; `fallback` when absent. */
  nonNegativeInt(key: string, fallback: number, max: number = CONFIG_LIMITS.count): number {
    return this.typed(key, fallback, `a non-negative integer ≤ ${max}`, (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max)
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

  /** A per-layer list of strings (at most CONFIG_LIMITS.layers entries). */
  stringArray(key: string): readonly string[] | undefined {
    if (!this.has(key)) return undefined
    const value = this.raw[key]
    const expected = `an array of at most ${CONFIG_LIMITS.layers} strings`
    if (!Array.isArray(value) || value.length > CONFIG_LIMITS.layers || value.some((v) => typeof v !== 'string')) throw this.bad(key, value, expected)
    return value as string[]
  }

  /** A per-layer list of layer indices (at most CONFIG_LIMITS.layers entries, each below it). */
  intArray(key: string): readonly number[] | undefined {
    if (!this.has(key)) return undefined
    const value = this.raw[key]
    const max = CONFIG_LIMITS.layers
    if (!Array.isArray(value) || value.length > max || value.some((v) => typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= max)) {
      throw this.bad(key, value, `an array of at most ${max} integers in [0, ${max})`)
    }
    return value as number[]
  }

  bad(key: string, value: unknown, expected: string): ModelConfigError {
    return badConfigKey(this.family, key, value, expected)
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
