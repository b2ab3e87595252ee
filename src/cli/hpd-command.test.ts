import {Flags} from '@oclif/core'
import {afterEach, describe, expect, it, vi} from 'vitest'

import {ModelConfigError} from '../errors.js'
import {packageRoot} from '../native/load-addon.js'
import {HpdCommand} from './hpd-command.js'

class Echo extends HpdCommand<{value: number}> {
  static override flags = {value: Flags.integer({required: true}), fail: Flags.boolean(), dir: Flags.directory({exists: true})}
  async run(): Promise<{value: number}> {
    const {flags} = await this.parse(Echo)
    if (flags.fail) throw new ModelConfigError('HPD_MODEL_TEST', 'bad key `x` = 1', {hint: 'fix x'})
    this.addWarning('careful')
    return {value: flags.value}
  }
}

function capture(): {out: () => string; err: () => string} {
  let out = ''
  let err = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true))
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true))
  return {out: () => out, err: () => err}
}

describe('HpdCommand envelope', () => {
  afterEach(() => {
    vi.restoreAllMocks()
    process.exitCode = undefined
  })

  it('wraps the result in the success envelope with warnings', async () => {
    const io = capture()
    await Echo.run(['--value', '7', '--json'], {root: packageRoot()})
    vi.restoreAllMocks()
    const envelope = JSON.parse(io.out())
    expect(envelope).toMatchObject({ok: true, schemaVersion: 1, result: {value: 7}, warnings: ['careful']})
  })

  it('turns a typed error into an error envelope and its exit code', async () => {
    const io = capture()
    await Echo.run(['--value', '1', '--fail', '--json'], {root: packageRoot()})
    vi.restoreAllMocks()
    const envelope = JSON.parse(io.out())
    expect(envelope).toMatchObject({ok: false, error: {code: 'HPD_MODEL_TEST', message: 'bad key `x` = 1', hint: 'fix x'}})
    expect(process.exitCode).toBe(3)
  })

  it('maps flag parse errors to usage errors (exit 2) without a stack trace', async () => {
    const io = capture()
    await Echo.run(['--value', 'seven'], {root: packageRoot()})
    vi.restoreAllMocks()
    expect(process.exitCode).toBe(2)
    expect(io.err()).toMatch(/^error HPD_USAGE: /u)
    expect(io.err()).not.toMatch(/\n\s+at /u)
  })

  it('maps a flag whose own check fails (missing directory) to a usage error naming the flag', async () => {
    const io = capture()
    await Echo.run(['--value', '1', '--dir', '/no/such/dir', '--json'], {root: packageRoot()})
    vi.restoreAllMocks()
    expect(process.exitCode).toBe(2)
    const envelope = JSON.parse(io.out())
    expect(envelope.error.code).toBe('HPD_USAGE')
    expect(envelope.error.message).toMatch(/--dir/u)
  })
})
