/** Human units for findings: binary sizes ('64 KiB', '24 GiB'), link rates, plurals. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'unlimited'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  const text = value >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1)
  return `${text} ${units[unit]}`
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

export function hex4(n: number): string {
  return n.toString(16).padStart(4, '0')
}

/** 'a, b and c' */
export function listText(items: readonly string[]): string {
  if (items.length <= 1) return items.join('')
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`
}
