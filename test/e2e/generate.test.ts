import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

/** `hpd generate` as a user runs it: the built CLI (dist/), a fresh model cache, --json envelopes. */
const cacheDir = mkdtempSync(join(tmpdir(), 'hpd-generate-e2e-'))
afterAll(() => rmSync(cacheDir, {recursive: true, force: true}))

async function hpd(args: string[]) {
  const result = await execa('node', ['bin/run.js', 'generate', ...args, '--json'], {
    reject: false,
    timeout: 60_000,
    env: {HPD_CACHE_DIR: cacheDir},
  })
  return {exitCode: result.exitCode, json: JSON.parse(result.stdout)}
}

describe('hpd generate', () => {
  it('generates the tiny model on first use, then decodes the same greedy tokens at TP 1 and TP 2', async () => {
    const one = await hpd(['--model', 'tiny', '--prompt', 'The cache lives in the layout.', '--max-tokens', '12'])
    expect(one.exitCode).toBe(0)
    expect(one.json.ok).toBe(true)
    const r = one.json.result
    expect(r.model).toBe('tiny-hybrid')
    expect(r.tokenIds).toHaveLength(12)
    expect(r.promptTokenIds[0]).toBe(256) // <s>
    expect(r.prefillTokensPerSecond).toBeGreaterThan(0)
    expect(r.decodeTokensPerSecond).toBeGreaterThan(0)
    expect(r.cache.kernelBlockSize).toBeLessThan(r.cache.logicalBlockSize)
    const two = await hpd(['--model', 'tiny', '--prompt', 'The cache lives in the layout.', '--max-tokens', '12', '--tp', '2'])
    expect(two.json.result.tokenIds).toEqual(r.tokenIds)
  })

  it('reports usage and model errors as envelopes with their exit codes', async () => {
    const missing = await hpd(['--model', join(cacheDir, 'no-such-model'), '--prompt', 'x'])
    expect(missing.exitCode).toBe(2)
    expect(missing.json.error.code).toBe('HPD_MODEL_NOT_FOUND')
    const badTp = await hpd(['--model', 'tiny', '--prompt', 'x', '--tp', '3'])
    expect(badTp.exitCode).toBe(3)
    expect(badTp.json.error.code).toBe('HPD_MODEL_TP_INDIVISIBLE')
  })
})
