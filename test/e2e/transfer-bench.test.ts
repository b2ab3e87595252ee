// `hpd bench transfer` end to end: the real CLI (dist/), two real worker processes, real UCX.
// Prompt sizes are small so the whole file stays around half a minute on two cores.
import {execa} from 'execa'
import {describe, expect, it} from 'vitest'

const RUN = new URL('../../bin/run.js', import.meta.url).pathname

interface Envelope {
  ok: boolean
  result?: {readProtocol: string; path: string; lists?: string; poolBlocks?: number; pairListPrepares?: number; cases: {promptTokens: number; bytesPerRequest: number; readsPerRequest: number; runsPerRequest: number; plannedRunsPerRequest: number; rankPairs: number; verifiedBytes: number; gbPerSecond: number; memcpyGbPerSecond: number; prepareMs: number; verifyMsP50?: number}[]}
  error?: {code: string; message: string; details?: Record<string, unknown>}
}

async function bench(args: string[]): Promise<{exitCode: number; envelope: Envelope; stderr: string}> {
  const r = await execa('node', [RUN, 'bench', 'transfer', ...args, '--json'], {reject: false, timeout: 60_000, env: {CI: '1'}})
  return {exitCode: r.exitCode ?? -1, envelope: JSON.parse(r.stdout) as Envelope, stderr: r.stderr}
}

describe('hpd bench transfer (real processes, real UCX)', () => {
  // Same host: shared memory, one-sided GETs. TCP: served reads (the prefill side sends into
  // receives the decode side posted on its KV memory).
  const topologies: [string, number, number, string, string][] = [
    ['tiny-hybrid', 1, 1, 'full', 'auto'],
    ['tiny-hybrid', 1, 2, 'full', 'auto'],
    ['tiny-hybrid', 2, 1, 'digest', 'auto'],
    ['tiny-hybrid', 4, 2, 'full', 'auto'],
    ['tiny-hybrid-g1', 1, 2, 'full', 'auto'],
    ['tiny-hybrid-g1', 2, 1, 'digest', 'auto'],
    ['tiny-llama', 1, 2, 'full', 'auto'],
    ['tiny-hybrid', 2, 1, 'full', 'tcp'],
    ['tiny-hybrid-g1', 1, 2, 'digest', 'tcp'],
    // kv-first tensors (attention only): grants, digests, fill and reads agree on one block count.
    ['tiny-llama', 2, 1, 'digest', 'tcp'],
  ]
  it.each(topologies)('%s TP %i → %i moves and verifies every planned byte (%s, transport %s)', async (model, tp, decodeTp, verify, transport) => {
    const {exitCode, envelope} = await bench(['--model', model, '--tp', String(tp), '--decode-tp', String(decodeTp), '--prompt-tokens', '40,300', '--requests', '1', '--verify', verify, '--transport', transport])
    expect(envelope.error).toBeUndefined()
    expect(exitCode).toBe(0)
    expect(envelope.result!.readProtocol).toBe(transport === 'tcp' ? 'served' : 'get')
    const cases = envelope.result!.cases
    expect(cases.map((c) => c.promptTokens)).toEqual([40, 300])
    for (const c of cases) {
      expect(c.bytesPerRequest).toBeGreaterThan(0)
      // Every request of the case (warm-up + 1) was verified in full or by digest.
      expect(c.verifiedBytes).toBe(2 * c.bytesPerRequest)
      // The agent's merging of adjacent descriptors agrees with the layout's own coalescing.
      expect(c.runsPerRequest).toBe(c.plannedRunsPerRequest)
      expect(c.rankPairs).toBeGreaterThanOrEqual(Math.max(tp, decodeTp))
      expect(c.gbPerSecond).toBeGreaterThan(0)
      expect(c.memcpyGbPerSecond).toBeGreaterThan(0)
    }
  })

  it.each([
    ['corrupt', 'full', 'corrupt', 'auto'],
    ['stale', 'full', 'stale', 'auto'],
    ['short', 'full', 'short', 'auto'],
    ['corrupt', 'digest', undefined, 'auto'],
    ['stale', 'full', 'stale', 'tcp'],
  ])('--inject-fault %s is caught by --verify %s: exit 6 naming rank, tensor, block and part (%s, transport %s)', async (fault, verify, diagnosis, transport) => {
    const {exitCode, envelope} = await bench(['--model', 'tiny-hybrid', '--tp', '2', '--decode-tp', '1', '--prompt-tokens', '100', '--requests', '1', '--verify', verify, '--inject-fault', fault, '--transport', transport])
    expect(exitCode).toBe(6)
    expect(envelope.ok).toBe(false)
    expect(envelope.error!.code).toMatch(/^HPD_BENCH_(VERIFY|DIGEST)_MISMATCH$/)
    expect(envelope.error!.message).toMatch(/decode rank 0 ← prefill rank 1: tensor \d+ layer \d+ block \d+ part (K|V|x|B|C|ssm)/)
    expect(envelope.error!.details).toMatchObject({decodeRank: 0, prefillRank: 1})
    if (diagnosis) expect(envelope.error!.details!.diagnosis).toBe(diagnosis)
  })

  it.each(['auto', 'tcp'])('--inject-fault kill-peer ends the run with a transport error naming the dead peer (transport %s)', async (transport) => {
    const {exitCode, envelope} = await bench(['--model', 'tiny-hybrid', '--prompt-tokens', '100', '--requests', '1', '--inject-fault', 'kill-peer', '--transport', transport])
    expect(exitCode).toBe(5)
    expect(envelope.error!.code).toBe('HPD_NATIVE_PEER_UNREACHABLE')
    expect(envelope.error!.details).toMatchObject({peer: 'prefill-r0', injectedFault: 'kill-peer'})
    // Measured and reported (the bench's --timeout-ms of 10 s did not fire first).
    expect(typeof envelope.error!.details!.detectionMs).toBe('number')
  })

  // Serving's exact per-request path: one agent per process, block ids from a shuffled pool per
  // request, the read planned and its lists made (or selected from per-pair lists) per request,
  // grants per request, the KV link's digest check as --verify-transfers runs it.
  it.each([
    ['tiny-hybrid', 2, 1, 'request', 'digest', 'auto'],
    ['tiny-hybrid', 1, 2, 'pair', 'full', 'auto'],
    ['tiny-hybrid-g1', 2, 1, 'pair', 'digest', 'tcp'],
    ['tiny-llama', 1, 2, 'request', 'full', 'tcp'],
  ])('--path serve: %s TP %i → %i, lists per %s, --verify %s (transport %s)', async (model, tp, decodeTp, lists, verify, transport) => {
    const {exitCode, envelope} = await bench(['--model', model, '--tp', String(tp), '--decode-tp', String(decodeTp), '--prompt-tokens', '40,300', '--requests', '3', '--path', 'serve', '--lists', lists, '--verify', verify, '--transport', transport])
    expect(envelope.error).toBeUndefined()
    expect(exitCode).toBe(0)
    const r = envelope.result!
    expect(r).toMatchObject({path: 'serve', lists})
    expect(r.poolBlocks).toBeGreaterThanOrEqual(16)
    if (lists === 'pair') expect(r.pairListPrepares).toBeGreaterThan(0)
    for (const c of r.cases) {
      // 3 warm-up requests (they touch the whole pool once) + 3 measured, all verified.
      expect(c.verifiedBytes).toBe(6 * c.bytesPerRequest)
      // Scattered pool blocks: the agent's merging agrees with the layout's coalescing of this request's own plan.
      expect(c.runsPerRequest).toBe(c.plannedRunsPerRequest)
      expect(c.prepareMs).toBeGreaterThan(0)
      if (verify === 'digest') expect(c.verifyMsP50).toBeGreaterThan(0)
    }
  })

  it.each([
    ['corrupt', 'digest'],
    ['stale', 'full'],
  ])('--path serve: --inject-fault %s is caught by --verify %s (exit 6)', async (fault, verify) => {
    const {exitCode, envelope} = await bench(['--model', 'tiny-hybrid', '--tp', '2', '--decode-tp', '1', '--prompt-tokens', '100', '--requests', '1', '--path', 'serve', '--verify', verify, '--inject-fault', fault])
    expect(exitCode).toBe(6)
    expect(envelope.error!.code).toMatch(/^HPD_BENCH_(VERIFY|DIGEST)_MISMATCH$/)
    expect(envelope.error!.message).toMatch(/decode rank 0 ← prefill rank 1: tensor \d+ layer \d+ block \d+ part (K|V|x|B|C|ssm)/)
  })

  it('rejects bad flags with exit 2 and the flag named', async () => {
    const {exitCode, envelope} = await bench(['--model', 'tiny-hybrid', '--prompt-tokens', '12,abc'])
    expect(exitCode).toBe(2)
    expect(envelope.error!.message).toMatch(/--prompt-tokens .*"abc"/)
  })
})
