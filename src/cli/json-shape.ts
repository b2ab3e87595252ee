/**
 * The structural shape of a `--json` envelope, written as a JSON Schema subset: objects with
 * their properties (required = present in every sample), arrays with the merged shape of their
 * items, and leaf types. `schemas/<command>.json` holds the checked-in shapes; a test fails when a
 * command's output drifts from them (regenerate with `npm run schemas` when the change is meant).
 */
export type Shape =
  | {readonly type: 'object'; readonly properties: Readonly<Record<string, Shape>>; readonly required: readonly string[]}
  | {readonly type: 'array'; readonly items: Shape | Record<string, never>}
  | {readonly type: 'string' | 'number' | 'boolean' | 'null'}
  | {readonly anyOf: readonly Shape[]}

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
  if ('type' in a && 'type' in b && a.type === 'object' && b.type === 'object') {
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
