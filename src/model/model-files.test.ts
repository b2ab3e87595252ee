import {execFileSync} from 'node:child_process'
import {closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync, ftruncateSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {FILE_LIMITS, loadModelSpec, locateModel, readModelFile} from './index.js'

const scratch = mkdtempSync(join(tmpdir(), 'hpd-model-files-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))

const SECRET = 'AKIA-hpd-test-secret-7f3a9c'

function file(name: string, content: string | Buffer): string {
  const path = join(scratch, name)
  writeFileSync(path, content)
  return path
}

/** Everything an error puts in front of a user: message, hint and details as the envelope shows them. */
function shown(fn: () => unknown): string {
  return JSON.stringify(thrown(fn).toJSON())
}

describe('model files are refused before reading when special or oversized', () => {
  it('a character device (/dev/zero) is refused at once, not read forever', () => {
    const started = performance.now()
    const e = thrown(() => loadModelSpec('/dev/zero'))
    expect([e.code, e.exitCode, e.details?.kind]).toEqual(['HPD_MODEL_NOT_A_FILE', 2, 'a character device'])
    expect(performance.now() - started).toBeLessThan(2000)
  })

  it('a FIFO with no writer is refused without blocking on open', () => {
    const fifo = join(scratch, 'config-fifo.json')
    execFileSync('mkfifo', [fifo])
    const e = thrown(() => loadModelSpec(fifo))
    expect([e.code, e.details?.kind]).toEqual(['HPD_MODEL_NOT_A_FILE', 'a FIFO'])
  })

  it('a directory named config.json inside a model directory is refused', () => {
    const dir = join(scratch, 'dir-model')
    mkdirSync(join(dir, 'config.json'), {recursive: true})
    expect(thrown(() => loadModelSpec(dir)).code).toBe('HPD_MODEL_NOT_A_FILE')
  })

  it('a file over the config cap is refused from its size alone (sparse: nothing is read)', () => {
    const path = join(scratch, 'huge.json')
    const fd = openSync(path, 'w')
    ftruncateSync(fd, FILE_LIMITS.configBytes + 1)
    closeSync(fd)
    const e = thrown(() => loadModelSpec(path))
    expect([e.code, e.exitCode, e.details?.maxBytes]).toEqual(['HPD_MODEL_FILE_TOO_LARGE', 2, FILE_LIMITS.configBytes])
  })

  it('a file that reports size 0 but has content (/proc) is read, bounded by the cap', () => {
    const bytes = readModelFile('/proc/self/status', {what: 'test file', maxBytes: 1 << 20})
    expect(bytes.toString('utf8')).toContain('Pid:')
    expect(thrown(() => readModelFile('/proc/self/status', {what: 'test file', maxBytes: 16})).code).toBe('HPD_MODEL_FILE_TOO_LARGE')
  })

  it('a symlink to a regular file is followed; a dangling one is not found', () => {
    const target = file('real-config.json', JSON.stringify({architectures: ['Nope']}))
    symlinkSync(target, join(scratch, 'link.json'))
    expect(thrown(() => loadModelSpec(join(scratch, 'link.json'))).code).toBe('HPD_MODEL_UNKNOWN_ARCHITECTURE')
    symlinkSync(join(scratch, 'gone.json'), join(scratch, 'dangling.json'))
    expect(thrown(() => loadModelSpec(join(scratch, 'dangling.json'))).code).toBe('HPD_MODEL_NOT_FOUND')
  })
})

describe('errors never quote the file', () => {
  it('a secrets file given as --model: the JSON error says where, not what', () => {
    const path = file('secrets.env', `${SECRET}=hunter2\nOTHER=1\n`)
    const e = thrown(() => loadModelSpec(path))
    expect([e.code, e.exitCode]).toEqual(['HPD_MODEL_BAD_JSON', 3])
    expect(shown(() => loadModelSpec(path))).not.toContain(SECRET)
    expect(shown(() => loadModelSpec(path))).not.toContain('hunter2')
  })

  it('broken JSON reports line and column only', () => {
    const path = file('broken.json', `{\n  "architectures": ["${SECRET}"],\n  "x": oops\n}`)
    const e = thrown(() => loadModelSpec(path))
    expect(e.message).toMatch(/at line 3 column \d+|at byte \d+/u)
    expect(shown(() => loadModelSpec(path))).not.toContain(SECRET)
  })

  it('string values under known keys are described, not quoted', () => {
    const base = {architectures: ['LlamaForCausalLM'], hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, vocab_size: 100}
    for (const bad of [{architectures: [SECRET]}, {model_type: SECRET, architectures: undefined}, {hidden_size: SECRET}, {torch_dtype: SECRET}, {head_dim: [SECRET]}, {num_key_value_heads: {[SECRET]: SECRET}}]) {
      const path = file('strings.json', JSON.stringify({...base, ...bad}))
      const text = shown(() => loadModelSpec(path))
      expect(text).not.toContain(SECRET)
      expect(text).toMatch(/HPD_MODEL_/u)
    }
  })
})

describe('locateModel: one classification of --model', () => {
  it('presets win, directories mean their config.json, files are the config of their directory', () => {
    expect(locateModel('Tiny')).toMatchObject({kind: 'preset', preset: {name: 'tiny-hybrid'}})
    const dir = join(scratch, 'located')
    mkdirSync(dir, {recursive: true})
    expect(locateModel(dir)).toEqual({kind: 'path', configPath: join(dir, 'config.json'), dir})
    const cfg = file('located/custom.json', '{}')
    expect(locateModel(cfg)).toEqual({kind: 'path', configPath: cfg, dir})
  })

  it('empty, NUL-bearing and missing paths are not found (exit 2)', () => {
    for (const model of ['', 'a\0b', join(scratch, 'nope', 'config.json')]) {
      const e = thrown(() => locateModel(model))
      expect([e.code, e.exitCode]).toEqual(['HPD_MODEL_NOT_FOUND', 2])
    }
  })
})
