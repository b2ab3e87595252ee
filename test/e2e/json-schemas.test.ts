// The `--json` contract: each command's envelope, run as a user runs it, keeps the shape checked in
// under schemas/<command>.json (src/cli/json-shape.ts). A schema is merged from several runs, so a
// field that varies with the input (a preset's `builtFrom`, a file's `path`) or with the error
// (`details`) is optional, and every run is validated against the checked-in file. A deliberate
// change regenerates them: `npm run schemas`, then review the diff like code.
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {describe, expect, it} from 'vitest'

import {type Shape, type ShapeRules, shapeOfSamples, shapeViolations} from '../../src/cli/json-shape.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCHEMAS = join(ROOT, 'schemas')
const UPDATE = process.env.HPD_UPDATE_SCHEMAS === '1'
const CONFIGS = join(ROOT, 'test', 'fixtures', 'configs')

interface SchemaCase {
  readonly title: string
  /** Runs whose envelopes the schema describes (merged) and which must each validate against it. */
  readonly runs: readonly (readonly string[])[]
  readonly rules?: ShapeRules
}

const SCHEMA_CASES: Readonly<Record<string, SchemaCase>> = {
  'inspect-layout': {
    title: 'hpd inspect-layout --json',
    runs: [
      // vLLM 0.20: its pitfalls include fixed ones (fixedIn an object) and open ones (null), so the shape has both
      ['inspect-layout', '--model', 'nemotron-h-8b', '--tp', '2', '--decode-tp', '1', '--vllm-version', '0.20'],
      // a config.json file (model.source: kind file + path), kernel blocks that differ between the sides
      ['inspect-layout', '--model', join(CONFIGS, 'nemotron-h-kv2-shaped.json'), '--tp', '4', '--decode-tp', '2'],
      // a model directory
      ['inspect-layout', '--model', join(CONFIGS, 'nemotron-h-dir'), '--attention-backend', 'cpu'],
    ],
  },
  doctor: {title: 'hpd doctor --json', runs: [['doctor', '--root', join(ROOT, 'test', 'fixtures', 'doctor', 'ib-8gpu-peermem')]]},
  generate: {title: 'hpd generate --json', runs: [['generate', '--model', 'tiny-hybrid', '--prompt', 'Hello', '--max-tokens', '4']]},
  'bench-transfer': {
    title: 'hpd bench transfer --json',
    runs: [
      ['bench', 'transfer', '--model', 'tiny-hybrid', '--prompt-tokens', '40', '--requests', '1'],
      // attention only: no Mamba state dtypes in the result
      ['bench', 'transfer', '--model', 'tiny-llama', '--prompt-tokens', '40', '--requests', '1'],
    ],
  },
  'bench-serve': {title: 'hpd bench serve --json', runs: [['bench', 'serve', '--spawn', '--requests', '4', '--concurrency', '2', '--prompt-tokens', '16', '--output-tokens', '4']]},
  error: {
    title: 'hpd inspect-layout --json',
    runs: [
      // a flag's value at fault: details {flag, value}
      ['inspect-layout', '--model', 'no-such-model'],
      // not a flag: details name a config key and the TP size
      ['inspect-layout', '--model', 'tiny-hybrid', '--tp', '3'],
      // no details at all
      ['inspect-layout', '--model', 'tiny-hybrid', '--output', 'layout.svg'],
    ],
    // HpdError.toJSON(): details are each code's own; hint is optional in the type (most codes have one)
    rules: {open: {'error.details': "the error's own fields (e.g. flag and value for a flag at fault); they depend on error.code"}, optional: ['error.hint']},
  },
}

async function envelope(args: readonly string[]): Promise<unknown> {
  const run = await execa('node', ['bin/run.js', ...args, '--json'], {cwd: ROOT, reject: false, timeout: 60_000, env: {NODE_ENV: 'production', CI: '1'}})
  return JSON.parse(run.stdout)
}

describe('--json output schemas', () => {
  it.each(Object.entries(SCHEMA_CASES))('%s keeps the shape in schemas/, and every run validates against it', {timeout: 180_000}, async (name, {title, runs, rules}) => {
    const envelopes: unknown[] = []
    for (const args of runs) envelopes.push(await envelope(args)) // one at a time: bench runs spawn workers
    const file = join(SCHEMAS, `${name}.json`)
    const text = `${JSON.stringify({$schema: 'https://json-schema.org/draft/2020-12/schema', title, ...shapeOfSamples(envelopes, rules)}, null, 2)}\n`
    if (UPDATE) {
      mkdirSync(SCHEMAS, {recursive: true})
      writeFileSync(file, text)
    }
    expect(existsSync(file), `${file} is missing: run \`npm run schemas\``).toBe(true)
    const checkedIn = JSON.parse(readFileSync(file, 'utf8')) as Shape
    expect(JSON.parse(text)).toEqual(checkedIn)
    envelopes.forEach((e, i) => expect(shapeViolations(e, checkedIn), runs[i].join(' ')).toEqual([]))
  })
})
