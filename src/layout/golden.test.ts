import {describe, expect, it} from 'vitest'

import {loadModelSpec, parseModelConfig, PRESETS} from '../model/index.js'
import {blockDescriptorIds, expandToKernelBlocks, planEngineLayout, planLayout, planRequestReads, readAt} from './index.js'
import type {EngineLayout} from './types.js'

// Every number here is from reference vllm-hybrid-pd.md §3.3, §4 and §6 (derived from vLLM's formulas).
const h8b = loadModelSpec('nemotron-h-8b')
const nano = loadModelSpec('nemotron-nano-9b-v2')

describe('§6.1 per-rank geometry', () => {
  const rows = [
    {model: h8b, tp: 1, conv: 61_440, x: 49_152, b: 6_144, ssm: 4_194_304, mamba: 4_255_744, perToken: 4_096, block: 1040, page: 4_259_840, pad: 4_096, kernel: 16, r: 65, kp: 65_536, half: 32_768, convShape: [10240, 3], ssmShape: [128, 64, 128]},
    {model: h8b, tp: 2, conv: 30_720, x: 24_576, b: 3_072, ssm: 2_097_152, mamba: 2_127_872, perToken: 2_048, block: 1040, page: 2_129_920, pad: 2_048, kernel: 16, r: 65, kp: 32_768, half: 16_384, convShape: [5120, 3], ssmShape: [64, 64, 128]},
    {model: nano, tp: 1, conv: 73_728, x: 61_440, b: 6_144, ssm: 5_242_880, mamba: 5_316_608, perToken: 4_096, block: 1312, page: 5_373_952, pad: 57_344, kernel: 32, r: 41, kp: 131_072, half: 65_536, convShape: [12288, 3], ssmShape: [128, 80, 128]},
    {model: nano, tp: 2, conv: 36_864, x: 30_720, b: 3_072, ssm: 2_621_440, mamba: 2_658_304, perToken: 2_048, block: 1312, page: 2_686_976, pad: 28_672, kernel: 32, r: 41, kp: 65_536, half: 32_768, convShape: [6144, 3], ssmShape: [64, 80, 128]},
  ]
  for (const row of rows) {
    it(`${row.model.name} TP${row.tp}`, () => {
      const e = planEngineLayout({model: row.model, tp: row.tp})
      const rank = e.ranks[0]
      expect(e.dtypes).toEqual({kv: 'bf16', conv: 'bf16', ssm: 'fp32'})
      expect(rank.mamba!.conv.bytes).toBe(row.conv)
      expect(rank.mamba!.conv.shape).toEqual(row.convShape)
      expect([rank.mamba!.conv.xBytes, rank.mamba!.conv.bBytes, rank.mamba!.conv.cBytes]).toEqual([row.x, row.b, row.b])
      expect(rank.mamba!.ssm.bytes).toBe(row.ssm)
      expect(rank.mamba!.ssm.shape).toEqual(row.ssmShape)
      expect(e.mambaPageBytes).toBe(row.mamba)
      expect(e.attnBytesPerToken).toBe(row.perToken)
      expect(e.logicalBlockSize).toBe(row.block)
      expect(e.pageBytes).toBe(row.page)
      expect(e.paddingBytes).toBe(row.pad)
      expect(e.kernelBlockSize).toBe(row.kernel)
      expect(e.blocksPerLogical).toBe(row.r)
      expect(e.kernelPageBytes).toBe(row.kp)
      expect(e.kvHalfBytes).toBe(row.half)
      expect(e.vllmRatioEstimate).toBe(row.r)
      expect(e.numTensors).toBe(4)
    })
  }

  it('HMA groups: H-8B 1 FA + 6 Mamba, Nano 1 FA + 7 Mamba with one padding slot', () => {
    const e8 = planEngineLayout({model: h8b, tp: 1})
    expect(e8.groups.map((g) => g.kind)).toEqual(['attention', ...Array(6).fill('state')])
    expect(e8.groups[0].layers).toEqual([7, 18, 29, 40])
    const e9 = planEngineLayout({model: nano, tp: 1})
    expect(e9.groups.map((g) => g.kind)).toEqual(['attention', ...Array(7).fill('state')])
    expect(e9.groups[0].layers).toEqual([14, 21, 30, 39])
    expect(e9.groups[7].layers.filter((l) => l === null)).toHaveLength(1)
    expect(e9.groups.slice(1, 7).every((g) => g.layers.every((l) => l !== null))).toBe(true)
    // every model layer with a cache sits in exactly one group slot
    expect(e9.layers.filter((l) => l.caches.length === 1)).toHaveLength(31)
  })

  it('derive_mamba_conv_split: H-8B TP1 (8192,1024,1024) and TP4 (2048,256,256) channels', () => {
    const c1 = planEngineLayout({model: h8b, tp: 1}).ranks[0].mamba!.conv
    const c4 = planEngineLayout({model: h8b, tp: 4}).ranks[3].mamba!.conv
    expect([c1.xChannels, c1.bChannels, c1.cChannels, c1.channels]).toEqual([8192, 1024, 1024, 10240])
    expect([c4.xChannels, c4.bChannels, c4.cChannels]).toEqual([2048, 256, 256])
  })

  it('--block-size 128: H-8B 1152/64/18 (v0.20 estimate 17), Nano 1408/64/22 (estimate 21), both flagged', () => {
    for (const [model, block, r, estimate, padPct] of [[h8b, 1152, 18, 17, 10.9], [nano, 1408, 22, 21, 8.5]] as const) {
      const e = planEngineLayout({model, tp: 1, blockSize: 128})
      expect([e.logicalBlockSize, e.kernelBlockSize, e.blocksPerLogical, e.vllmRatioEstimate]).toEqual([block, 64, r, estimate])
      expect(Math.round((e.paddingBytes / e.mambaPageBytes) * 1000) / 10).toBe(padPct)
      const plan = planLayout({model, prefillTp: 1, decodeTp: 1, blockSize: 128, vllmVersion: '0.20'})
      const pitfall = plan.vllmPitfalls.find((p) => p.code === 'VLLM_REMOTE_RATIO_ESTIMATE_WRONG')
      expect(pitfall?.message).toContain(`= ${estimate}`)
    }
    expect(planLayout({model: h8b, prefillTp: 1, decodeTp: 1, vllmVersion: '0.20'}).vllmPitfalls.map((p) => p.code)).not.toContain('VLLM_REMOTE_RATIO_ESTIMATE_WRONG')
  })

  it('Granite-like bf16 state on flash-attn gets kernel == logical (ratio 1)', () => {
    const e = planEngineLayout({model: h8b, tp: 1, mambaSsmDtype: 'bf16'})
    expect(e.kernelBlockSize).toBe(e.logicalBlockSize)
    expect(e.blocksPerLogical).toBe(1)
  })
})

describe('§6.3 one request: 3000-token prompt', () => {
  it('H-8B TP1→TP1: 1656 vLLM pairs, offsets K@0 V@32768 x@0 B@49152 C@55296 SSM@61440', () => {
    const plan = planLayout({model: h8b, prefillTp: 1, decodeTp: 1})
    const req = planRequestReads(plan, {transferredTokens: 2999})
    expect(req.transferredTokens).toBe(2999)
    expect(req.vllmKernelBlocks).toBe(195)
    expect(req.vllmDescriptorPairs).toBe(1656)
    expect(plan.mapping.pairs[0].pageReads.map((r) => [r.part, r.remoteOffsetBytes, r.localOffsetBytes, r.lengthBytes])).toEqual([
      ['K', 0, 0, 32_768],
      ['V', 32_768, 32_768, 32_768],
      ['x', 0, 0, 49_152],
      ['B', 49_152, 49_152, 6_144],
      ['C', 55_296, 55_296, 6_144],
      ['ssm', 61_440, 61_440, 4_194_304],
    ])
    // SSM bytes per READ: 24 layers × (49,152 + 6,144 + 6,144 + 4,194,304)
    const pair = req.pairs[0]
    let ssmBytes = 0
    for (let i = 0; i < pair.reads.count; i++) if (readAt(pair.reads, i).view === 'ssm') ssmBytes += pair.reads.lengthBytes[i]
    expect(ssmBytes).toBe(102_137_856)
    // hpd reads only the 188 kernel blocks holding 2999 tokens: 4 tensors × (1 FA run + 6 Mamba pages)
    expect(req.kernelBlocksRead).toBe(188)
    expect(pair.bytes).toBe(188 * 8 * 32_768 + 102_137_856)
    expect(req.coalescedRuns).toBe(28)
    expect(req.notificationsPerPrefillRank).toEqual([1])
  })

  it('H-8B TP2→TP2: each rank K@0 V@16384 x@0 B@24576 C@27648 SSM@30720, 51,068,928 SSM bytes', () => {
    const plan = planLayout({model: h8b, prefillTp: 2, decodeTp: 2})
    const req = planRequestReads(plan, {transferredTokens: 2999})
    expect(req.pairs.map((p) => [p.decodeRank, p.prefillRank, p.vllmDescriptorPairs])).toEqual([[0, 0, 1656], [1, 1, 1656]])
    for (const pair of plan.mapping.pairs) {
      expect(pair.pageReads.map((r) => r.remoteOffsetBytes)).toEqual([0, 16_384, 0, 24_576, 27_648, 30_720])
      expect(pair.pageReads.slice(2).reduce((s, r) => s + r.lengthBytes, 0) * 24).toBe(51_068_928)
    }
  })

  it('H-8B TP1→TP2: D rank j reads P0 at K j·16384, V 32768+j·16384, x j·24576, B 49152+j·3072, C 55296+j·3072, SSM 61440+j·2097152', () => {
    const plan = planLayout({model: h8b, prefillTp: 1, decodeTp: 2})
    expect(plan.mapping.tpRatio).toBe(2)
    for (const j of [0, 1]) {
      const pair = plan.mapping.pairs.find((p) => p.decodeRank === j)!
      expect(pair.prefillRank).toBe(0)
      expect(pair.pageReads.map((r) => [r.part, r.remoteOffsetBytes, r.localOffsetBytes, r.lengthBytes])).toEqual([
        ['K', j * 16_384, 0, 16_384],
        ['V', 32_768 + j * 16_384, 16_384, 16_384],
        ['x', j * 24_576, 0, 24_576],
        ['B', 49_152 + j * 3_072, 24_576, 3_072],
        ['C', 55_296 + j * 3_072, 27_648, 3_072],
        ['ssm', 61_440 + j * 2_097_152, 30_720, 2_097_152],
      ])
    }
    const req = planRequestReads(plan, {transferredTokens: 2999})
    expect(req.pairs.map((p) => p.vllmDescriptorPairs)).toEqual([1656, 1656])
    expect(req.notificationsPerPrefillRank).toEqual([2])
  })

  it('H-8B TP2→TP1: D0 reads all of each P_p into slot p (K p·16384, x p·24576, B 49152+p·3072, C 55296+p·3072, SSM 61440+p·2097152)', () => {
    const plan = planLayout({model: h8b, prefillTp: 2, decodeTp: 1})
    expect(plan.mapping.tpRatio).toBe(-2)
    for (const p of [0, 1]) {
      const pair = plan.mapping.pairs.find((q) => q.prefillRank === p)!
      expect(pair.pageReads.map((r) => [r.part, r.remoteOffsetBytes, r.localOffsetBytes, r.lengthBytes])).toEqual([
        ['K', 0, p * 16_384, 16_384],
        ['V', 16_384, 32_768 + p * 16_384, 16_384],
        ['x', 0, p * 24_576, 24_576],
        ['B', 24_576, 49_152 + p * 3_072, 3_072],
        ['C', 27_648, 55_296 + p * 3_072, 3_072],
        ['ssm', 30_720, 61_440 + p * 2_097_152, 2_097_152],
      ])
    }
    const req = planRequestReads(plan, {transferredTokens: 2999})
    expect(req.pairs.map((p) => p.vllmDescriptorPairs)).toEqual([1656, 1656])
    expect(req.notificationsPerPrefillRank).toEqual([1, 1])
  })

  it('Nano-9B-v2 TP1: 984 FA pairs × 65,536 B, 112 SSM pairs over 28 slots (one padding, never read by hpd)', () => {
    const plan = planLayout({model: nano, prefillTp: 1, decodeTp: 1})
    const req = planRequestReads(plan, {transferredTokens: 2999})
    expect(req.vllmKernelBlocks).toBe(123)
    expect(req.vllmDescriptorPairs).toBe(984 + 112)
    expect(984 * plan.decode.kvHalfBytes).toBe(64_487_424)
    expect(28 * plan.decode.mambaPageBytes).toBe(148_865_024)
    const pair = req.pairs[0]
    let ssmBytes = 0
    for (let i = 0; i < pair.reads.count; i++) if (readAt(pair.reads, i).view === 'ssm') ssmBytes += pair.reads.lengthBytes[i]
    expect(ssmBytes).toBe(27 * 5_316_608)
  })
})

describe('§3.3 / §4.1 descriptor ids', () => {
  /** A one-tensor hybrid engine with ratio r, as in vLLM's unit tests (a unit seam over a real layout). */
  function oneTensor(r: number): EngineLayout {
    const e = planEngineLayout({model: h8b, tp: 1})
    return {...e, numTensors: 1, blocksPerLogical: r, groups: [{index: 0, kind: 'attention', layers: [0]}, {index: 1, kind: 'state', layers: [1]}]}
  }

  it('ratio 1: FA [3,5], SSM [1,2] with 100 blocks → test_get_block_descs_ids_hybrid_ssm', () => {
    expect(Array.from(blockDescriptorIds(oneTensor(1), [[3, 5], [1, 2]], 100))).toEqual([3, 5, 103, 105, 201, 202, 301, 302, 401, 402, 501, 502])
  })

  it('ratio 4: FA [3,7], SSM [1,2] with 100 logical blocks → test_get_block_descs_ids_kernel_block_mismatch', () => {
    expect(Array.from(blockDescriptorIds(oneTensor(4), [[3, 7], [1, 2]], 100))).toEqual([3, 7, 403, 407, 801, 802, 901, 902, 1001, 1002, 1101, 1102])
  })

  it('H-8B TP1: logical FA blocks [7, 9] → kernel [455..519, 585..649]; Mamba block 3 → numFaDescs + m·N_l + 3', () => {
    const ids = expandToKernelBlocks([7, 9], 65)
    expect(ids).toHaveLength(130)
    expect([ids[0], ids[64], ids[65], ids[129]]).toEqual([455, 519, 585, 649])
    const e = planEngineLayout({model: h8b, tp: 1})
    const Nl = 10
    const all = blockDescriptorIds(e, [ids, [3], [], [], [], [], []], Nl)
    const numFa = 2 * 4 * 65 * Nl
    expect(all.length).toBe(8 * 130 + 16)
    expect(Array.from(all.slice(8 * 130))).toEqual(Array.from({length: 16}, (_, m) => numFa + m * Nl + 3))
  })

  it('tp mapping: K = 2 KV heads reads FA/SSM from 2/2 (2p1d), 2/4 (4p1d), 1/2 (4p2d) prefill ranks (#37635)', () => {
    const k2 = parseModelConfig({...PRESETS.find((p) => p.name === 'nemotron-h-8b')!.config, num_key_value_heads: 2})
    for (const [P, D, fa, ssm] of [[2, 1, 2, 2], [4, 1, 2, 4], [4, 2, 1, 2]] as const) {
      const pairs = planLayout({model: k2, prefillTp: P, decodeTp: D, blockSize: 128}).mapping.pairs.filter((p) => p.decodeRank === 0)
      expect([pairs.filter((p) => p.readsFa).length, pairs.filter((p) => p.readsSsm).length]).toEqual([fa, ssm])
    }
  })
})
