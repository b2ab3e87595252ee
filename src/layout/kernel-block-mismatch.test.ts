import {join} from 'node:path'

import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {loadModelSpec} from '../model/index.js'
import {planLayout, planRequestReads, readAt, summarizeRequestReads} from './index.js'
import {inspectLayout} from './present/inspect-result.js'
import {renderInspectTable} from './present/table.js'
import {renderInspectSvg} from './present/svg.js'

// Issue 13's example: a Nemotron-H config with 2 KV heads, bf16 KV, fp32 SSM state, 64×64 Mamba
// heads. TP 4 replicates the KV heads (1 per rank, 512 B/token) while the Mamba page keeps halving,
// so the logical block and with it the kernel block change with TP. Numbers derived from vLLM's
// formulas (reference vllm-hybrid-pd.md §2.1, §2.4, §2.5):
//   mamba page TP2 = 18,432 + 1,048,576 = 1,067,008 B; TP4 = 9,216 + 524,288 = 533,504 B
//   TP2: 16·cdiv(1,067,008, 16·512) = 16·131 = 2096 tokens → kernel 16 (2096 % 32 ≠ 0)
//   TP4: 16·cdiv(533,504, 16·512)   = 16·66  = 1056 tokens → kernel 32 (1056 % 64 ≠ 0)
const kv2 = loadModelSpec(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'configs', 'nemotron-h-kv2-shaped.json'))

describe('different kernel blocks (issue 13)', () => {
  it('2-KV-head Nemotron-H, bf16 KV: TP 4 → 2 pairs kernel blocks 32 and 16; reads are one head × 16 tokens', () => {
    const plan = planLayout({model: kv2, prefillTp: 4, decodeTp: 2})
    expect([plan.prefill.logicalBlockSize, plan.prefill.kernelBlockSize, plan.decode.logicalBlockSize, plan.decode.kernelBlockSize]).toEqual([1056, 32, 2096, 16])
    expect(plan.mapping.attention).toEqual({prefillKernelBlockSize: 32, decodeKernelBlockSize: 16, tokensPerRead: 16, readUnit: 'head', headTokenBytes: 256})
    expect(plan.mapping.statePagesPerGroup).toBe(1)
    // D0 holds head 0, which P0 and P1 both hold (replicated): K/V from P0 only, state halves from P0 and P1.
    expect(plan.mapping.pairs.map((p) => [p.decodeRank, p.prefillRank, p.readsFa, p.readsSsm])).toEqual([
      [0, 0, true, true],
      [0, 1, false, true],
      [1, 2, true, true],
      [1, 3, false, true],
    ])
    const req = planRequestReads(plan, {transferredTokens: 99})
    const pair = req.pairs[0]
    // Request token chunk c (tokens 16c … 16c+15) → D kernel block c (K half 4096 B) from P kernel
    // block ⌊c/2⌋ (page 16,384 B, K half 8192 B) at token offset 16·(c mod 2).
    const fa = Array.from({length: 6}, (_, i) => readAt(pair.reads, i)).map((r) => [r.tensorIndex, r.part, r.remoteOffsetBytes, r.localOffsetBytes, r.lengthBytes])
    expect(fa).toEqual([
      [0, 'K', 0, 0, 4096],
      [0, 'V', 8192, 4096, 4096],
      [0, 'K', 4096, 8192, 4096],
      [0, 'V', 12_288, 12_288, 4096],
      [0, 'K', 16_384, 16_384, 4096],
      [0, 'V', 16_384 + 8192, 16_384 + 4096, 4096],
    ])
    // 99 tokens → 7 chunks × (K, V) × 4 attention layers; the 6 Mamba pages per tensor are unaffected.
    const faReads = 7 * 2 * 4
    expect(pair.reads.count).toBe(faReads + 4 * 6 * 4)
    expect(req.tokensPerFaRead).toBe(16)
    // Coalescing: V of chunk 2m+1 ends P's kernel page m where K of chunk 2m+2 starts page m+1, and
    // the D pages are adjacent too (consecutive ids), so those merge: 3 per tensor for 7 chunks. The
    // state parts of one P rank are a slice of D's x|B|C|ssm, never adjacent on D: no merges.
    expect([pair.reads.count, pair.runs.count]).toEqual([152, 152 - 3 * 4])
    const summary = summarizeRequestReads(plan, {transferredTokens: 99})
    expect(summary.pairs.map((p) => [p.reads, p.runs])).toEqual(req.pairs.map((p) => [p.reads.count, p.runs.count]))
  })

  it('the other direction (TP 2 → 4): D kernel 32 takes two 16-token chunks per head from two P kernel blocks', () => {
    const plan = planLayout({model: kv2, prefillTp: 2, decodeTp: 4})
    expect(plan.mapping.attention).toMatchObject({prefillKernelBlockSize: 16, decodeKernelBlockSize: 32, tokensPerRead: 16})
    const req = planRequestReads(plan, {transferredTokens: 99})
    const first = Array.from({length: 4}, (_, i) => readAt(req.pairs[0].reads, i)).map((r) => [r.part, r.remoteOffsetBytes, r.localOffsetBytes])
    // D page: [K 32 tok (8192 B) | V 32 tok]; P page: [K 16 tok (4096 B) | V 16 tok] (8192 B).
    expect(first).toEqual([
      ['K', 0, 0],
      ['K', 8192, 4096],
      ['V', 4096, 8192],
      ['V', 8192 + 4096, 12_288],
    ])
    // The last V chunk of D block i ends P page 2i+1, and D block i+1 starts with P page 2i+2's K:
    // with consecutive block ids on both sides those touch and merge (99 tokens: 4 D blocks, 3 per tensor).
    expect([req.pairs[0].reads.count, req.pairs[0].runs.count]).toEqual([56 + 96, 56 + 96 - 3 * 4])
  })

  it('fp8 KV: the same model keeps equal kernel blocks (16) at TP 4 and 2 — vLLM test_compute_physical_blocks_per_logical numbers', () => {
    // vLLM tests/v1/kv_connector/unit/test_nixl_connector_hma.py, "Nemotron 30B" rows:
    // TP1 ssm_sizes (36864, 2097152), block_len 8192 → 261; TP2 (18432, 1048576), 4096 → 261; TP4 (9216, 524288), 4096 → 131.
    for (const [tp, conv, ssm, kernelPage, r] of [[1, 36_864, 2_097_152, 8192, 261], [2, 18_432, 1_048_576, 4096, 261], [4, 9216, 524_288, 4096, 131]] as const) {
      const plan = planLayout({model: kv2, prefillTp: tp, decodeTp: tp, kvCacheDtype: 'fp8'})
      const e = plan.prefill
      expect([e.ranks[0].mamba!.conv.bytes, e.ranks[0].mamba!.ssm.bytes, e.kernelPageBytes, e.blocksPerLogical, e.kernelBlockSize]).toEqual([conv, ssm, kernelPage, r, 16])
    }
    const plan = planLayout({model: kv2, prefillTp: 4, decodeTp: 2, kvCacheDtype: 'fp8'})
    expect(plan.mapping.attention.readUnit).toBe('head-range')
    expect(plan.vllmPitfalls.map((p) => p.code)).toContain('VLLM_FP8_SCALES_NOT_TRANSFERRED')
    // fp8 with --block-size 32 differs again: 32·cdiv(533,504, 32·256) = 2112 → 64; 32·cdiv(1,067,008, 8192) = 4192 → 32.
    const b32 = planLayout({model: kv2, prefillTp: 4, decodeTp: 2, kvCacheDtype: 'fp8', blockSize: 32})
    expect(b32.mapping.attention).toMatchObject({prefillKernelBlockSize: 64, decodeKernelBlockSize: 32, tokensPerRead: 32})
  })

  it('tiny-hybrid-kv1: TP 1 has kernel 16 (304-token blocks), TP 2 kernel 32 (160) — the serve e2e pair', () => {
    // 1 KV head × 32 × fp32 × 2 = 256 B/token at any TP; Mamba page TP1 9,216 + 65,536 = 74,752 B, TP2 37,376 B.
    const plan = planLayout({model: loadModelSpec('tiny-hybrid-kv1'), prefillTp: 1, decodeTp: 2, attentionBackend: 'cpu', kvCacheDtype: 'fp32', mambaConvDtype: 'fp32', mambaSsmDtype: 'fp32'})
    expect([plan.prefill.logicalBlockSize, plan.prefill.kernelBlockSize, plan.decode.logicalBlockSize, plan.decode.kernelBlockSize]).toEqual([304, 16, 160, 32])
  })

  it('inspect-layout shows both kernel blocks, the run length, reads before/after coalescing and the vLLM pitfall; --descriptors is refused', () => {
    const r = inspectLayout({model: kv2, prefillTp: 4, decodeTp: 2, promptTokens: 3000})
    expect(r.transfer.attention).toMatchObject({prefillKernelBlockSize: 32, decodeKernelBlockSize: 16, tokensPerRead: 16, readUnit: 'head'})
    expect(r.transfer.statePagesPerGroup).toBe(1)
    expect(r.transfer.hpdReads).toBeGreaterThan(r.transfer.coalescedRuns)
    expect(r.vllmPitfalls.find((p) => p.code === 'VLLM_KERNEL_BLOCK_MISMATCH')).toMatchObject({fixedIn: null, appliesTo: '>=0.20'})
    const table = renderInspectTable(r)
    expect(table).toContain('vLLM refuses this pair (kernel blocks differ)')
    expect(table).toContain('kernel blocks P 32 / D 16 tokens → one read = 16 tokens × 1 head')
    expect(table).toContain('state: one page per state group per request')
    expect(table).toMatch(/hpd reads \d+ · coalesced runs \d+/u)
    const svg = renderInspectSvg(r)
    expect(svg).toContain('kernel blocks prefill 32 / decode 16 tokens; one read = 16 tokens × 1 head')
    expect(svg).toContain('state: one page per state group per request, unaffected by kernel and logical block sizes')
    const e = thrown(() => inspectLayout({model: kv2, prefillTp: 4, decodeTp: 2, promptTokens: 100, descriptors: true}))
    expect([e.code, e.exitCode]).toEqual(['HPD_LAYOUT_DESCRIPTORS_KERNEL_BLOCK_MISMATCH', 2])
  })

  it('per-side kernel block flags: any divisor of each logical block; one that does not divide is refused', () => {
    const tiny = loadModelSpec('tiny-hybrid')
    const plan = planLayout({model: tiny, prefillTp: 1, decodeTp: 1, attentionBackend: 'cpu', kernelBlockSize: 8, decode: {kernelBlockSize: 20}})
    expect(plan.mapping.attention).toMatchObject({prefillKernelBlockSize: 8, decodeKernelBlockSize: 20, tokensPerRead: 4})
    const e = thrown(() => planLayout({model: tiny, prefillTp: 1, decodeTp: 1, decode: {kernelBlockSize: 7}}))
    expect([e.code, e.exitCode]).toEqual(['HPD_LAYOUT_BAD_KERNEL_BLOCK', 2])
    expect(e.message).toContain('kernel block 7 tokens does not divide the logical block size')
  })

  it('VLLM_KERNEL_BLOCK_MISMATCH names a --block-size that makes the kernel blocks agree, computed for the pair', () => {
    // 64·cdiv(533,504, 64·512) = 1088 → kernel 64 at TP 4; 64·cdiv(1,067,008, 32,768) = 2112 → 64 at TP 2
    // (16, 32 and 48 leave them 32/16, 32/64, 32/64).
    const fix = (options: Parameters<typeof planLayout>[0]) => planLayout(options).vllmPitfalls.find((p) => p.code === 'VLLM_KERNEL_BLOCK_MISMATCH')?.fix
    expect(fix({model: kv2, prefillTp: 4, decodeTp: 2})).toBe('pass --block-size 64 to prefill and decode: logical blocks 1088 / 2112 tokens, kernel block 64 on both sides (flash-attn)')
    const agreed = planLayout({model: kv2, prefillTp: 4, decodeTp: 2, blockSize: 64})
    expect([agreed.prefill.logicalBlockSize, agreed.decode.logicalBlockSize, agreed.prefill.kernelBlockSize, agreed.decode.kernelBlockSize]).toEqual([1088, 2112, 64, 64])
    expect(fix({model: kv2, prefillTp: 4, decodeTp: 2, blockSize: 64})).toBeUndefined()
    // hpd's own overrides: vLLM's backend would pick the same kernel block on both sides
    const tiny = loadModelSpec('tiny-hybrid')
    expect(fix({model: tiny, prefillTp: 1, decodeTp: 1, attentionBackend: 'cpu', decode: {kernelBlockSize: 8}})).toMatch(/picks kernel block 16 on both sides: the difference comes from --kernel-block-size \/ --decode-kernel-block-size/u)
    // Triton takes the logical block itself (≥ 80 tokens here), the cpu kernel at most 64: no block size helps.
    expect(fix({model: tiny, prefillTp: 1, decodeTp: 1, attentionBackend: 'triton', decode: {attentionBackend: 'cpu'}})).toMatch(/^no --block-size up to \d+ gives both sides the same kernel block with triton \/ cpu/u)
  })

  it('property: whenever the fix names a --block-size, planning both sides with it gives equal kernel blocks (and the logical blocks it names)', () => {
    const models = [kv2, loadModelSpec('tiny-hybrid-kv1'), loadModelSpec('tiny-hybrid'), loadModelSpec('tiny-qwen3-next'), loadModelSpec('tiny-granite-h')]
    let named = 0
    fc.assert(
      fc.property(
        fc.constantFrom(...models),
        fc.constantFrom(1, 2, 4),
        fc.constantFrom(1, 2, 4),
        fc.constantFrom('flash-attn', 'flashinfer', 'triton', 'cpu'),
        fc.constantFrom('auto', 'bf16', 'fp8', 'fp32'),
        fc.constantFrom('auto', 'bf16', 'fp32'),
        fc.option(fc.integer({min: 1, max: 40}).map((k) => 8 * k)),
        (model, prefillTp, decodeTp, attentionBackend, kvCacheDtype, mambaSsmDtype, blockSize) => {
          const options = {model, prefillTp, decodeTp, attentionBackend, kvCacheDtype, mambaSsmDtype, ...(blockSize === null ? {} : {blockSize})} as const
          let plan
          try {
            plan = planLayout(options)
          } catch {
            return // TP that does not split this model, or no kernel block at this block size
          }
          const pitfall = plan.vllmPitfalls.find((p) => p.code === 'VLLM_KERNEL_BLOCK_MISMATCH')
          expect(pitfall !== undefined).toBe(plan.prefill.kernelBlockSize !== plan.decode.kernelBlockSize)
          const m = pitfall?.fix.match(/^pass --block-size (\d+) to prefill and decode: logical blocks (\d+) \/ (\d+) tokens, kernel block (\d+) on both sides/u)
          if (!pitfall) return
          expect(m, pitfall.fix).not.toBeNull()
          named++
          const fixed = planLayout({...options, blockSize: Number(m![1])})
          expect([fixed.prefill.logicalBlockSize, fixed.decode.logicalBlockSize, fixed.prefill.kernelBlockSize, fixed.decode.kernelBlockSize]).toEqual([m![2], m![3], m![4], m![4]].map(Number))
        },
      ),
      {numRuns: 300, seed: 13},
    )
    expect(named).toBeGreaterThan(0)
  })
})
