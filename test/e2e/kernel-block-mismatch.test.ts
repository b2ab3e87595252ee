/**
 * Issue 13 end to end: prefill/decode pairs whose attention kernel blocks differ are mapped and move
 * byte for byte over real UCX between real processes (`hpd bench transfer`), and `hpd serve` on a
 * tiny model whose kernel block changes with TP is token-identical to colocated; `inspect-layout`
 * shows the pair and refuses only pairs that cannot map.
 */
import {join} from 'node:path'

import {execa} from 'execa'
import OpenAI from 'openai'
import {afterAll, describe, expect, it} from 'vitest'

import {ROOT, startServe, type ServeProcess} from './serve-harness.js'

const RUN = join(ROOT, 'bin', 'run.js')
// Issue 13's example: Nemotron-H with 2 KV heads, bf16 KV, fp32 SSM, 64×64 Mamba heads.
const KV2 = join(ROOT, 'test', 'fixtures', 'configs', 'nemotron-h-kv2-shaped.json')

interface Envelope {
  ok: boolean
  result?: Record<string, unknown> & {
    attention: {prefillKernelBlockSize: number; decodeKernelBlockSize: number; tokensPerRead: number; readUnit: string}
    cases: {promptTokens: number; bytesPerRequest: number; runsPerRequest: number; plannedRunsPerRequest: number; readsPerRequest: number; verifiedBytes: number}[]
  }
  error?: {code: string; message: string; details?: Record<string, unknown>}
}

async function hpd(args: string[]): Promise<{exitCode: number; envelope: Envelope; stderr: string}> {
  const r = await execa('node', [RUN, ...args, '--json'], {reject: false, timeout: 90_000, env: {CI: '1', NODE_ENV: 'production'}})
  return {exitCode: r.exitCode ?? -1, envelope: JSON.parse(r.stdout) as Envelope, stderr: r.stderr}
}

describe('bench transfer: different kernel blocks, byte for byte over real UCX', () => {
  // bench transfer's `cpu` backend defaults every cache to the engine's fp32; --mamba-cache-dtype bf16
  // (with the config's fp32 SSM) keeps issue 13's geometry: bf16 conv state, fp32 SSM state.
  // 40 tokens: inside one block everywhere; 1100: past the 1056-token logical block of TP 4.
  it.each([
    ['bf16', 4, 2, [], 32, 16, 16, 'auto'],
    ['bf16', 2, 4, [], 16, 32, 16, 'auto'],
    ['bf16', 4, 2, [], 32, 16, 16, 'tcp'],
    // fp8 halves the per-token bytes: default blocks give both sides kernel 16 (logical 2096 vs 4176) …
    ['fp8', 4, 2, [], 16, 16, 16, 'auto'],
    ['fp8', 2, 4, [], 16, 16, 16, 'auto'],
    // … and --block-size 32 makes them differ again: 2112 → kernel 64 at TP 4, 4192 → 32 at TP 2.
    ['fp8', 4, 2, ['--block-size', '32'], 64, 32, 32, 'auto'],
    ['fp8', 2, 4, ['--block-size', '32'], 32, 64, 32, 'auto'],
  ] as const)('%s KV, TP %i → %i %o: kernel blocks %i / %i, reads of %i tokens, transport %s', async (dtype, tp, decodeTp, extra, kP, kD, tokens, transport) => {
    const {exitCode, envelope} = await hpd([
      'bench', 'transfer', '--model', KV2, '--tp', String(tp), '--decode-tp', String(decodeTp), '--kv-cache-dtype', dtype, '--mamba-cache-dtype', 'bf16', ...extra,
      '--prompt-tokens', '40,1100', '--requests', '1', '--verify', 'full', '--transport', transport,
    ])
    expect(envelope.error).toBeUndefined()
    expect(exitCode).toBe(0)
    const r = envelope.result!
    expect([r.kvCacheDtype, r.mambaCacheDtype, r.mambaSsmDtype]).toEqual([dtype, 'bf16', 'fp32'])
    expect(r.attention).toMatchObject({prefillKernelBlockSize: kP, decodeKernelBlockSize: kD, tokensPerRead: tokens, readUnit: kP === kD ? 'head-range' : 'head'})
    for (const c of r.cases) {
      expect(c.bytesPerRequest).toBeGreaterThan(0)
      // warm-up + 1 measured request, every byte checked against the prefill pattern
      expect(c.verifiedBytes).toBe(2 * c.bytesPerRequest)
      // the agent's merging of adjacent descriptors agrees with the layout's coalescing
      expect(c.runsPerRequest).toBe(c.plannedRunsPerRequest)
    }
  })

  it('a corrupted byte in a mismatched-kernel read is caught (exit 6, names rank, tensor, block and part)', async () => {
    const {exitCode, envelope} = await hpd(['bench', 'transfer', '--model', KV2, '--tp', '4', '--decode-tp', '2', '--prompt-tokens', '300', '--requests', '1', '--inject-fault', 'corrupt'])
    expect(exitCode).toBe(6)
    expect(envelope.error!.code).toBe('HPD_BENCH_VERIFY_MISMATCH')
    expect(envelope.error!.message).toMatch(/decode rank \d ← prefill rank \d: tensor \d+ layer \d+ block \d+ part (K|V|x|B|C|ssm)/u)
  })
})

describe('inspect-layout: such a pair, its pitfalls by vLLM release, and the pairs it refuses', () => {
  it('kernel blocks of both sides, run length, reads before/after coalescing, VLLM_KERNEL_BLOCK_MISMATCH', async () => {
    const {exitCode, envelope} = await hpd(['inspect-layout', '--model', KV2, '--tp', '4', '--decode-tp', '2'])
    expect(exitCode).toBe(0)
    const r = envelope.result as unknown as {
      transfer: {attention: Record<string, unknown>; hpdReads: number; coalescedRuns: number; statePagesPerGroup: number}
      vllmVersion: {judgedAgainst: string}
      vllmPitfalls: {code: string; vllmVersion: string; fixedIn: unknown}[]
    }
    expect(r.transfer.attention).toMatchObject({prefillKernelBlockSize: 32, decodeKernelBlockSize: 16, tokensPerRead: 16, readUnit: 'head'})
    expect(r.transfer.statePagesPerGroup).toBe(1)
    expect(r.transfer.hpdReads).toBeGreaterThan(r.transfer.coalescedRuns)
    expect(r.vllmPitfalls.find((p) => p.code === 'VLLM_KERNEL_BLOCK_MISMATCH')).toMatchObject({vllmVersion: r.vllmVersion.judgedAgainst, fixedIn: null})
  })

  it('--vllm-version: Qwen3-Next is unsupported at 0.20, supported at the newest release', async () => {
    const qwen = join(ROOT, 'test', 'fixtures', 'configs', 'qwen3-next-shaped.json')
    const old = await hpd(['inspect-layout', '--model', qwen, '--vllm-version', '0.20'])
    const now = await hpd(['inspect-layout', '--model', qwen])
    const codes = (e: Envelope) => (e.result!.vllmPitfalls as {code: string}[]).map((p) => p.code)
    expect(codes(old.envelope)).toEqual(expect.arrayContaining(['VLLM_STATE_MIXER_UNSUPPORTED', 'VLLM_PREFIX_CACHING_UNSUPPORTED']))
    expect(codes(now.envelope)).not.toContain('VLLM_STATE_MIXER_UNSUPPORTED')
    expect(codes(now.envelope)).not.toContain('VLLM_PREFIX_CACHING_UNSUPPORTED')
    const bad = await hpd(['inspect-layout', '--model', qwen, '--vllm-version', '0.9'])
    expect([bad.exitCode, bad.envelope.error!.code]).toEqual([2, 'HPD_USAGE_BAD_VLLM_VERSION'])
  })

  it.each([
    [['--decode-kv-cache-dtype', 'fp8'], 'HPD_LAYOUT_KV_DTYPE_MISMATCH'],
    [['--decode-conv-layout', 'SD'], 'HPD_LAYOUT_CONV_LAYOUT_MISMATCH'],
    [['--decode-model', 'tiny-hybrid'], 'HPD_LAYOUT_ATTENTION_LAYERS_MISMATCH'],
  ])('refuses %o with %s (exit 2, no stack trace)', async (args, code) => {
    const {exitCode, envelope, stderr} = await hpd(['inspect-layout', '--model', KV2, '--tp', '4', '--decode-tp', '2', ...args])
    expect(exitCode).toBe(2)
    expect(envelope.error).toMatchObject({code})
    expect(`${stderr}`).not.toMatch(/\n\s+at /u)
  })
})

// tiny-hybrid-kv1: one KV head, so TP 2 replicates it and gets kernel block 32 (logical 160) where
// TP 1 has 16 (logical 304). Prompts span several blocks of both sizes.
const PROMPTS = [
  'Hello',
  'Kernel blocks of sixteen and thirty-two tokens hold the same keys and values at different places; the decode side must find every one of them. '.repeat(3),
]
const MAX_TOKENS = 8
const MODEL = 'tiny-hybrid-kv1'

const running: ServeProcess[] = []
afterAll(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

async function outputsOf(args: string[]): Promise<string[]> {
  const s = await startServe(['--model', MODEL, ...args])
  running.push(s)
  try {
    const client = new OpenAI({baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000})
    const out: string[] = []
    for (const prompt of PROMPTS) {
      const whole = (await client.completions.create({model: MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0, return_token_ids: true} as never)) as unknown as {choices: {token_ids: number[]}[]}
      out.push(`cmpl ${whole.choices[0].token_ids.join(',')}`)
      const stream = await client.completions.create({model: MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true, return_token_ids: true} as never)
      const ids: number[] = []
      for await (const chunk of stream as unknown as AsyncIterable<{choices: {token_ids?: number[]}[]}>) ids.push(...(chunk.choices[0]?.token_ids ?? []))
      out.push(`stream ${ids.join(',')}`)
    }
    if (!args.includes('--colocated')) {
      // the decode workers really pulled the prompts' K/V and state across the kernel-block mismatch
      const metrics = await (await fetch(`${s.url}/metrics`)).text()
      expect(Number(/^hpd_kv_transfer_bytes_total (\d+)/mu.exec(metrics)?.[1])).toBeGreaterThan(0)
    }
    return out
  } finally {
    await s.stop()
    running.splice(running.indexOf(s), 1)
  }
}

describe(`hpd serve ${MODEL}: disaggregated across different kernel blocks == colocated (greedy)`, () => {
  let colocated: string[]
  it('colocated baseline produces output', async () => {
    colocated = await outputsOf(['--colocated'])
    expect(colocated).toHaveLength(PROMPTS.length * 2)
    for (const line of colocated) expect(line.split(' ')[1].split(',')).toHaveLength(MAX_TOKENS)
  })
  it.each([
    ['1→2 (kernel 16 → 32)', ['--prefill-tp', '1', '--decode-tp', '2']],
    ['2→1 (kernel 32 → 16)', ['--prefill-tp', '2', '--decode-tp', '1']],
  ])('%s is token-identical', async (_name, args) => {
    expect(await outputsOf(args)).toEqual(colocated)
  })
})
