import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {HpdError} from '../errors.js'
import {CONFIG_LIMITS, findPreset, loadModelSpec, parseModelConfig} from '../model/index.js'
import {thrown} from '../testing/thrown.js'
import {LAYOUT_LIMITS} from './bounds.js'
import {planEngineLayout, planLayout, planRequestReads, summarizeRequestReads, transferredTokens} from './index.js'
import {inspectLayout} from './present/inspect-result.js'

const tiny = loadModelSpec('tiny-hybrid')
const h8b = loadModelSpec('nemotron-h-8b')
const llama = findPreset('tiny-llama')!.config

describe('planner inputs have maxima (checked before anything is sized)', () => {
  it('TP and block size', () => {
    expect(thrown(() => planEngineLayout({model: tiny, tp: LAYOUT_LIMITS.tp + 1})).code).toBe('HPD_USAGE_BAD_TP')
    expect(thrown(() => planEngineLayout({model: tiny, tp: 2 ** 53 + 2})).code).toBe('HPD_USAGE_BAD_TP')
    expect(thrown(() => planEngineLayout({model: tiny, tp: 1, blockSize: LAYOUT_LIMITS.blockSize + 1})).code).toBe('HPD_USAGE_BAD_BLOCK_SIZE')
    expect(thrown(() => planEngineLayout({model: tiny, tp: 1, blockSize: Number.NaN})).code).toBe('HPD_USAGE_BAD_BLOCK_SIZE')
  })

  it('prompt tokens: past the limit, unsafe or not a number → HPD_USAGE_BAD_PROMPT_TOKENS at once', () => {
    const plan = planLayout({model: tiny, prefillTp: 1, decodeTp: 1, attentionBackend: 'cpu'})
    for (const promptTokens of [LAYOUT_LIMITS.promptTokens + 1, 1e12, 2 ** 53 + 2, Number.NaN, Number.POSITIVE_INFINITY, 1.5]) {
      const started = performance.now()
      expect(thrown(() => summarizeRequestReads(plan, {transferredTokens: promptTokens})).code).toBe('HPD_USAGE_BAD_PROMPT_TOKENS')
      expect(performance.now() - started).toBeLessThan(1000)
    }
    expect(summarizeRequestReads(plan, {transferredTokens: LAYOUT_LIMITS.promptTokens - 1}).transferredTokens).toBe(LAYOUT_LIMITS.promptTokens - 1)
  })

  it('a page over 64 GiB is refused, naming the flag to lower', () => {
    // 2 · 512 · 512 K/V elements per token per layer (in range) × 4 B × 65536-token blocks = 256 GiB per page.
    const big = parseModelConfig({...llama, num_attention_heads: 512, num_key_value_heads: 512, head_dim: 512, torch_dtype: 'float32'})
    const page = thrown(() => planLayout({model: big, prefillTp: 1, decodeTp: 1, blockSize: 65_536, attentionBackend: 'cpu'}))
    expect([page.code, page.exitCode]).toEqual(['HPD_LAYOUT_SIZE_LIMIT', 2])
    expect(page.hint).toContain('--block-size')
  })

  it("a request's blocks, bytes and listed reads are bounded before the lists exist", () => {
    const many = parseModelConfig({...llama, num_hidden_layers: 4096, num_attention_heads: 64, num_key_value_heads: 64, head_dim: 256})
    const plan = planLayout({model: many, prefillTp: 1, decodeTp: 1, attentionBackend: 'cpu'})
    const bytes = thrown(() => summarizeRequestReads(plan, {transferredTokens: LAYOUT_LIMITS.promptTokens - 1}))
    expect([bytes.code, bytes.details?.maxBytes]).toEqual(['HPD_LAYOUT_SIZE_LIMIT', LAYOUT_LIMITS.requestBytes])
    const sd = planLayout({model: h8b, prefillTp: 1, decodeTp: 1, convLayout: 'SD', attentionBackend: 'cpu'})
    const reads = thrown(() => summarizeRequestReads(sd, {transferredTokens: LAYOUT_LIMITS.promptTokens - 1}))
    expect([reads.code, reads.details?.maxReads]).toEqual(['HPD_LAYOUT_SIZE_LIMIT', LAYOUT_LIMITS.pairReads])
    expect(thrown(() => planRequestReads(sd, {transferredTokens: LAYOUT_LIMITS.promptTokens - 1})).code).toBe('HPD_LAYOUT_SIZE_LIMIT')
  })

  it('--descriptors: the table size is refused before a row is made', () => {
    const options = {model: h8b, prefillTp: 2, decodeTp: 1, attentionBackend: 'cpu' as const, descriptors: true}
    const e = thrown(() => inspectLayout({...options, promptTokens: 1_048_576}))
    expect([e.code, e.exitCode]).toEqual(['HPD_USAGE_DESCRIPTORS_TOO_LARGE', 2])
    expect(e.hint).toContain('--prompt-tokens')
    expect(inspectLayout({...options, promptTokens: 3000}).descriptors?.pairs.length).toBe(2)
  })
})

// Random configs with every geometry key anywhere in its allowed range, random flags in theirs:
// a plan either succeeds with every size an exact integer below 2^53 (and the page and request
// under their limits), or fails with a typed error. Never a RangeError, never 1e24 bytes.
const anyCount = (max: number) =>
  fc.oneof({arbitrary: fc.integer({min: 1, max: 64}), weight: 3}, {arbitrary: fc.integer({min: 1, max}), weight: 1}, {arbitrary: fc.constant(max), weight: 1})
/** `count` units in groups of `per` (heads over KV heads, Mamba heads over groups), within `max`. */
const grouped = (max: number) =>
  fc.integer({min: 1, max: 8}).chain((per) => anyCount(Math.floor(max / per)).map((groups) => ({groups, total: groups * per})))
const extremeNemotron = fc
  .record({
    torch_dtype: fc.constantFrom('float32', 'bfloat16'),
    hidden_size: anyCount(CONFIG_LIMITS.hiddenSize),
    hybrid_override_pattern: fc.constantFrom('M*', 'M*M*-', '*M', 'MMMM*'),
    attention: grouped(CONFIG_LIMITS.heads),
    head_dim: anyCount(CONFIG_LIMITS.headDim),
    mamba: grouped(CONFIG_LIMITS.heads),
    mamba_head_dim: anyCount(CONFIG_LIMITS.headDim),
    ssm_state_size: anyCount(CONFIG_LIMITS.headDim),
    conv_kernel: fc.integer({min: 2, max: CONFIG_LIMITS.convKernel}),
  })
  .map(({attention, mamba, ...rest}) => ({
    ...rest,
    architectures: ['NemotronHForCausalLM'],
    vocab_size: 64,
    num_key_value_heads: attention.groups,
    num_attention_heads: attention.total,
    n_groups: mamba.groups,
    mamba_num_heads: mamba.total,
  }))

describe('at the limits every size is exact', () => {
  it('property: plan → all sizes safe integers, or a typed error', () => {
    let tried = 0
    let planned = 0
    fc.assert(
      fc.property(
        extremeNemotron,
        fc.constantFrom(1, 1, 1, 2, 1024),
        fc.constantFrom(1, 1, 2),
        fc.option(fc.oneof(fc.constantFrom(16, 64, 1024), fc.integer({min: 1, max: LAYOUT_LIMITS.blockSize})), {nil: undefined}),
        fc.constantFrom(2, 3000, 131_072, LAYOUT_LIMITS.promptTokens),
        (config, prefillTp, decodeTp, blockSize, promptTokens) => {
          try {
            tried++
            const model = parseModelConfig(config)
            const plan = planLayout({model, prefillTp, decodeTp, blockSize, attentionBackend: 'cpu'})
            for (const e of [plan.prefill, plan.decode]) {
              for (const v of [e.pageBytes, e.kernelPageBytes, e.mambaPageBytes, e.paddingBytes, e.logicalBlockSize]) expect(Number.isSafeInteger(v)).toBe(true)
              expect(e.pageBytes).toBeLessThanOrEqual(LAYOUT_LIMITS.pageBytes)
            }
            const reads = summarizeRequestReads(plan, {transferredTokens: transferredTokens(promptTokens)})
            for (const b of reads.bytesPerDecodeRank) expect(Number.isSafeInteger(b)).toBe(true)
            expect(reads.bytesPerDecodeRank.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(LAYOUT_LIMITS.requestBytes)
            planned++
          } catch (error) {
            if (!(error instanceof HpdError)) throw error
            expect([2, 3]).toContain(error.exitCode)
          }
        },
      ),
      {seed: 20_260_601, numRuns: 300},
    )
    // The generator reaches both sides: plans at extreme sizes, and refusals.
    expect(planned).toBeGreaterThan(tried / 10)
    expect(planned).toBeLessThan(tried)
  })
})
