import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

const README = fileURLToPath(new URL('../../README.md', import.meta.url))

/**
 * The top-level README's "Error codes" table, for tests: `exitOf(code)` is the documented exit code
 * of `code`, or undefined when the table does not list it. Rows like `HPD_NATIVE_*` cover every
 * code with that prefix.
 */
export function documentedErrorCodes(): {exitOf(code: string): number | undefined; readonly codes: ReadonlyMap<string, number>} {
  const text = readFileSync(README, 'utf8')
  const start = text.indexOf('### Error codes')
  if (start < 0) throw new Error('README.md has no "### Error codes" section')
  const section = text.slice(start, text.indexOf('\n### ', start + 1))
  const codes = new Map<string, number>()
  const prefixes: [string, number][] = []
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim())
    if (cells.length < 4 || !/^\d+$/u.test(cells[2])) continue
    const exit = Number(cells[2])
    for (const m of cells[1].matchAll(/`(HPD_[A-Z0-9_]*\*?)`/gu)) {
      if (m[1].endsWith('*')) prefixes.push([m[1].slice(0, -1), exit])
      else codes.set(m[1], exit)
    }
  }
  return {
    codes,
    exitOf(code) {
      if (codes.has(code)) return codes.get(code)
      return prefixes.find(([prefix]) => code.startsWith(prefix))?.[1]
    },
  }
}
