import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {HpdError} from '../errors.js'
import {parseModelConfig} from '../model/index.js'
import type {GroupBlockIds} from './block-ids.js'
import {blocksNeeded} from './block-ids.js'
import {planEngineLayout, planLayout, planRequestReads, readAt, summarizeRequestReads, transferredTokens} from './index.js'
import {requestContext} from './request-context.js'
import {countPairRuns} from './run-count.js'
import type {ReadList} from './read-list.js'
import type {AttentionBackend, CacheGroup, EngineLayout, LayoutPlan} from './types.js'

// Random valid models of every family, random TP pairs, dtypes, block sizes (drawn per side),
// kernel block sizes (the backend's, or any divisor of each side's logical block, drawn independently
// per side), backends, conv layouts and block-id allocations. For each: every decode rank's reads
// cover each byte of its state exactly once, every read maps a byte to the same (layer, token/state,
// part, global head/channel, byte) on both sides, no read touches padding, and the coalesced runs
// cover exactly the same bytes.

const dtype = fc.constantFrom('float32', 'bfloat16', 'float16')
const mixerChars = fc.array(fc.constantFrom('M', '*', '-'), {minLength: 2, maxLength: 8}).map((a) => ['M', '*', ...a])

const nemotron = fc.record({
  architectures: fc.constant(['NemotronHForCausalLM']),
  torch_dtype: dtype,
  hidden_size: fc.constant(64),
  vocab_size: fc.constant(64),
  hybrid_override_pattern: mixerChars.chain((a) => fc.shuffledSubarray(a, {minLength: a.length, maxLength: a.length})).map((a) => a.join('')),
  num_attention_heads: fc.constant(8),
  num_key_value_heads: fc.constantFrom(1, 2, 4, 8),
  head_dim: fc.constantFrom(4, 8),
  mamba_num_heads: fc.constantFrom(8, 16),
  mamba_head_dim: fc.constantFrom(2, 4),
  n_groups: fc.constantFrom(1, 4),
  ssm_state_size: fc.constantFrom(4, 8),
  conv_kernel: fc.constantFrom(2, 3, 4),
})
const falcon = fc.record({
  architectures: fc.constant(['FalconH1ForCausalLM']),
  torch_dtype: dtype,
  hidden_size: fc.constant(32),
  vocab_size: fc.constant(64),
  num_hidden_layers: fc.integer({min: 1, max: 4}),
  num_attention_heads: fc.constant(4),
  num_key_value_heads: fc.constantFrom(1, 2, 4),
  head_dim: fc.constant(8),
  mamba_n_heads: fc.constant(8),
  mamba_d_head: fc.constant(4),
  mamba_n_groups: fc.constantFrom(1, 4),
  mamba_d_state: fc.constant(4),
  mamba_d_conv: fc.constant(4),
})
const jamba = fc.record({
  architectures: fc.constant(['JambaForCausalLM']),
  torch_dtype: dtype,
  hidden_size: fc.constant(32),
  vocab_size: fc.constant(64),
  num_hidden_layers: fc.integer({min: 2, max: 8}),
  attn_layer_period: fc.constant(2),
  attn_layer_offset: fc.constant(1),
  num_attention_heads: fc.constant(4),
  num_key_value_heads: fc.constantFrom(1, 2, 4),
  mamba_expand: fc.constant(2),
  mamba_d_state: fc.constant(4),
  mamba_d_conv: fc.constant(4),
})
const qwen3next = fc.record({
  architectures: fc.constant(['Qwen3NextForCausalLM']),
  torch_dtype: dtype,
  hidden_size: fc.constant(32),
  vocab_size: fc.constant(64),
  num_hidden_layers: fc.integer({min: 2, max: 8}),
  full_attention_interval: fc.constant(2),
  num_attention_heads: fc.constant(8),
  num_key_value_heads: fc.constantFrom(2, 4),
  head_dim: fc.constant(8),
  linear_num_key_heads: fc.constant(4),
  linear_num_value_heads: fc.constantFrom(4, 8),
  linear_key_head_dim: fc.constant(4),
  linear_value_head_dim: fc.constant(4),
  linear_conv_kernel_dim: fc.constant(4),
})
const llama = fc.record({
  architectures: fc.constant(['LlamaForCausalLM']),
  torch_dtype: dtype,
  hidden_size: fc.constant(64),
  vocab_size: fc.constant(64),
  num_hidden_layers: fc.integer({min: 1, max: 4}),
  num_attention_heads: fc.constant(8),
  num_key_value_heads: fc.constantFrom(1, 2, 8),
  head_dim: fc.constant(8),
})

const scenario = fc.record({
  config: fc.oneof(nemotron, nemotron, falcon, jamba, qwen3next, llama),
  prefillTp: fc.constantFrom(1, 2, 4),
  decodeTp: fc.constantFrom(1, 2, 4),
  blockSize: fc.constantFrom(undefined, 16, 32, 64, 128),
  decodeBlockSize: fc.constantFrom('same', 'same', undefined, 16, 32, 64, 128),
  // 'backend': select_common_block_size on each side; otherwise a divisor of each side's logical
  // block, picked independently (so the kernel blocks may share only a factor of 1).
  kernelBlocks: fc.constantFrom('backend', 'drawn', 'drawn'),
  prefillKernelPick: fc.integer({min: 0, max: 1 << 20}),
  decodeKernelPick: fc.integer({min: 0, max: 1 << 20}),
  backend: fc.constantFrom<AttentionBackend>('flash-attn', 'flashinfer', 'triton', 'cpu'),
  kv: fc.constantFrom('auto', 'fp32', 'bf16', 'fp8'),
  ssm: fc.constantFrom('auto', 'fp32', 'bf16'),
  convLayout: fc.constantFrom('DS', 'SD'),
  promptTokens: fc.integer({min: 2, max: 700}),
  // The decode side's prefix-cache hit, in whole decode blocks (0 half of the time).
  cachedPick: fc.oneof(fc.constant(0), fc.integer({min: 0, max: 1 << 20})),
  prefillSeed: fc.integer({min: 0, max: 1 << 30}),
  decodeSeed: fc.integer({min: 0, max: 1 << 30}),
})

type Interval = [number, number]

describe('read plans (property)', () => {
  it('cover every decode byte exactly once, map bytes to the same element, skip padding; runs = reads', () => {
    const checked: string[] = []
    let mismatched = 0
    const started = Date.now()
    fc.assert(
      fc.property(scenario, (sc) => {
        let plan: LayoutPlan
        try {
          const shared = {
            model: parseModelConfig(sc.config),
            blockSize: sc.blockSize,
            attentionBackend: sc.backend,
            kvCacheDtype: sc.kv as never,
            mambaSsmDtype: sc.ssm as never,
            convLayout: sc.convLayout as never,
          }
          const decodeBlockSize: number | undefined = sc.decodeBlockSize === 'same' ? sc.blockSize : (sc.decodeBlockSize as number | undefined)
          let kernels: {prefill?: number; decode?: number} = {}
          if (sc.kernelBlocks === 'drawn') {
            const pLogical = planEngineLayout({...shared, tp: sc.prefillTp}).logicalBlockSize
            const dLogical = planEngineLayout({...shared, blockSize: decodeBlockSize, tp: sc.decodeTp}).logicalBlockSize
            kernels = {prefill: drawDivisor(pLogical, sc.prefillKernelPick), decode: drawDivisor(dLogical, sc.decodeKernelPick)}
          }
          plan = planLayout({
            ...shared,
            prefillTp: sc.prefillTp,
            decodeTp: sc.decodeTp,
            kernelBlockSize: kernels.prefill,
            decode: {blockSize: decodeBlockSize, kernelBlockSize: kernels.decode},
          })
        } catch (error) {
          // Invalid combinations (TP not splitting heads, no kernel block for the backend) are typed errors.
          if (error instanceof HpdError && (error.exitCode === 2 || error.exitCode === 3)) return
          throw error
        }
        if (plan.prefill.kernelBlockSize !== plan.decode.kernelBlockSize) mismatched++
        checked.push(`${plan.model.family} ${sc.prefillTp}->${sc.decodeTp}`)
        const tokens = transferredTokens(sc.promptTokens)
        const pIds = shuffledIds(plan.prefill, tokens, sc.prefillSeed)
        const dIds = shuffledIds(plan.decode, tokens, sc.decodeSeed)
        const pNum = 2 + Math.max(...pIds.flat())
        const dNum = 1 + Math.max(...dIds.flat())
        const cachedTokens = (sc.cachedPick % (Math.floor(tokens / plan.decode.logicalBlockSize) + 1)) * plan.decode.logicalBlockSize
        const options = {transferredTokens: tokens, prefillBlockIds: pIds, decodeBlockIds: dIds, prefillNumLogicalBlocks: pNum, decodeNumLogicalBlocks: dNum, cachedTokens}
        const req = planRequestReads(plan, options)
        // The streaming summary (what inspect-layout prints) counts exactly what the lists hold.
        const summary = summarizeRequestReads(plan, options)
        expect(summary.pairs).toEqual(req.pairs.map((p) => ({decodeRank: p.decodeRank, prefillRank: p.prefillRank, reads: p.reads.count, runs: p.runs.count, bytes: p.bytes, vllmDescriptorPairs: p.vllmDescriptorPairs})))
        const sequential = summarizeRequestReads(plan, {transferredTokens: tokens})
        const sequentialLists = planRequestReads(plan, {transferredTokens: tokens})
        expect([sequential.reads, sequential.coalescedRuns]).toEqual([sequentialLists.reads, sequentialLists.coalescedRuns])
        // Ascending ids with gaps: reads come in local order, so the stretch arithmetic of
        // countPairRuns (no lists) is what runs; it must agree with the lists, stretch edges included.
        const gapped = {transferredTokens: tokens, cachedTokens, prefillBlockIds: gappedIds(plan.prefill, tokens, sc.prefillSeed), decodeBlockIds: gappedIds(plan.decode, tokens, sc.decodeSeed)}
        const gappedLists = planRequestReads(plan, gapped)
        const ctx = requestContext(plan, gapped)
        for (const pair of plan.mapping.pairs) {
          const counted = countPairRuns(pair, plan.mapping, plan.prefill, plan.decode, ctx)
          const lists = gappedLists.pairs.find((p) => p.decodeRank === pair.decodeRank && p.prefillRank === pair.prefillRank)!
          // SD conv rows interleave x/B/C, so SD reads are never in local order (the lists get sorted).
          if (sc.convLayout === 'DS') expect(counted.ordered).toBe(true)
          if (counted.ordered) expect(counted).toEqual({reads: lists.reads.count, runs: lists.runs.count, bytes: lists.bytes, ordered: true})
        }
        for (let d = 0; d < plan.decode.tp; d++) {
          const pairs = req.pairs.filter((p) => p.decodeRank === d)
          const got = new Map<number, Interval[]>()
          for (const pair of pairs) {
            for (let i = 0; i < pair.reads.count; i++) {
              const r = readAt(pair.reads, i)
              const list = got.get(r.tensorIndex) ?? []
              list.push([r.localOffsetBytes, r.localOffsetBytes + r.lengthBytes])
              got.set(r.tensorIndex, list)
              // First and last byte, the middle, and the first and last token row of a head run.
              const tb = plan.mapping.attention.headTokenBytes
              for (const at of new Set([0, r.lengthBytes - 1, Math.floor(r.lengthBytes / 2), Math.min(tb, r.lengthBytes - 1), Math.max(0, r.lengthBytes - tb)])) {
                const local = element(plan.decode, d, dIds, dNum, r.localOffsetBytes + at)
                const remote = element(plan.prefill, pair.prefillRank, pIds, pNum, r.remoteOffsetBytes + at)
                // expect() only on failure: it costs more than the check, and this runs ~10^5 times.
                if (remote !== local || local === 'padding' || local.startsWith('unowned')) {
                  expect(remote, `read ${i} D${d}←P${pair.prefillRank} byte ${at}`).toBe(local)
                  expect(local).not.toBe('padding')
                  expect(local).not.toMatch(/^unowned/u)
                }
              }
            }
            expectSameBytes(pair.reads, pair.runs)
          }
          const want = expectedState(plan.decode, d, dIds, dNum, tokens, plan.mapping.attention.tokensPerRead, cachedTokens)
          for (let s = 0; s < plan.decode.numTensors; s++) {
            const intervals = (got.get(s) ?? []).sort((a, b) => a[0] - b[0])
            for (let i = 1; i < intervals.length; i++) if (intervals[i][0] < intervals[i - 1][1]) expect(intervals[i][0], `tensor ${s} overlap`).toBeGreaterThanOrEqual(intervals[i - 1][1])
            expect(merge(intervals)).toEqual(merge(want.get(s) ?? []))
          }
        }
      }),
      {numRuns: 200},
    )
    // Most scenarios must be valid layouts, or the property proves little; a good share of them
    // must pair different kernel blocks; and the whole property stays well inside a unit-test budget.
    expect(checked.length).toBeGreaterThan(60)
    expect(new Set(checked.map((c) => c.split(' ')[0])).size).toBe(5)
    expect(mismatched).toBeGreaterThan(20)
    expect(Date.now() - started).toBeLessThan(8000)
  })
})

/** Block ids allocated from a shuffled pool (distinct across groups, as one HMA pool hands them out). */
function shuffledIds(engine: EngineLayout, tokens: number, seed: number): GroupBlockIds {
  const needed = blocksNeeded(engine, tokens)
  const total = needed.reduce((a, b) => a + b, 0)
  const pool = Array.from({length: total + 3}, (_, i) => i)
  let x = seed || 1
  for (let i = pool.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648
    const j = x % (i + 1)
    ;[pool[i], pool[j]] = [pool[j], pool[i]]
  }
  let k = 0
  return needed.map((n) => pool.slice(k, (k += n)))
}

/** Ascending ids with random gaps (about one boundary in three), handed out in group order (so reads come in local order). */
function gappedIds(engine: EngineLayout, tokens: number, seed: number): GroupBlockIds {
  let x = seed || 7
  let next = 0
  return blocksNeeded(engine, tokens).map((n) =>
    Array.from({length: n}, () => {
      x = (x * 1103515245 + 12345) % 2147483648
      next += x % 3 === 0 ? 1 + (x % 2) : 0
      return next++
    }),
  )
}

/** A divisor of n, chosen by `pick` (any divisor, 1 and n included). */
function drawDivisor(n: number, pick: number): number {
  const divisors = Array.from({length: n}, (_, i) => i + 1).filter((k) => n % k === 0)
  return divisors[pick % divisors.length]
}

/**
 * The decode rank's state bytes for this request: per FA kernel block holding tokens it does not
 * hold already (from cachedTokens on), every local
 * head's K and V rows up to the last read chunk (whole kernel blocks when the kernel blocks agree,
 * since a chunk is then a kernel block); Mamba pages up to the padding.
 */
function expectedState(e: EngineLayout, rank: number, ids: GroupBlockIds, numLogical: number, tokens: number, tokensPerRead: number, cachedTokens: number): Map<number, Interval[]> {
  const out = new Map<number, Interval[]>()
  const r = e.blocksPerLogical
  const Nk = numLogical * r
  const k = e.kernelBlockSize
  const readTokens = Math.ceil(tokens / tokensPerRead) * tokensPerRead
  const kernelBlocks = Math.ceil(readTokens / k)
  const attn = e.ranks[rank].attention
  const tb = attn.headTokenBytes
  for (let s = 0; s < e.numTensors; s++) {
    const list: Interval[] = []
    for (const g of e.groups) {
      if (g.layers[s] === null) continue
      if (g.kind === 'attention') {
        for (let i = cachedTokens / k; i < kernelBlocks; i++) {
          const kb = ids[g.index][Math.floor(i / r)] * r + (i % r)
          const rows = Math.min(k, readTokens - i * k)
          for (const [plane, inPage] of [[0, 0], [1, e.kvHalfBytes]] as const) {
            const base = e.kvLayout === 'blocks-first' ? kb * e.kernelPageBytes + inPage : (plane * Nk + kb) * e.kvHalfBytes
            for (let h = 0; h < attn.numKvHeads; h++) list.push([base + h * k * tb, base + h * k * tb + rows * tb])
          }
        }
      } else {
        const L = ids[g.index][0]
        list.push([L * e.pageBytes, L * e.pageBytes + e.ranks[rank].mamba!.pageBytes])
      }
    }
    out.set(s, list)
  }
  return out
}

/** What one byte of a rank's tensor holds: group, token block position or state, part, global unit, byte in unit. */
const owners = new WeakMap<GroupBlockIds, Map<number, [CacheGroup, number]>>()

/** logical block id → (the group holding it, its position in the group's list), once per id list. */
function ownerOf(e: EngineLayout, ids: GroupBlockIds): Map<number, [CacheGroup, number]> {
  let map = owners.get(ids)
  if (!map) {
    map = new Map()
    for (const g of e.groups) ids[g.index].forEach((id, position) => map!.set(id, [g, position]))
    owners.set(ids, map)
  }
  return map
}

function element(e: EngineLayout, rank: number, ids: GroupBlockIds, numLogical: number, offset: number): string {
  const r = e.blocksPerLogical
  const Nk = numLogical * r
  const parts = e.ranks[rank].parts
  let kernelBlock: number
  let pageOffset: number
  if (e.kvLayout === 'kv-first') {
    const plane = offset < Nk * e.kvHalfBytes ? 0 : 1
    const inPlane = offset - plane * Nk * e.kvHalfBytes
    kernelBlock = Math.floor(inPlane / e.kvHalfBytes)
    pageOffset = plane * e.kvHalfBytes + (inPlane % e.kvHalfBytes)
  } else {
    kernelBlock = Math.floor(offset / e.kernelPageBytes)
    pageOffset = offset % e.kernelPageBytes
  }
  const logical = Math.floor(kernelBlock / r)
  const owner = ownerOf(e, ids).get(logical)
  if (!owner) return `unowned block ${logical}`
  const [group, position] = owner
  if (group.kind === 'attention') {
    // Token position in the request: the same token on both sides, whatever their kernel blocks.
    const i = position * r + (kernelBlock % r)
    const part = parts.find((p) => p.view === 'fa' && pageOffset >= p.offsetBytes && pageOffset < p.offsetBytes + p.lengthBytes)!
    const within = pageOffset - part.offsetBytes
    const tb = e.ranks[rank].attention.headTokenBytes
    const inHead = within % part.unitBytes
    const token = i * e.kernelBlockSize + Math.floor(inHead / tb)
    return `g${group.index} t${token} ${part.part} unit ${part.globalUnitStart + Math.floor(within / part.unitBytes)} byte ${inHead % tb}`
  }
  const inPage = offset - logical * e.pageBytes
  for (const p of parts.filter((q) => q.view === 'ssm')) {
    for (let row = 0; row < p.rows; row++) {
      const start = p.offsetBytes + row * p.rowStrideBytes
      if (inPage >= start && inPage < start + p.unitsLocal * p.unitBytes) {
        const within = inPage - start
        return `g${group.index} state ${p.part} row ${row} unit ${p.globalUnitStart + Math.floor(within / p.unitBytes)} byte ${within % p.unitBytes}`
      }
    }
  }
  return 'padding'
}

function merge(list: Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => a[0] - b[0])
  const out: Interval[] = []
  for (const [a, b] of sorted) {
    const last = out[out.length - 1]
    if (last && a <= last[1]) last[1] = Math.max(last[1], b)
    else out.push([a, b])
  }
  return out
}

/** Runs cover the reads' bytes, and each read sits in a run with the same local→remote shift. */
function expectSameBytes(reads: ReadList, runs: ReadList): void {
  const byTensor = (l: ReadList): Map<number, Interval[]> => {
    const m = new Map<number, Interval[]>()
    for (let i = 0; i < l.count; i++) {
      const list = m.get(l.tensorIndex[i]) ?? []
      list.push([l.localOffsetBytes[i], l.localOffsetBytes[i] + l.lengthBytes[i]])
      m.set(l.tensorIndex[i], list)
    }
    return m
  }
  const a = byTensor(reads)
  const b = byTensor(runs)
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort())
  for (const [t, list] of a) expect(merge(b.get(t)!)).toEqual(merge(list))
  let run = 0
  for (let i = 0; i < reads.count; i++) {
    while (runs.tensorIndex[run] !== reads.tensorIndex[i] || runs.localOffsetBytes[run] + runs.lengthBytes[run] <= reads.localOffsetBytes[i]) run++
    const shift = reads.remoteOffsetBytes[i] - reads.localOffsetBytes[i]
    if (shift !== runs.remoteOffsetBytes[run] - runs.localOffsetBytes[run]) expect(shift, `read ${i} in run ${run}`).toBe(runs.remoteOffsetBytes[run] - runs.localOffsetBytes[run])
  }
}
