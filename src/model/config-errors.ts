import {ModelConfigError} from '../errors.js'

/** HPD_MODEL_BAD_KEY for `key` of `family`'s config: names the key and describes what it holds. */
export function badConfigKey(family: string, key: string, value: unknown, expected: string): ModelConfigError {
  const found = describeFound(value)
  return new ModelConfigError('HPD_MODEL_BAD_KEY', `${family} config key \`${key}\` is ${found}; expected ${expected}`, {
    hint: `Fix \`${key}\` in config.json.`,
    details: {key, found},
  })
}

/**
 * What a config value is, for an error message, without quoting file text: numbers and booleans
 * as themselves (what a user fixes), anything else by its type and size only. Never recursive, so
 * a value nested 100,000 levels deep costs nothing.
 */
export function describeFound(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null) return 'null'
  if (value === undefined) return 'absent'
  if (typeof value === 'string') return `a string (${value.length} characters)`
  if (Array.isArray(value)) return `an array (${value.length} ${value.length === 1 ? "item" : "items"})`
  return 'an object'
}
