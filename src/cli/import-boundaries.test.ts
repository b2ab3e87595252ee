// The folder rules the architecture relies on, checked on the sources (no lint step needed):
// - commands stay thin: no Ink/React, no native addon, no console output, no process.exit;
// - the layout engine and model specs are pure plan math: they import nothing that runs
//   (engine, transport, native, serve, bench, ui, commands);
// - UI components render state: from the runtime folders they take types only.
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

const SRC = fileURLToPath(new URL('..', import.meta.url))

interface Import {
  readonly file: string
  readonly specifier: string
  readonly typeOnly: boolean
}

function sourcesUnder(folder: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(folder)) {
    const path = join(folder, name)
    if (statSync(path).isDirectory()) out.push(...sourcesUnder(path))
    else if (/\.tsx?$/u.test(name) && !/\.test\.tsx?$/u.test(name)) out.push(path)
  }
  return out
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8')
  const found: Import[] = []
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'([^']+)'/gmu)) {
    found.push({file: relative(SRC, file), specifier: m[2], typeOnly: m[1] !== undefined})
  }
  return found
}

/** The src folder an import lands in ('' for packages and node builtins). */
function targetFolder(imp: Import): string {
  if (!imp.specifier.startsWith('.')) return ''
  const target = relative(SRC, join(SRC, imp.file, '..', imp.specifier))
  return target.split('/')[0]
}

describe('import boundaries', () => {
  it('commands parse, call one service and present: no Ink/React, no native addon, no console, no process.exit', () => {
    const offences: string[] = []
    for (const file of sourcesUnder(join(SRC, 'commands'))) {
      for (const imp of importsOf(file)) {
        if (/^(ink|react)(\/|$)/u.test(imp.specifier) || targetFolder(imp) === 'native') offences.push(`${imp.file} imports ${imp.specifier}`)
      }
      const text = readFileSync(file, 'utf8')
      if (/\bconsole\.\w+\(/u.test(text)) offences.push(`${relative(SRC, file)} writes with console.*`)
      if (/\bprocess\.exit\(/u.test(text)) offences.push(`${relative(SRC, file)} calls process.exit`)
    }
    expect(offences).toEqual([])
  })

  it('the layout engine and model specs import nothing that runs', () => {
    const allowed = new Set(['', 'layout', 'model', 'errors.js'])
    const offences = ['layout', 'model']
      .flatMap((folder) => sourcesUnder(join(SRC, folder)))
      .flatMap(importsOf)
      .filter((imp) => !allowed.has(targetFolder(imp)) || /^(ink|react|execa)(\/|$)/u.test(imp.specifier))
      .map((imp) => `${imp.file} imports ${imp.specifier}`)
    expect(offences).toEqual([])
  })

  it('UI components take only types from the runtime folders', () => {
    const runtime = new Set(['native', 'transport', 'serve', 'bench', 'engine', 'commands'])
    const offences = sourcesUnder(join(SRC, 'ui'))
      .flatMap(importsOf)
      .filter((imp) => runtime.has(targetFolder(imp)) && !imp.typeOnly)
      .map((imp) => `${imp.file} imports ${imp.specifier} (values, not only types)`)
    expect(offences).toEqual([])
  })

  it('finds the imports it checks (the scanner itself works)', () => {
    const own = importsOf(fileURLToPath(import.meta.url))
    expect(own.map((i) => i.specifier)).toContain('node:fs')
    expect(targetFolder({file: 'ui/X.tsx', specifier: '../bench/transfer/types.js', typeOnly: true})).toBe('bench')
    expect(targetFolder({file: 'layout/a.ts', specifier: '../errors.js', typeOnly: false})).toBe('errors.js')
  })
})
