import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {readSecret} from './secrets.js'

const dir = mkdtempSync(join(tmpdir(), 'hpd-secrets-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const source = (file: string | undefined) => ({flag: 'auth-token-file', file, envName: 'HPD_TEST_SECRET'})

describe('readSecret', () => {
  it('reads a small regular file (trimmed), or the variable when no file is named', () => {
    writeFileSync(join(dir, 'token'), 'abcdefghijklmnopqrstuvwxyz012345\n', {mode: 0o600})
    expect(readSecret(source(join(dir, 'token')), {})).toBe('abcdefghijklmnopqrstuvwxyz012345')
    expect(readSecret(source(undefined), {HPD_TEST_SECRET: 'from-the-environment-0123'})).toBe('from-the-environment-0123')
    expect(readSecret(source(undefined), {})).toBeUndefined()
  })

  it('refuses, without hanging or quoting the contents: a FIFO with no writer, a directory, a device, a missing or oversized file, a weak secret', () => {
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    writeFileSync(join(dir, 'big'), 'x'.repeat(10_000))
    writeFileSync(join(dir, 'weak'), 'short secret')
    const cases: [string, string][] = [
      [fifo, 'HPD_SECRET_UNREADABLE'],
      [dir, 'HPD_SECRET_UNREADABLE'],
      ['/dev/zero', 'HPD_SECRET_UNREADABLE'],
      [join(dir, 'missing'), 'HPD_SECRET_UNREADABLE'],
      [join(dir, 'big'), 'HPD_SECRET_UNREADABLE'],
      [join(dir, 'weak'), 'HPD_SECRET_WEAK'],
    ]
    for (const [file, code] of cases) {
      let error: {code?: string; message?: string} | undefined
      try {
        readSecret(source(file), {})
      } catch (e) {
        error = e as {code?: string; message?: string}
      }
      expect(error?.code, file).toBe(code)
      expect(error?.message).not.toContain('short secret')
    }
  })
})
