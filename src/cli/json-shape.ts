/**
 * The structural shape of a `--json` envelope, written as a JSON Schema subset: objects with
 * their properties (required = present in every sample), arrays with the merged shape of their
 * items, and leaf types. `schemas/<command>.json` holds the checked-in shapes, each merged from
 * several runs (`shapeOfSamples`: a preset, a config file and a model directory for inspect-layout;
 * errors with and without details), so a field that only some runs carry is optional, not required.
 * test/e2e/json-schemas.test.ts fails when a command's output drifts from them (regenerate with
 * `npm run schemas` when the change is meant) and validates every run against the checked-in file
 * (`shapeViolations`).
 */
export type Shape =
  | {readonly type: 'object'; readonly properties: Readonly<Record<string, Shape>>; readonly required: readonly string[]}
  /** An object whose keys depend on something else (an error's `details` depend on its code). */
  | {readonly type: 'object'; readonly description: string}
  | {readonly type: 'array'; readonly items: Shape | Record<string, never>}
  | {readonly type: 'string' | 'number' | 'boolean' | 'null'}
  | {readonly anyOf: readonly Shape[]}

type ClosedObject = Extract<Shape, {properties: unknown}>

function isObject(s: Shape): s is Extract<Shape, {type: 'object'}> {
  return 'type' in s && s.type === 'object'
}

function isClosedObject(s: Shape): s is ClosedObject {
  return isObject(s) && 'properties' in s
}

export function shapeOf(value: unknown): Shape {
  if (value === null) return {type: 'null'}
  if (Array.isArray(value)) {
    const items = value.map(shapeOf)
    return {type: 'array', items: items.length === 0 ? {} : items.reduce(mergeShapes)}
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined)
    const keys = entries.map(([k]) => k).sort()
    const properties = Object.fromEntries(keys.map((k) => [k, shapeOf((value as Record<string, unknown>)[k])]))
    return {type: 'object', properties, required: keys}
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return {type: typeof value} as Shape
  throw new TypeError(`not JSON: ${typeof value}`)
}

/** The shape that describes samples of both a and b. */
export function mergeShapes(a: Shape, b: Shape): Shape {
  if (JSON.stringify(a) === JSON.stringify(b)) return a
  if (isObject(a) && isObject(b)) {
    if (!isClosedObject(a)) return a
    if (!isClosedObject(b)) return b
    const keys = [...new Set([...Object.keys(a.properties), ...Object.keys(b.properties)])].sort()
    const properties = Object.fromEntries(
      keys.map((k) => [k, a.properties[k] && b.properties[k] ? mergeShapes(a.properties[k], b.properties[k]) : (a.properties[k] ?? b.properties[k])]),
    )
    return {type: 'object', properties, required: a.required.filter((k) => b.required.includes(k))}
  }
  if ('type' in a && 'type' in b && a.type === 'array' && b.type === 'array') {
    if (!('type' in a.items) && !('anyOf' in a.items)) return b
    if (!('type' in b.items) && !('anyOf' in b.items)) return a
    return {type: 'array', items: mergeShapes(a.items as Shape, b.items as Shape)}
  }
  const options = [...('anyOf' in a ? a.anyOf : [a]), ...('anyOf' in b ? b.anyOf : [b])]
  const merged: Shape[] = []
  for (const option of options) {
    const same = merged.findIndex((m) => 'type' in m && 'type' in option && m.type === option.type)
    if (same >= 0) merged[same] = mergeShapes(merged[same], option)
    else merged.push(option)
  }
  merged.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))
  return merged.length === 1 ? merged[0] : {anyOf: merged}
}

/** What the result type says that samples cannot show: a dotted path (`error.details`) to an object. */
export interface ShapeRules {
  /** Objects whose keys vary with something else, described instead of listed: path → description. */
  readonly open?: Readonly<Record<string, string>>
  /** Properties the type declares optional though every sample has them (`error.hint`). */
  readonly optional?: readonly string[]
}

/** The merged shape of several runs of one command, with `rules` applied. */
export function shapeOfSamples(samples: readonly unknown[], rules: ShapeRules = {}): Shape {
  if (samples.length === 0) throw new RangeError('shapeOfSamples needs at least one sample')
  let shape = samples.map(shapeOf).reduce(mergeShapes)
  for (const [path, description] of Object.entries(rules.open ?? {})) shape = atPath(shape, path.split('.'), () => ({type: 'object', description}))
  for (const path of rules.optional ?? []) {
    const keys = path.split('.')
    const key = keys.pop()!
    shape = atPath(shape, keys, (parent) => {
      if (!isClosedObject(parent) || !(key in parent.properties)) throw new RangeError(`no property ${path} in the samples`)
      return {...parent, required: parent.required.filter((k) => k !== key)}
    })
  }
  return shape
}

function atPath(shape: Shape, keys: readonly string[], change: (s: Shape) => Shape): Shape {
  if (keys.length === 0) return change(shape)
  if (!isClosedObject(shape) || !(keys[0] in shape.properties)) throw new RangeError(`no property ${keys.join('.')} in the samples`)
  return {...shape, properties: {...shape.properties, [keys[0]]: atPath(shape.properties[keys[0]], keys.slice(1), change)}}
}

/**
 * Where `value` breaks `shape` (JSON Schema semantics of the keywords used here: type, properties,
 * required, items, anyOf; other keys such as $schema, title and description are ignored). Empty
 * when it conforms. Each entry names the JSON path, e.g. `$.result.model.source: missing required preset`.
 */
export function shapeViolations(value: unknown, shape: Shape | Record<string, never>, at = '$'): string[] {
  if ('anyOf' in shape) {
    return shape.anyOf.some((option) => shapeViolations(value, option, at).length === 0) ? [] : [`${at}: matches none of ${shape.anyOf.map(typeName).join(' | ')}`]
  }
  if (!('type' in shape)) return []
  const actual = jsonType(value)
  if (actual !== shape.type) return [`${at}: expected ${shape.type}, got ${actual}`]
  if (shape.type === 'array') return (value as unknown[]).flatMap((item, i) => shapeViolations(item, shape.items, `${at}[${i}]`))
  if (!isClosedObject(shape)) return []
  const object = value as Record<string, unknown>
  return [
    ...shape.required.filter((k) => !(k in object)).map((k) => `${at}: missing required ${k}`),
    ...Object.entries(shape.properties).flatMap(([k, s]) => (k in object ? shapeViolations(object[k], s, `${at}.${k}`) : [])),
  ]
}

function jsonType(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

function typeName(s: Shape): string {
  return 'type' in s ? s.type : 'anyOf'
}
