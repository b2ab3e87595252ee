import {describe, expect, it} from 'vitest'

import {loadModelSpec} from '../model/index.js'
import {planEngineLayout} from './index.js'

// The tiny family presets under the CPU engine's layout options (cpu kernel blocks 16/32/64, fp32
// caches, DS conv). Derived by hand from the §6 formulas: mamba page = conv (channels × (K−1) × 4)
// + SSM, bytes/token = 2 × kvHeads × headDim × 4, block = 16 · ⌈mambaPage / (16 · bytes/token)⌉,
// kernel = the largest of 64/32/16 dividing the block, r = block / kernel.
const ENGINE = {attentionBackend: 'cpu', kvCacheDtype: 'fp32', mambaConvDtype: 'fp32', mambaSsmDtype: 'fp32', convLayout: 'DS'} as const

describe('tiny family presets: engine geometry', () => {
  const rows = [
    // Granite: x 512 + B/C 2·32 (n_groups 1), SSM 16×32×32; 2 KV heads × 32
    {name: 'tiny-granite-h', tp: 1, conv: [512, 32, 32], ssm: [16, 32, 32], mamba: 6912 + 65536, perToken: 512, block: 144, kernel: 16, r: 9, tensors: 2, groups: ['attention', 'state', 'state']},
    // TP 2: x halves, the one B/C group is replicated, one KV head per rank
    {name: 'tiny-granite-h', tp: 2, conv: [256, 32, 32], ssm: [8, 32, 32], mamba: 3840 + 32768, perToken: 256, block: 144, kernel: 16, r: 9, tensors: 2, groups: ['attention', 'state', 'state']},
    // Falcon-H1: every layer both caches → one attention and one state group of 4 slots
    {name: 'tiny-falcon-h1', tp: 1, conv: [256, 32, 32], ssm: [8, 32, 32], mamba: 3840 + 32768, perToken: 512, block: 80, kernel: 16, r: 5, tensors: 4, groups: ['attention', 'state']},
    {name: 'tiny-falcon-h1', tp: 2, conv: [128, 32, 32], ssm: [4, 32, 32], mamba: 2304 + 16384, perToken: 256, block: 80, kernel: 16, r: 5, tensors: 4, groups: ['attention', 'state']},
    // Qwen3-Next GDN: conv [Q 4·32 | K 4·32 | V 8·32], state (Hv 8, dv 32, dk 32); 2 KV heads × 64
    {name: 'tiny-qwen3-next', tp: 1, conv: [128, 128, 256], ssm: [8, 32, 32], mamba: 6144 + 32768, perToken: 1024, block: 48, kernel: 16, r: 3, tensors: 2, groups: ['attention', 'state', 'state', 'state']},
    {name: 'tiny-qwen3-next', tp: 4, conv: [32, 32, 64], ssm: [2, 32, 32], mamba: 1536 + 8192, perToken: 512, block: 32, kernel: 32, r: 1, tensors: 2, groups: ['attention', 'state', 'state', 'state']},
    // Nemotron-H MoE: x 512 + B/C 4·32 each, SSM 16×32×32 (MoE layers keep no cache)
    {name: 'tiny-nemotron-h-moe', tp: 1, conv: [512, 128, 128], ssm: [16, 32, 32], mamba: 9216 + 65536, perToken: 512, block: 160, kernel: 32, r: 5, tensors: 2, groups: ['attention', 'state', 'state']},
  ] as const
  for (const row of rows) {
    it(`${row.name} TP ${row.tp}`, () => {
      const e = planEngineLayout({model: loadModelSpec(row.name), tp: row.tp, ...ENGINE})
      const m = e.ranks[0].mamba!
      expect([m.conv.xChannels, m.conv.bChannels, m.conv.cChannels]).toEqual(row.conv)
      expect(m.ssm.shape).toEqual(row.ssm)
      expect(e.mambaPageBytes).toBe(row.mamba)
      expect(e.attnBytesPerToken).toBe(row.perToken)
      expect(e.logicalBlockSize).toBe(row.block)
      expect(e.logicalBlockSize).toBe(16 * Math.ceil(row.mamba / (16 * row.perToken)))
      expect([e.kernelBlockSize, e.blocksPerLogical]).toEqual([row.kernel, row.r])
      expect(e.pageBytes).toBe(row.block * row.perToken)
      expect(e.numTensors).toBe(row.tensors)
      expect(e.groups.map((g) => g.kind)).toEqual(row.groups)
    })
  }
})
