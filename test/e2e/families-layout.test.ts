/**
 * `hpd inspect-layout` and `hpd bench transfer` on the hybrid families, through the built CLI:
 * inspect-layout with the engine's options (--attention-backend cpu; the tiny presets are fp32,
 * so the auto cache dtypes are the engine's fp32) describes exactly the layout the engine
 * allocates (same compatibility hash), and bench transfer moves and verifies every planned byte
 * of each family's cache between real worker processes over real UCX.
 */
import {execa} from 'execa'
import {describe, expect, it} from 'vitest'

import {HybridEngine} from '../../src/engine/engine.js'
import {tinyModel, type TinyModelName} from '../../src/engine/test-models.js'
import {compatibilityHash} from '../../src/layout/index.js'

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
