// `--model` is resolved by one resolver: the same bad input gets the same error code and exit code
// from every command that takes it (inspect-layout and bench transfer read a layout; generate and
// serve run the model). Real processes over dist/, as a user runs them.
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

import {findPreset} from '../../src/model/index.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'hpd-model-resolution-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))
const SECRET = 'sk-live-hpd-resolution-4c1d'

const COMMANDS: Readonly<Record<string, readonly string[]>> = {
  'inspect-layout': ['inspect-layout'],
  'bench transfer': ['bench', 'transfer', '--prompt-tokens', '512', '--requests', '1'],
  generate: ['generate', '--prompt', 'x', '--max-tokens', '2'],
  serve: ['serve', '--port', '0'],
}

async function hpd(args: readonly string[]) {
  const run = await execa('node', ['bin/run.js', ...args, '--json'], {cwd: ROOT, reject: false, timeout: 60_000, env: {NODE_ENV: 'production', HPD_CACHE_DIR: join(scratch, 'cache')}})
  let code = 'no envelope'
  try {
    code = JSON.parse(run.stdout).error?.code ?? 'ok'
  } catch {
    // reported below through `code`
  }
  return {exitCode: run.exitCode, signal: run.signal, code, stdout: run.stdout}
}

function inputs(): [string, string, string, number][] {
  const llama = findPreset('tiny-llama')!.config
  const write = (name: string, text: string) => {
    const path = join(scratch, name)
    writeFileSync(path, text)
    return path
  }
  const fifo = join(scratch, 'fifo-config.json')
  execFileSync('mkfifo', [fifo])
  const dirWithDirConfig = join(scratch, 'dir-model')
  mkdirSync(join(dirWithDirConfig, 'config.json'), {recursive: true})
  return [
    ['a character device', '/dev/zero', 'HPD_MODEL_NOT_A_FILE', 2],
    ['a FIFO', fifo, 'HPD_MODEL_NOT_A_FILE', 2],
    ['a directory whose config.json is a directory', dirWithDirConfig, 'HPD_MODEL_NOT_A_FILE', 2],
    ['a path that does not exist', join(scratch, 'missing'), 'HPD_MODEL_NOT_FOUND', 2],
    ['a secrets file', write('secrets.env', `API_KEY=${SECRET}\n`), 'HPD_MODEL_BAD_JSON', 3],
    ['architectures ["constructor"]', write('proto.json', JSON.stringify({...llama, architectures: ['constructor']})), 'HPD_MODEL_UNKNOWN_ARCHITECTURE', 3],
    ['head_dim 2^53', write('huge.json', JSON.stringify({...llama, head_dim: 2 ** 53})), 'HPD_MODEL_BAD_KEY', 3],
  ]
}

describe('one --model resolver (process)', () => {
  it('every command answers the same bad --model with the same code and exit code, quoting no file text', async () => {
    const table: string[] = []
    const expected: string[] = []
    for (const [what, model, code, exit] of inputs()) {
      for (const [name, args] of Object.entries(COMMANDS)) {
        const run = await hpd([...args, '--model', model])
        table.push(`${what} | ${name} | ${run.code} ${run.exitCode}${run.signal ? ` ${run.signal}` : ''}`)
        expected.push(`${what} | ${name} | ${code} ${exit}`)
        expect(run.stdout).not.toContain(SECRET)
      }
    }
    expect(table).toEqual(expected)
  })

  it('a layout-only preset: a layout for inspect-layout, one code for the commands that run a model', async () => {
    expect((await hpd(['inspect-layout', '--model', 'nemotron-h-8b'])).exitCode).toBe(0)
    for (const args of [COMMANDS.generate, COMMANDS.serve]) {
      const run = await hpd([...args, '--model', 'nemotron-h-8b'])
      expect([run.code, run.exitCode]).toEqual(['HPD_ENGINE_PRESET_WITHOUT_WEIGHTS', 3])
    }
  })

  it('generate: numeric flags past their documented maxima get their own codes (exit 2)', async () => {
    const cases: [string[], string][] = [
      [['--max-tokens', '9000'], 'HPD_USAGE_BAD_MAX_TOKENS'], // prompt + 9000 > tiny's 8192-token context
      [['--max-tokens', '1000000000000'], 'HPD_USAGE_BAD_MAX_TOKENS'],
      [['--top-k', '100000000000000000000'], 'HPD_USAGE_BAD_TOP_K'],
      [['--seed', '-1'], 'HPD_USAGE_BAD_SEED'],
      [['--seed', '4294967296'], 'HPD_USAGE_BAD_SEED'],
      [['--temperature', 'Infinity'], 'HPD_USAGE_BAD_TEMPERATURE'],
      [['--tp', '100000'], 'HPD_USAGE_BAD_TP'],
    ]
    for (const [flags, code] of cases) {
      const run = await hpd(['generate', '--model', 'tiny', '--prompt', 'x', ...flags])
      expect([flags.join(' '), run.code, run.exitCode]).toEqual([flags.join(' '), code, 2])
    }
  })
})
