import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

/** `hpd inspect-layout` as a user runs it: a separate process over dist/ (`npm test` builds first). */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const FIXTURES = join(ROOT, 'test', 'fixtures', 'configs')
const TIMEOUT_MS = 30_000
const scratch = mkdtempSync(join(tmpdir(), 'hpd-inspect-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))

function hpd(args: string[]) {
  // NODE_ENV=production: oclif runs dist/ as an installed CLI does (under vitest it would load src/*.ts).
  return execa('node', ['bin/run.js', 'inspect-layout', ...args], {cwd: ROOT, reject: false, timeout: TIMEOUT_MS, env: {NODE_ENV: 'production'}})
}

describe('hpd inspect-layout (process)', () => {
  it('--cached-tokens C: the decode side\'s prefix hit skips exactly its attention reads; state reads stay; bad C is a usage error', async () => {
    const base = ['--model', 'nemotron-h-8b', '--tp', '2', '--decode-tp', '1', '--prompt-tokens', '3000', '--json']
    const [cold, warm, bad] = await Promise.all([hpd(base), hpd([...base, '--cached-tokens', '2080']), hpd([...base, '--cached-tokens', '1000'])])
    const c = JSON.parse(cold.stdout).result.transfer
    const w = JSON.parse(warm.stdout).result.transfer
    // 2 of the 3 logical blocks (1040 tokens, 65 kernel blocks each) are held: 130 kernel blocks per FA layer skipped
    expect(w).toMatchObject({cachedTokens: 2080, kernelBlocksRead: 188 - 130, skipped: {kernelBlocksPerFaLayer: 130}})
    expect(c).toMatchObject({cachedTokens: 0, kernelBlocksRead: 188, skipped: {kernelBlocksPerFaLayer: 0, reads: 0, bytes: 0}})
    expect(w.hpdReads + w.skipped.reads).toBe(c.hpdReads)
    // FA bytes skipped: 130 kernel blocks × 4 FA layers (one per tensor) × 2 prefill ranks × 2 halves × 16 KiB; every state byte still read
    expect(w.skipped.bytes).toBe(130 * 4 * 2 * 2 * 16_384)
    expect(w.bytesPerDecodeRank[0]).toBe(c.bytesPerDecodeRank[0] - w.skipped.bytes)
    expect(bad.exitCode).toBe(2)
    expect(JSON.parse(bad.stdout).error).toMatchObject({code: 'HPD_USAGE_BAD_CACHED_TOKENS'})
  })

  it('--json: the documented result names, reference numbers for H-8B TP2→TP1', async () => {
    const run = await hpd(['--model', 'nemotron-h-8b', '--tp', '2', '--decode-tp', '1', '--json'])
    expect(run.exitCode).toBe(0)
    const envelope = JSON.parse(run.stdout)
    expect(envelope).toMatchObject({ok: true, command: 'inspect-layout', schemaVersion: 1})
    const r = envelope.result
    for (const side of [r.prefill, r.decode]) {
      expect(side).toMatchObject({logicalBlockSize: 1040, kernelBlockSize: 16, blocksPerLogical: 65, numTensors: 4})
      for (const key of ['tp', 'pageBytes', 'mambaPageBytes', 'paddingBytes', 'groups', 'ranks']) expect(side).toHaveProperty(key)
      for (const rank of side.ranks) for (const key of ['rank', 'kvHeads', 'convBytes', 'xBytes', 'bBytes', 'cBytes', 'ssmBytes']) expect(rank).toHaveProperty(key)
    }
    expect(r.prefill.ranks[1]).toMatchObject({rank: 1, kvHeads: 4, convBytes: 30_720, xBytes: 24_576, bBytes: 3_072, cBytes: 3_072, ssmBytes: 2_097_152})
    expect(r.transfer).toMatchObject({promptTokens: 3000, vllmDescriptorPairs: 2 * 1656, bytesPerDecodeRank: [151_420_928]})
    expect(r.transfer.coalescedRuns).toBeGreaterThan(0)
    expect(r.transfer.pageReads).toContainEqual({decodeRank: 0, prefillRank: 1, view: 'ssm', part: 'ssm', remoteOffsetBytes: 30_720, localOffsetBytes: 61_440 + 2_097_152, lengthBytes: 2_097_152})
    expect(r.compatibilityHash).toMatch(/^[0-9a-f]{64}$/u)
    expect(r.vllmPitfalls.map((p: {code: string}) => p.code)).toContain('VLLM_DS_CONV_LAYOUT_REQUIRED')
  })

  it('table: one screen, no escape codes; --block-size 128 at vLLM 0.20 flags its ratio estimate', async () => {
    const run = await hpd(['--model', 'nemotron-h-8b', '--block-size', '128', '--vllm-version', '0.20'])
    expect(run.exitCode).toBe(0)
    const lines = run.stdout.trimEnd().split('\n')
    expect(lines.length).toBeLessThan(70)
    expect(run.stdout).toContain('1152 tokens')
    expect(run.stdout).toContain('64 tokens (r 18, vLLM est. 17)')
    expect(run.stdout).toContain('VLLM_REMOTE_RATIO_ESTIMATE_WRONG')
    expect(run.stdout).not.toMatch(/\u001B\[/u)
  })

  it('--format svg --output writes the picture; the JSON result names the file', async () => {
    const file = join(scratch, 'layout.svg')
    const run = await hpd(['--model', 'tiny-hybrid-g1', '--tp', '1', '--decode-tp', '2', '--attention-backend', 'cpu', '--format', 'svg', '--output', file, '--json'])
    expect(run.exitCode).toBe(0)
    expect(JSON.parse(run.stdout).result.svgPath).toBe(file)
    const svg = readFileSync(file, 'utf8')
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).toContain('read map')
  })

  it('--descriptors --json: vLLM descriptor lists and the request ids that select them (§3.2–3.4)', async () => {
    const run = await hpd(['--model', 'tiny-hybrid', '--attention-backend', 'cpu', '--prompt-tokens', '40', '--descriptors', '--json'])
    expect(run.exitCode).toBe(0)
    const {descriptors, decode} = JSON.parse(run.stdout).result
    const pair = descriptors.pairs[0]
    // one request of 39 tokens: 1 FA logical block (r = 5) + 2 Mamba blocks → 3 logical blocks per tensor
    expect(descriptors.decodeNumLogicalBlocks).toBe(3)
    expect(pair.local).toHaveLength(2 * decode.numTensors * 3 * decode.blocksPerLogical + 4 * decode.numTensors * 3)
    expect(pair.numFaDescs.local).toBe(2 * decode.numTensors * 3 * decode.blocksPerLogical)
    expect(pair.localIds).toHaveLength(2 * decode.numTensors * decode.blocksPerLogical + 2 * 4 * decode.numTensors)
    expect(pair.localIds).toEqual(pair.remoteIds)
  })

  it('errors: unknown model → 2, bad config → 3, bad flag → 2, heads TP cannot split → 3; never a stack trace', async () => {
    const missing = await hpd(['--model', 'no-such-model', '--json'])
    expect(missing.exitCode).toBe(2)
    expect(JSON.parse(missing.stdout)).toMatchObject({ok: false, error: {code: 'HPD_MODEL_NOT_FOUND'}})
    const badConfig = await hpd(['--model', join(FIXTURES, 'bad-contradictory-expand.json')])
    expect(badConfig.exitCode).toBe(3)
    expect(badConfig.stderr).toMatch(/^error HPD_MODEL_CONTRADICTORY_KEYS: .*mamba_expand/mu)
    const badFlag = await hpd(['--model', 'tiny', '--kv-cache-dtype', 'int4'])
    expect(badFlag.exitCode).toBe(2)
    expect(badFlag.stderr).toMatch(/^error HPD_USAGE: /mu)
    const indivisible = await hpd(['--model', 'tiny', '--tp', '3', '--json'])
    expect(indivisible.exitCode).toBe(3)
    expect(JSON.parse(indivisible.stdout).error.details).toMatchObject({key: 'num_attention_heads', value: 8, tp: 3})
    for (const run of [missing, badConfig, badFlag, indivisible]) expect(`${run.stdout}${run.stderr}`).not.toMatch(/\n\s+at /u)
  })
})
