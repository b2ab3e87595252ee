/**
 * `hpd inspect-layout` and `hpd bench transfer` on the hybrid families, through the built CLI:
 * inspect-layout with the engine's options (--attention-backend cpu; the tiny presets are fp32,
 * so the auto cache dtypes are the engine's fp32) describes exactly the layout the engine
 * allocates (same compatibility hash), and bench transfer moves and verifies every planned byte
 * of each family's cache between real worker processes over real UCX. The same holds for
 * directories in the published checkpoint layout (bf16 shards): the `cpu` backend's auto cache
 * dtypes are the engine's fp32 whatever the checkpoint's dtype.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

import {HybridEngine} from '../../src/engine/engine.js'
import {loadModel} from '../../src/engine/load-model.js'
import {tinyModel, type TinyModelName} from '../../src/engine/test-models.js'
import {compatibilityHash, type EngineLayout} from '../../src/layout/index.js'
import {publishedConfig, writePublishedCheckpoint} from '../../src/testing/published-checkpoint.js'

const RUN = new URL('../../bin/run.js', import.meta.url).pathname
const FAMILIES: readonly TinyModelName[] = ['tiny-granite-h', 'tiny-falcon-h1', 'tiny-qwen3-next', 'tiny-nemotron-h-moe']

async function hpd(args: string[]): Promise<{exitCode: number; result: Record<string, unknown>}> {
  const r = await execa('node', [RUN, ...args, '--json'], {reject: false, timeout: 60_000, env: {CI: '1'}})
  const envelope = JSON.parse(r.stdout) as {ok: boolean; result: Record<string, unknown>; error?: unknown}
  expect(envelope.error).toBeUndefined()
  return {exitCode: r.exitCode ?? -1, result: envelope.result}
}

describe.each(FAMILIES)('%s', (model) => {
  it('inspect-layout --attention-backend cpu is the engine\'s own geometry (same compatibility hash, page and block sizes)', async () => {
    const m = tinyModel(model)
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 4})
    const {result} = await hpd(['inspect-layout', '--model', model, '--tp', '1', '--attention-backend', 'cpu'])
    const prefill = result.prefill as {logicalBlockSize: number; pageBytes: number; numTensors: number; kernelBlockSize: number}
    expect(result.compatibilityHash).toBe(compatibilityHash(m.spec, engine.layout))
    expect([prefill.logicalBlockSize, prefill.pageBytes, prefill.numTensors, prefill.kernelBlockSize]).toEqual([
      engine.layout.logicalBlockSize, engine.layout.pageBytes, engine.layout.numTensors, engine.layout.kernelBlockSize,
    ])
    engine.close()
  })

  it.each([
    [1, 2],
    [2, 1],
  ])('bench transfer TP %i → %i moves and verifies every planned byte', async (tp, decodeTp) => {
    const {exitCode, result} = await hpd(['bench', 'transfer', '--model', model, '--tp', String(tp), '--decode-tp', String(decodeTp), '--prompt-tokens', '40,300', '--requests', '1', '--verify', 'full'])
    expect(exitCode).toBe(0)
    const cases = result.cases as {bytesPerRequest: number; verifiedBytes: number; runsPerRequest: number; plannedRunsPerRequest: number}[]
    for (const c of cases) {
      expect(c.bytesPerRequest).toBeGreaterThan(0)
      expect(c.verifiedBytes).toBe(2 * c.bytesPerRequest)
      expect(c.runsPerRequest).toBe(c.plannedRunsPerRequest)
    }
  })
})

type Geometry = Pick<EngineLayout, 'logicalBlockSize' | 'kernelBlockSize' | 'pageBytes' | 'kernelPageBytes' | 'mambaPageBytes' | 'numTensors' | 'dtypes'>

function geometry(e: Geometry): Geometry {
  return {logicalBlockSize: e.logicalBlockSize, kernelBlockSize: e.kernelBlockSize, pageBytes: e.pageBytes, kernelPageBytes: e.kernelPageBytes, mambaPageBytes: e.mambaPageBytes, numTensors: e.numTensors, dtypes: e.dtypes}
}

const PUBLISHED = [
  ['Granite-4.0-H', 'tiny-granite-h', 'as-is'],
  ['Falcon-H1', 'tiny-falcon-h1', 'as-is'],
  ['Qwen3-Next', 'tiny-qwen3-next', 'as-is'],
  ['Qwen3.5', 'tiny-qwen3-next', 'qwen3.5'],
  ['Nemotron-H MoE', 'tiny-nemotron-h-moe', 'as-is'],
] as const
const root = mkdtempSync(join(tmpdir(), 'hpd-families-layout-'))
afterAll(() => rmSync(root, {recursive: true, force: true}))

describe.each(PUBLISHED)('%s in its published layout (bf16 shards)', (_family, preset, variant) => {
  const dir = join(root, `${preset}-${variant}`)

  it('inspect-layout --json --attention-backend cpu shows the engine\'s geometry on both sides (TP 1 → 2), as generate reports it', async () => {
    writePublishedCheckpoint(dir, publishedConfig(preset, variant))
    const m = loadModel(dir)
    expect(m.spec.dtype).toBe('bf16')
    const engines = [1, 2].map((tp) => new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 4}))
    try {
      const {result} = await hpd(['inspect-layout', '--model', dir, '--tp', '1', '--decode-tp', '2', '--attention-backend', 'cpu'])
      const [prefill, decode] = [result.prefill, result.decode] as EngineLayout[]
      expect(geometry(prefill)).toEqual(geometry(engines[0].layout))
      expect(geometry(decode)).toEqual(geometry(engines[1].layout))
      expect(prefill.dtypes).toEqual({kv: 'fp32', conv: 'fp32', ssm: 'fp32'})
      expect(result.compatibilityHash).toBe(compatibilityHash(m.spec, engines[1].layout))
      // what `generate --json` reports as the cache it ran with
      const generated = await hpd(['generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '1'])
      const {logicalBlockSize, kernelBlockSize, pageBytes, numTensors} = prefill
      expect(generated.result.cache).toEqual({logicalBlockSize, kernelBlockSize, pageBytes, numTensors})
    } finally {
      for (const e of engines) e.close()
    }
  })
})

describe('bench transfer on a published-layout directory lays the caches out as the engine', () => {
  it.each([[[]], [['--kv-cache-dtype', 'fp32']]] as const)('Nemotron-H MoE TP 1 → 2 %o: fp32 caches, the engine\'s kernel blocks', async (extra) => {
    const dir = join(root, 'bench-tiny-nemotron-h-moe')
    writePublishedCheckpoint(dir, publishedConfig('tiny-nemotron-h-moe'))
    const m = loadModel(dir)
    const engines = [1, 2].map((tp) => new HybridEngine({spec: m.spec, weights: m.weights, tp, numBlocks: 4}))
    try {
      const {exitCode, result} = await hpd(['bench', 'transfer', '--model', dir, '--tp', '1', '--decode-tp', '2', ...extra, '--prompt-tokens', '300', '--requests', '1', '--verify', 'full'])
      expect(exitCode).toBe(0)
      expect([result.kvCacheDtype, result.mambaCacheDtype, result.mambaSsmDtype]).toEqual(['fp32', 'fp32', 'fp32'])
      expect(result.attention).toMatchObject({prefillKernelBlockSize: engines[0].layout.kernelBlockSize, decodeKernelBlockSize: engines[1].layout.kernelBlockSize})
    } finally {
      for (const e of engines) e.close()
    }
  })
})
