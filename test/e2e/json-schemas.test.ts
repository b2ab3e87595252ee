// The `--json` contract: each command's envelope, run as a user runs it, keeps the shape checked in
// under schemas/<command>.json (src/cli/json-shape.ts). A deliberate change regenerates them:
// `npm run schemas`, then review the diff like code.
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {describe, expect, it} from 'vitest'

import {shapeOf} from '../../src/cli/json-shape.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCHEMAS = join(ROOT, 'schemas')
const UPDATE = process.env.HPD_UPDATE_SCHEMAS === '1'

const COMMANDS: [string, string[]][] = [
  // vLLM 0.20: its pitfalls include fixed ones (fixedIn an object) and open ones (null), so the shape has both
  ['inspect-layout', ['inspect-layout', '--model', 'nemotron-h-8b', '--tp', '2', '--decode-tp', '1', '--vllm-version', '0.20']],
  ['doctor', ['doctor', '--root', join(ROOT, 'test', 'fixtures', 'doctor', 'ib-8gpu-peermem')]],
  ['generate', ['generate', '--model', 'tiny-hybrid', '--prompt', 'Hello', '--max-tokens', '4']],
  ['bench-transfer', ['bench', 'transfer', '--model', 'tiny-hybrid', '--prompt-tokens', '40', '--requests', '1']],
  ['bench-serve', ['bench', 'serve', '--spawn', '--requests', '4', '--concurrency', '2', '--prompt-tokens', '16', '--output-tokens', '4']],
  ['error', ['inspect-layout', '--model', 'no-such-model']],
]

describe('--json output schemas', () => {
  it.each(COMMANDS)('%s keeps the shape in schemas/', async (name, args) => {
    const run = await execa('node', ['bin/run.js', ...args, '--json'], {cwd: ROOT, reject: false, timeout: 60_000, env: {NODE_ENV: 'production', CI: '1'}})
    const shape = shapeOf(JSON.parse(run.stdout))
    const file = join(SCHEMAS, `${name}.json`)
    const text = `${JSON.stringify({$schema: 'https://json-schema.org/draft/2020-12/schema', title: `hpd ${args.slice(0, args[0] === 'bench' ? 2 : 1).join(' ')} --json`, ...shape}, null, 2)}\n`
    if (UPDATE) {
      mkdirSync(SCHEMAS, {recursive: true})
      writeFileSync(file, text)
    }
    expect(existsSync(file), `${file} is missing: run \`npm run schemas\``).toBe(true)
    expect(JSON.parse(text)).toEqual(JSON.parse(readFileSync(file, 'utf8')))
  })
})
