// Every place that lists the presets a user can run lists all of them: the --model help of the
// commands that run the engine (written from ENGINE_PRESETS, src/model/presets.ts) and the README's
// synopses and tables, which are prose and so are checked here against the preset table.
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

import {ENGINE_PRESETS, PRESETS} from '../model/index.js'
import Generate from './generate.js'
import Serve from './serve.js'
import Worker from './worker.js'

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')

/** The README line that starts with `start` (a synopsis). */
function line(start: string): string {
  const found = README.split('\n').find((l) => l.startsWith(start))
  if (found === undefined) throw new Error(`README.md has no line starting with ${start}`)
  return found
}

describe('preset lists', () => {
  it('the engine presets are the tiny ones, tiny-hybrid-kv1 included', () => {
    expect(ENGINE_PRESETS).toContain('tiny-hybrid-kv1')
    expect(ENGINE_PRESETS.every((n) => n.startsWith('tiny'))).toBe(true)
  })

  it.each([
    ['generate', Generate.flags.model],
    ['serve', Serve.flags.model],
    ['worker', Worker.flags.model],
  ] as const)('%s --help names every engine preset', (_command, flag) => {
    const text = `${flag.summary ?? ''} ${flag.description ?? ''}`
    for (const name of ENGINE_PRESETS) expect(text).toMatch(new RegExp(`\\b${name}\\b(?!-)`, 'u'))
  })

  it.each([['hpd serve [--model '], ['hpd generate --prompt TEXT [--model ']])('README synopsis "%s…" names every engine preset', (start) => {
    const options = line(start).split('[--model ')[1].split(']')[0].split('|')
    const named = options.map((o) => (o === 'tiny' ? 'tiny-hybrid' : o))
    for (const name of ENGINE_PRESETS) expect(named).toContain(name)
  })

  it('README: the inspect-layout preset paragraph names every preset, the families table every engine preset', () => {
    const presets = README.slice(README.indexOf('Presets: `nemotron-h-8b`'), README.indexOf('; or a Hugging Face `config.json`'))
    for (const p of PRESETS) expect(presets).toContain(`\`${p.name}\``)
    const table = README.slice(README.indexOf('## Supported families'), README.indexOf('Falcon-H1-0.5B has'))
    for (const name of ENGINE_PRESETS) expect(table).toContain(`\`${name}\``)
  })
})
