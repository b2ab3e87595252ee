// The README's inspect-layout refusal table names every HPD_LAYOUT_* code the layout engine can
// throw, and src/layout/README.md's "Pairs that cannot map" table every code a pair is refused with: the codes are read from the sources, so a new refusal cannot go undocumented.
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

const LAYOUT = fileURLToPath(new URL('.', import.meta.url))
const ROOT = join(LAYOUT, '..', '..')

/** Codes inspect-layout cannot meet: it plans with default block ids (only serving passes its own). */
const NOT_FROM_INSPECT_LAYOUT = new Set(['HPD_LAYOUT_BAD_BLOCK_IDS'])

function layoutSources(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return layoutSources(path)
    return /\.ts$/u.test(e.name) && !/\.test\.ts$/u.test(e.name) ? [path] : []
  })
}

function codesIn(text: string, prefix: string): Set<string> {
  return new Set([...text.matchAll(new RegExp(`'(${prefix}[A-Z0-9_]*[A-Z0-9])'`, 'gu'))].map((m) => m[1]))
}

function tableCodes(markdown: string, from: string, to: string): Set<string> {
  const start = markdown.indexOf(from)
  expect(start, `no "${from}"`).toBeGreaterThanOrEqual(0)
  const section = markdown.slice(start, markdown.indexOf(to, start))
  return new Set([...section.matchAll(/^\| `(HPD_[A-Z0-9_]+)` \|/gmu)].map((m) => m[1]))
}

describe('layout refusals are documented', () => {
  it('README (inspect-layout): every HPD_LAYOUT_* code the layout engine throws', () => {
    const thrown = new Set(layoutSources(LAYOUT).flatMap((f) => [...codesIn(readFileSync(f, 'utf8'), 'HPD_LAYOUT_')]))
    expect(thrown.size).toBeGreaterThan(10)
    const table = tableCodes(readFileSync(join(ROOT, 'README.md'), 'utf8'), 'Only pairs whose bytes cannot correspond are refused', '\n\n`HPD_LAYOUT_KERNEL_BLOCK_MISMATCH` is retired')
    expect([...thrown].filter((c) => !NOT_FROM_INSPECT_LAYOUT.has(c) && !table.has(c))).toEqual([])
  })

  it('src/layout/README.md: every code a pair is refused with (checkPairMappable, planTpMapping), in the pair table', () => {
    // HPD_LAYOUT_PART_MISMATCH is planTpMapping's guard behind checkPairMappable, documented under the table.
    const pairCodes = new Set(['pair-compat.ts', 'tp-mapping.ts'].flatMap((f) => [...codesIn(readFileSync(join(LAYOUT, f), 'utf8'), 'HPD_LAYOUT_')]).filter((c) => c !== 'HPD_LAYOUT_PART_MISMATCH'))
    const table = tableCodes(readFileSync(join(LAYOUT, 'README.md'), 'utf8'), '## Pairs that cannot map', '\nEngine-level refusals')
    expect([...pairCodes].sort()).toEqual([...table].sort())
  })
})
